"""What the client adds to a round trip: ``ProgenyClient.wait`` on a finished task against a loopback server,
next to a bare ``requests.Session.get`` of the same URL (same server, same run, alternating).

The client's extras per call are the token header, the per-attempt watchdog (a wall-clock limit), the body
cap and the JSON checks. On a real network a round trip is tens of milliseconds; on loopback the overhead is
what remains.

``--old REV`` adds a third series in the same run: the client with ``progeny_api/_transport.py`` as it was at
git revision REV (read with ``git show``, loaded under another module name; nothing in the tree changes), e.g.
``--old 18d91b4``, the last revision with a ``threading.Timer`` per attempt.

    .venv/bin/python bench/bench_client.py [--runs 300] [--old REV]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import progeny_api.client
from progeny_api import ProgenyClient

ROOT = Path(__file__).resolve().parent.parent

TASK = "11111111-2222-4333-8444-555555555555"
SUCCESS = b'{"id": 7, "status": "SUCCESS", "result": {"status": 200, "data": {"liveness": true}}}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body in one segment (two small writes meet the 40 ms delayed ACK)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_GET(self) -> None:
        self._answer(SUCCESS)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(b'{"access": "header.payload.sig", "refresh": "r.e.f"}')


def _old_transport(rev: str) -> ModuleType:
    """``progeny_api/_transport.py`` at ``rev``, as the module ``progeny_api._transport_old``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:progeny_api/_transport.py"],
        check=True, capture_output=True, text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("progeny_api._transport_old", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    exec(compile(source, f"<{rev}:progeny_api/_transport.py>", "exec"), module.__dict__)
    return module


def _client_with(transport: ModuleType, base: str) -> tuple[ProgenyClient, Callable[[], Any]]:
    """A client whose attempts run under ``transport``'s watchdog and adapter, and a context manager that
    makes ``progeny_api.client`` use that watchdog for the calls made inside it."""
    client = ProgenyClient("u", "p", base_url=base)
    client._session.mount("https://", transport.WatchedAdapter())
    client._session.mount("http://", transport.WatchedAdapter())

    @contextlib.contextmanager
    def using() -> Iterator[None]:
        module: Any = progeny_api.client  # _send looks ``Watchdog`` up in its module on every attempt
        saved = module.Watchdog
        module.Watchdog = transport.Watchdog
        try:
            yield
        finally:
            module.Watchdog = saved

    return client, using


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--old", metavar="REV", help="also time the client with _transport.py from git REV")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    url = f"{base}/tasks/{TASK}/"
    session = requests.Session()
    client = ProgenyClient("u", "p", base_url=base)
    calls: dict[str, Callable[[], Any]] = {
        "requests.Session.get": lambda: session.get(url, timeout=5).json(),
        "ProgenyClient.wait": lambda: client.wait(TASK),
    }
    if args.old:
        old_client, using_old = _client_with(_old_transport(args.old), base)

        def old_wait() -> Any:
            with using_old():
                return old_client.wait(TASK)

        calls[f"ProgenyClient.wait@{args.old}"] = old_wait
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # log in, open the connection, start the timer thread
    names = list(calls)
    for i in range(args.runs):
        for name in names[i % len(names):] + names[: i % len(names)]:  # each goes first in turn
            started = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - started)
    client.close()
    session.close()
    if args.old:
        old_client.close()
    server.shutdown()
    print(f"## loopback round trip, {args.runs} interleaved runs, one keep-alive connection each")
    for name, values in times.items():
        ms = sorted(v * 1000 for v in values)
        print(f"{name:30s}: median {statistics.median(ms):6.2f} ms  p90 {ms[int(0.9 * len(ms))]:6.2f} ms")
    bare = statistics.median(times["requests.Session.get"])
    for name, values in times.items():
        if name != "requests.Session.get":
            print(f"{name} overhead over requests (difference of medians): "
                  f"{(statistics.median(values) - bare) * 1000:.2f} ms")
    print(f"threads now {threading.active_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
