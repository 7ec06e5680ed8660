"""Command line: ``preflight COMMAND ...``; each command lives in :mod:`preflight.commands`.

Exit status: 0 when every image passes, 1 when any fails, 2 on usage errors (including a path
that does not exist or an invalid policy file).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import PreflightError
from .policy import Policy

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight",
        description="Check face photos locally before uploading them to an identity-verification API.",
    )
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for module in _command_modules():
        module.register(sub)
    return parser


def _command_modules() -> list[Any]:
    """Every module in :mod:`preflight.commands` contributes one subcommand via ``register(sub)``."""
    from . import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    order = {"check": 0, "submit": 1, "screen": 2, "fix": 3, "annotate": 4, "serve": 5}
    names.sort(key=lambda n: (order.get(n, 99), n))
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", metavar="FILE_OR_PRESET",
        help="a TOML policy file, or a preset: progeny_selfie (default), progeny_document",
    )
    parser.add_argument("--locale", default="en", help="language of the hints (en, de); default en")


def load_policy(value: str | None) -> Policy:
    if value is None:
        return Policy()
    if os.path.exists(value) or value.endswith(".toml"):
        return Policy.from_toml(value)
    return Policy.named(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except PreflightError as exc:  # a bad policy file, a missing path: usage errors
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK if not sys.stdout.isatty() else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
