"""Exceptions that escape preflight.

Bad *images* never raise: they become issues in a :class:`~preflight.Report`. Only programmer
errors (a path that does not exist, an argument of the wrong type, a broken model file) raise,
and always as a :class:`PreflightError` subclass.
"""

from __future__ import annotations


class PreflightError(Exception):
    """Base class of every exception preflight raises on purpose."""


class SourceNotFoundError(PreflightError, FileNotFoundError):
    """The source is a path that does not exist (or is not a regular file)."""


class SourceReadError(PreflightError, OSError):
    """The source is a file (or stream) that exists but cannot be read: no permission, an I/O error.

    :func:`preflight.check` and :class:`preflight.Gate` report it as ``FAILED_TO_READ_IMAGE``
    instead of raising; the functions that need the bytes themselves (``conform``, ``annotate``,
    ``submit``) raise it.
    """


class GateClosedError(PreflightError, RuntimeError):
    """The :class:`preflight.Gate` was closed and cannot check any more images."""


class InvalidSourceError(PreflightError, TypeError):
    """The source is of a type preflight cannot read (not a path, bytes, file, PIL image or array)."""


class PolicyError(PreflightError, ValueError):
    """A policy file or value is invalid (unknown key, wrong type)."""


class OutputFileError(PreflightError, ValueError):
    """An output file cannot be used: a folder that does not exist or cannot be written, an unknown
    suffix, a missing writer library, an existing output with other columns or unreadable to resume."""


class ModelError(PreflightError):
    """The face model could not be loaded (missing file, wrong SHA-256, unreadable bundle)."""


class WorkerStartError(PreflightError, RuntimeError):
    """The worker processes of :func:`preflight.screen` died while starting, before checking any image.

    Most often a script without an ``if __name__ == "__main__":`` guard: the ``spawn`` start method
    imports the script in every worker, which then tries to start a screening of its own.
    """
