"""``preflight serve [--host 127.0.0.1] [--port 8080] [--workers 2] [--policy ...]``: the HTTP check service.

Needs the ``service`` extra (FastAPI, uvicorn, python-multipart); imported only when the command runs, so
the rest of the CLI works without it. Each worker process builds the app with
:func:`preflight.service.app.app_from_env` and loads the face model once.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any

from ..cli import EXIT_OK, EXIT_USAGE, add_policy_arguments, load_policy

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the HTTP check service and its web page",
        description="Run the HTTP check service (POST /v1/check, /v1/annotate, /v1/submit/{service}, "
        "GET /healthz, the web page at /). Progeny credentials for /v1/submit come from PROGENY_USERNAME, "
        "PROGENY_PASSWORD and PROGENY_BASE_URL.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own face model (default 1)"
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=10.0, metavar="MB",
        help="largest request body accepted, in MB of 1,000,000 bytes (default 10; larger bodies get 413)",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=4, metavar="N",
        help="check/annotate requests in progress per worker; more get 503 + Retry-After (default 4)",
    )
    parser.add_argument(
        "--max-submit-concurrency", type=int, default=8, metavar="N",
        help="submit requests (waiting on the Progeny API) in progress per worker (default 8)",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..service import app as service_app
    except ImportError as exc:
        print(
            f"preflight: serve needs the service extra ({exc.name or exc} is missing): "
            'pip install "progeny-preflight[service]"',
            file=sys.stderr,
        )
        return EXIT_USAGE
    problems = []
    if not 0 <= args.port <= 65535:
        problems.append(f"--port must be 0..65535, got {args.port}")
    if args.workers < 1:
        problems.append(f"--workers must be at least 1, got {args.workers}")
    if not (math.isfinite(args.max_upload_mb) and args.max_upload_mb * 1_000_000 >= 1):
        problems.append(f"--max-upload-mb must be a finite number of at least 0.000001 (1 byte), "
                        f"got {args.max_upload_mb:g}")
    if args.max_concurrency < 1 or args.max_submit_concurrency < 1:
        problems.append("--max-concurrency and --max-submit-concurrency must be at least 1")
    if problems:
        for problem in problems:
            print(f"preflight: {problem}", file=sys.stderr)
        return EXIT_USAGE

    load_policy(args.policy)  # a bad policy is a usage error now, not a crash in every worker
    policy = args.policy
    if policy and os.path.exists(policy):
        policy = os.path.abspath(policy)
    # The workers are separate processes: they read their settings from the environment.
    os.environ.update(
        {
            service_app.ENV_POLICY: policy or "",
            service_app.ENV_MAX_UPLOAD_BYTES: str(int(args.max_upload_mb * 1_000_000)),
            service_app.ENV_MAX_CONCURRENCY: str(args.max_concurrency),
            service_app.ENV_MAX_SUBMIT_CONCURRENCY: str(args.max_submit_concurrency),
            service_app.ENV_LOCALE: args.locale,
        }
    )
    uvicorn.run(
        "preflight.service.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
    )
    return EXIT_OK
