"""Check functions for the tests, importable by spawned worker processes."""

from __future__ import annotations

import os

from preflight.gate import Gate
from preflight.report import Report
from preflight.screening import check_source


def raising_check(gate: Gate, source: str) -> Report:
    """Raise for files named boom*: stands for a bug in a decoder."""
    if os.path.basename(source).startswith("boom"):
        raise RuntimeError("decoder exploded")
    return check_source(gate, source)


def dying_check(gate: Gate, source: str) -> Report:
    """Kill the worker process for files named die*: stands for a crash in native code."""
    if os.path.basename(source).startswith("die"):
        os._exit(7)
    return check_source(gate, source)
