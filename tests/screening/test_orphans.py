"""Worker processes do not outlive their parent: a ``kill -9`` of the screening process ends them too."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")

SCRIPT = """
import sys
from preflight.screening import find_images, screen
with screen(find_images(sys.argv[1]), workers=2, progress=False, out=sys.argv[2]) as run:
    for _ in run:
        pass
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # a thread that just ended
            found |= {int(child) for child in task.read_text().split()}
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def test_workers_exit_soon_after_their_parent_is_killed(tmp_path: Path, samples: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    jpegs = sorted(samples.glob("*.jpg"))
    for i in range(400):  # far more than the two workers check before the kill
        os.link(jpegs[i % len(jpegs)], photos / f"p{i:03d}.jpg")
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(photos), str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.read_bytes().count(b"\n") >= 4):  # the workers are checking
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no rows written"
            time.sleep(0.05)
        workers = {pid for pid in _children(proc.pid) if "spawn_main" in _cmdline(pid)}
        assert len(workers) == 2
        proc.kill()  # kill -9 of the parent alone: no chance to shut its pool down
        proc.wait(timeout=30)
        killed = time.monotonic()
        while any(_alive(pid) for pid in workers) and time.monotonic() - killed < 10:
            time.sleep(0.1)
        left = {pid for pid in workers if _alive(pid)}
        assert not left, f"worker processes {sorted(left)} outlived their parent by 10 s"
        assert time.monotonic() - killed < 5  # within a couple of seconds, in fact
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in workers:  # without the fix they would run on: end them (they are ours)
            if _alive(pid) and "spawn_main" in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)


CHILD = """
import time
from preflight.screening import exit_with_parent
exit_with_parent({pid}, death_signal=False)
print("ready", flush=True)
time.sleep(60)
"""

PARENT = """
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1].format(pid=os.getpid())], stdout=subprocess.PIPE, text=True)
assert child.stdout is not None and child.stdout.readline() == "ready\\n"
print(child.pid, flush=True)
child.wait()
"""


@pytest.mark.parametrize("known_parent", [True, False])
def test_without_the_death_signal_the_watch_thread_ends_the_worker(known_parent: bool) -> None:
    """The portable fallback alone (no ``PR_SET_PDEATHSIG``): polling ``os.getppid()``."""
    child_code = CHILD if known_parent else CHILD.replace("{pid}", "None")
    proc = subprocess.Popen([sys.executable, "-c", PARENT, child_code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    try:
        assert _alive(child)
        proc.kill()
        proc.wait(timeout=30)
        killed = time.monotonic()
        while _alive(child) and time.monotonic() - killed < 10:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its parent by 10 s"
        assert time.monotonic() - killed < 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if _alive(child) and "exit_with_parent" in _cmdline(child):
            os.kill(child, signal.SIGKILL)
