"""``python -m progeny_api.sandbox --port 8765``: run the sandbox in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .server import DEFAULT_LIFECYCLE, DEFAULT_PASSWORD, DEFAULT_USERNAME, Sandbox


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m progeny_api.sandbox",
        description="A local stand-in for the Progeny API v3 (offline development and tests).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--username", default=DEFAULT_USERNAME)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--access-lifetime", type=float, default=300.0, help="access token seconds (300)")
    parser.add_argument(
        "--lifecycle",
        default=",".join(DEFAULT_LIFECYCLE),
        help="task states per poll, comma-separated (default %(default)s)",
    )
    parser.add_argument(
        "--judge",
        choices=("default", "preflight"),
        default="default",
        help="face verdicts from the image header (default) or from the local preflight gate",
    )
    parser.add_argument(
        "--watchlist", action="append", default=[], help="a full name background checks match"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=None, metavar="N",
        help="larger request bodies get nginx's 413 (default: the Sandbox default, 20 MiB)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s"
    )
    sandbox = Sandbox(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        access_lifetime=args.access_lifetime,
        lifecycle=[s.strip() for s in args.lifecycle.split(",") if s.strip()],
        judge=args.judge,
        watchlist=args.watchlist,
        max_records=100,
        **({} if args.max_body_bytes is None else {"max_body_bytes": args.max_body_bytes}),
    )
    sandbox.start()
    print(f"Progeny sandbox: {sandbox.base_url}", flush=True)
    print(f"  username: {sandbox.username}  password: {sandbox.password}", flush=True)
    print(
        f"  export PROGENY_BASE_URL={sandbox.base_url} PROGENY_USERNAME={sandbox.username} "
        f"PROGENY_PASSWORD={sandbox.password}",
        flush=True,
    )
    print("Ctrl-C stops it.", flush=True)
    sandbox.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
