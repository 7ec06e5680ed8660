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


class InvalidSourceError(PreflightError, TypeError):
    """The source is of a type preflight cannot read (not a path, bytes, file, PIL image or array)."""


class PolicyError(PreflightError, ValueError):
    """A policy file or value is invalid (unknown key, wrong type)."""


class ModelError(PreflightError):
    """The face model could not be loaded (missing file, wrong SHA-256, unreadable bundle)."""
