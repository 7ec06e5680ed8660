"""Native libraries' chatter on file descriptor 2."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 while MediaPipe starts (its C++ logging writes there directly, past
    ``sys.stderr`` and the ``logging`` module).

    For processes preflight owns (pool workers, the command line): the redirection is process-wide,
    so anything another thread writes to stderr meanwhile is lost too.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
