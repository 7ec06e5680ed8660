"""``preflight serve`` as a user runs it: a separate process, two workers, each with its own model."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ._cli import ROOT
from ._cli import cli_env as _env
from .conftest import free_port

pytestmark = pytest.mark.timeout(180)



def children(pid: int) -> list[int]:
    """Direct children of ``pid`` that are multiprocessing workers (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "preflight", "serve", "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    session = requests.Session()
    session.trust_env = False
    try:
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise RuntimeError(f"preflight serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                if session.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("preflight serve did not answer within 90 s")
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        session.close()


def test_serve_with_two_workers(served: tuple[subprocess.Popen[bytes], str], samples: Path) -> None:
    proc, url = served
    deadline = time.monotonic() + 60
    while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = children(proc.pid)
    assert len(workers) == 2, workers
    seen = set()
    # Every worker that answers has loaded its model at start-up (in its lifespan), before serving.
    for _ in range(40):
        with requests.Session() as session:  # a new connection each time, so the kernel may pick either
            session.trust_env = False
            health = session.get(f"{url}/healthz", timeout=10).json()
        assert health["model_loaded"] is True
        seen.add(health["pid"])
        if len(seen) == 2:
            break
    assert seen <= set(workers)
    with requests.Session() as session:
        session.trust_env = False
        data = (samples / "rocket.jpg").read_bytes()
        r = session.post(f"{url}/v1/check", files={"image": ("rocket.jpg", data)}, timeout=60)
    assert r.status_code == 200 and "RESOLUTION_TOO_LOW" in r.json()["issues"]["preflight"]


def test_serve_stops_cleanly_on_sigint(served: tuple[subprocess.Popen[bytes], str]) -> None:
    proc, _ = served
    workers = children(proc.pid)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert "Traceback" not in stderr, stderr[-2000:]
    # each worker loaded the face model with MediaPipe's C++ start-up lines kept out of the log
    for chatter in ("InitGoogle", "XNNPACK", "face_landmarker_graph"):
        assert chatter not in stderr, stderr[-2000:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "no_such_preset"], "unknown policy preset"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--max-upload-mb", "0"], "--max-upload-mb must be a finite number of at least 0.000001"),
        (["--max-upload-mb", "0.0000001"], "(1 byte), got 1e-07"),  # 0 bytes once rounded: was a traceback
        (["--max-upload-mb", "inf"], "(1 byte), got inf"),  # was an OverflowError traceback
        (["--port", "70000"], "--port must be 0..65535"),
    ],
)
def test_serve_usage_errors(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "preflight", "serve", *args],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_import_preflight_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, preflight, preflight.cli; preflight.cli.build_parser();"
        "bad = {m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette')};"
        "assert not bad, sorted(bad)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), check=True, timeout=60)


def test_help_lists_serve() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "preflight", "serve", "--help"], cwd=ROOT, env=_env(), capture_output=True,
        text=True, timeout=60,
    )
    assert result.returncode == 0
    for option in ("--host", "--port", "--workers", "--policy", "--max-upload-mb", "--max-concurrency"):
        assert option in result.stdout


@pytest.mark.parametrize("command", [["check"], ["annotate", "-o", "{tmp}/a.png"], ["fix", "-o", "{tmp}/f.jpg"]])
def test_face_commands_keep_mediapipe_start_up_lines_off_the_terminal(command: list[str], tmp_path: Path,
                                                                      samples: Path) -> None:
    # "Created TensorFlow Lite XNNPACK delegate", "W0000 ... feedback tensors": nothing a user can act on
    args = [command[0], str(samples / "obama.jpg"), *(a.format(tmp=tmp_path) for a in command[1:])]
    result = subprocess.run([sys.executable, "-m", "preflight", *args], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout, result.stderr
    assert result.stderr == ""
