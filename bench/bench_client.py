"""What the client adds to a round trip: ``ProgenyClient.wait`` on a finished task against a loopback server,
next to a bare ``requests.Session.get`` of the same URL (same server, same run, alternating).

The client's extras per call are the token header, the per-attempt watchdog (a wall-clock limit), the body
cap and the JSON checks. On a real network a round trip is tens of milliseconds; on loopback the overhead is
what remains.

    .venv/bin/python bench/bench_client.py [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from progeny_api import ProgenyClient

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    times: dict[str, list[float]] = {"requests.Session.get": [], "ProgenyClient.wait": []}
    with ProgenyClient("u", "p", base_url=base) as client, requests.Session() as session:
        client.wait(TASK)  # log in, open the connection
        session.get(f"{base}/tasks/{TASK}/", timeout=5).json()  # open the connection
        for _ in range(args.runs):
            started = time.perf_counter()
            session.get(f"{base}/tasks/{TASK}/", timeout=5).json()
            times["requests.Session.get"].append(time.perf_counter() - started)
            started = time.perf_counter()
            client.wait(TASK)
            times["ProgenyClient.wait"].append(time.perf_counter() - started)
    server.shutdown()
    print(f"## loopback round trip, {args.runs} alternating runs, one keep-alive connection each")
    for name, values in times.items():
        ms = sorted(v * 1000 for v in values)
        print(f"{name:22s}: median {statistics.median(ms):6.2f} ms  p90 {ms[int(0.9 * len(ms))]:6.2f} ms")
    overhead = statistics.median(times["ProgenyClient.wait"]) - statistics.median(times["requests.Session.get"])
    print(f"client overhead (difference of medians): {overhead * 1000:.2f} ms; "
          f"threads now {threading.active_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
