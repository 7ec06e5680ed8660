"""Load test of ``preflight serve``: requests per second, latency, errors and worker memory.

Starts ``preflight serve --workers 2`` as a separate process on 127.0.0.1, then (from this process) posts a
photo to ``/v1/check`` N times from a bounded thread pool, and samples the resident memory (VmRSS, from
/proc) of the server's worker processes while it runs.

    python bench/bench_service.py                       # 2 workers, 2,000 requests, 8 at a time
    python bench/bench_service.py --requests 500 --concurrency 4 --image sample_images/biden.jpg --json

Every request opens a new connection by default (like independent capture apps do), so that the kernel
spreads them over both workers; ``--keep-alive`` reuses one connection per client thread instead.
The exit status is 1 if any request did not get a 200, or if a worker's memory grew by more than
``--max-rss-growth-mb`` between the end of the first tenth of the run and the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
PAGE_KB = os.sysconf("SC_PAGE_SIZE") / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def worker_pids(parent: int) -> list[int]:
    """The server's worker processes: children of ``parent`` started by multiprocessing's spawn."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids) or [parent]  # --workers 1 serves from the parent itself


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class MemorySampler:
    """Samples the RSS of every pid every ``interval`` seconds in a background thread."""

    pids: list[int]
    interval: float = 0.2
    samples: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        now = time.monotonic()
        for pid in self.pids:
            value = rss_mb(pid)
            if value is not None:
                self.samples.setdefault(pid, []).append((now, value))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()

    def at(self, pid: int, when: float) -> float:
        """The last sample taken at or before ``when`` (the first one if none)."""
        series = self.samples.get(pid, [])
        best = series[0][1] if series else float("nan")
        for t, value in series:
            if t > when:
                break
            best = value
        return best


@contextmanager
def server(args: argparse.Namespace, port: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable, "-m", "preflight", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
        "--max-concurrency", str(args.max_concurrency or args.concurrency), "--log-level", "warning",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.trust_env = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"preflight serve exited with status {proc.returncode}")
            try:
                if session.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
    raise SystemExit(f"preflight serve did not become healthy within {timeout:.0f} s")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(args: argparse.Namespace) -> dict[str, Any]:
    image = Path(args.image)
    data = image.read_bytes()
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    with server(args, port) as proc:
        wait_healthy(url, proc)
        deadline = time.monotonic() + 30
        while len(pids := worker_pids(proc.pid)) < args.workers and time.monotonic() < deadline:
            time.sleep(0.2)
        local = threading.local()

        def session() -> requests.Session:
            s: requests.Session | None = getattr(local, "session", None)
            if s is None:
                s = requests.Session()
                s.trust_env = False
                local.session = s
            return s

        def one(_: int) -> tuple[float, str, float]:
            headers = {} if args.keep_alive else {"Connection": "close"}
            started = time.perf_counter()
            try:
                r = session().post(
                    f"{url}/v1/check",
                    files={"image": (image.name, data, "image/jpeg")},
                    headers=headers,
                    timeout=60,
                )
                outcome = str(r.status_code)
                if r.status_code == 200:
                    r.json()
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            return started, outcome, (time.perf_counter() - started) * 1000

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(one, range(args.warmup)))  # warm-up: not measured
            sampler = MemorySampler(pids)
            sampler.sample()
            cpu_before = {pid: cpu_seconds(pid) for pid in pids}
            sampler.start()
            t0 = time.perf_counter()
            t0_mono = time.monotonic()
            results = list(pool.map(one, range(args.requests)))
            elapsed = time.perf_counter() - t0
            sampler.stop()
            cpu_after = {pid: cpu_seconds(pid) for pid in pids}

    latencies = sorted(r[2] for r in results)
    outcomes = Counter(r[1] for r in results)
    errors = sum(n for k, n in outcomes.items() if k != "200")
    # "after the first tenth": when the 10th percentile request (in start order) started, plus its latency
    ordered = sorted(results)
    tenth = ordered[len(ordered) // 10]
    tenth_at = t0_mono + (tenth[0] - t0) + tenth[2] / 1000
    workers = []
    for pid in pids:
        series = [v for _, v in sampler.samples.get(pid, [])]
        start, end = (series[0], series[-1]) if series else (float("nan"), float("nan"))
        after_tenth = sampler.at(pid, tenth_at)
        before, after = cpu_before.get(pid), cpu_after.get(pid)
        workers.append(
            {
                "pid": pid,
                "rss_start_mb": round(start, 1),
                "rss_after_first_tenth_mb": round(after_tenth, 1),
                "rss_peak_mb": round(max(series), 1) if series else None,
                "rss_end_mb": round(end, 1),
                "rss_growth_after_first_tenth_mb": round(end - after_tenth, 1),
                "cpu_s": None if before is None or after is None else round(after - before, 1),
                "samples": len(series),
            }
        )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "image": f"{image.name} ({len(data)} bytes)",
        "workers": args.workers,
        "concurrency": args.concurrency,
        "keep_alive": args.keep_alive,
        "requests": args.requests,
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(args.requests / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(latencies, 50), 1),
            "p95": round(percentile(latencies, 95), 1),
            "p99": round(percentile(latencies, 99), 1),
            "max": round(latencies[-1], 1),
        },
        "status": dict(sorted(outcomes.items())),
        "errors": errors,
        "worker_memory": workers,
        "cpus": os.cpu_count(),
    }


def report(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    lines = [
        f"preflight serve --workers {result['workers']}: {result['requests']} x POST /v1/check "
        f"({result['image']}), {result['concurrency']} concurrent clients, "
        f"{'keep-alive' if result['keep_alive'] else 'a new connection per request'}, {result['cpus']} CPUs",
        f"  {result['requests_per_s']} requests/s over {result['elapsed_s']} s",
        f"  latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, max {lat['max']} ms",
        f"  status {result['status']}, errors {result['errors']}",
        "  worker RSS (MB): start -> after first 10% -> peak -> end (growth after first 10%), CPU s",
    ]
    for w in result["worker_memory"]:
        lines.append(
            f"    pid {w['pid']}: {w['rss_start_mb']} -> {w['rss_after_first_tenth_mb']} -> {w['rss_peak_mb']} -> "
            f"{w['rss_end_mb']} ({w['rss_growth_after_first_tenth_mb']:+}), {w['cpu_s']} s CPU"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument(
        "--max-concurrency", type=int, default=0,
        help="the server's --max-concurrency per worker (default: --concurrency, so a fair load never sees 503)",
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "obama.jpg"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--keep-alive", action="store_true", help="reuse one connection per client thread")
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else report(result))
    grew = [w for w in result["worker_memory"] if w["rss_growth_after_first_tenth_mb"] > args.max_rss_growth_mb]
    if result["errors"] or grew:
        print(f"FAILED: {result['errors']} error(s), {len(grew)} worker(s) grew beyond the limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
