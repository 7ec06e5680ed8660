"""Helpers for tests that run the ``preflight`` command line (in-process or as a real process)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOC = ["--policy", "progeny_document"]  # no face model needed: fast, and no MediaPipe log lines on stderr


def cli_env() -> dict[str, str]:
    """The environment for ``python -m preflight`` run from the repository (the package on PYTHONPATH)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def one_error_line(err: str, *fragments: str) -> str:
    """Assert ``err`` is exactly one ``preflight: ...`` line, with no traceback, holding every fragment."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("preflight: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def must_not_run(what: str) -> Callable[..., Any]:
    """A stand-in for work that an early refusal must prevent."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{what} ran: the output should have been refused before any work")

    return fail
