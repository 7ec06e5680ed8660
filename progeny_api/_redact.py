"""Keep secrets and personal data out of logs, reprs and exception messages.

The client never hands request or response bodies to the logger in the first place; this module is the
second line of defence (a logging filter that scrubs anything that still looks like a credential) and the
helper that masks sensitive keys in bodies attached to exceptions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[REDACTED]"

#: Keys whose values are credentials, biometric material or personal data (compared case-insensitively,
#: ignoring ``_`` and ``-``). Used for bodies kept on exceptions and for the sandbox's own logs.
SENSITIVE_KEYS: frozenset[str] = frozenset(
    k.replace("_", "").lower()
    for k in (
        "password",
        "refresh",
        "access",
        "token",
        "authorization",
        "secret",
        "portrait",
        "portrait_url",
        "firstName",
        "lastName",
        "fullname",
        "name",
        "dateOfBirth",
        "birth_date",
        "documentNumber",
        "personalNumber",
        "address",
        "mrz",
    )
)

_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER_RE = re.compile(r"(?i)\b(bearer)(\s+)[^\s,;'\"]+")
_KV_RE = re.compile(
    r"""(?ix)
    (["']?\b(?:password|passwd|refresh|access|token|secret|authorization|portrait_url)\b["']?\s*[:=]\s*)
    (["']?)
    ([^"'\s,;&}\]]+)
    """
)


def redact_text(text: str) -> str:
    """Mask bearer tokens, JWTs and ``key=value`` / ``"key": "value"`` credentials in free text."""
    text = _BEARER_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _JWT_RE.sub(REDACTED, text)
    return _KV_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redact_url(url: str) -> str:
    """``url`` with the password of a ``user:password@host`` part masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:{REDACTED}@{host}"))


def _is_sensitive(key: object) -> bool:
    return isinstance(key, str) and key.replace("_", "").replace("-", "").lower() in SENSITIVE_KEYS


#: Deeper than this, a container is masked whole: no answer of the API nests so deep, and the recursion below
#: must stay far from Python's limit whatever a server sends.
_MAX_DEPTH = 32


def redact_body(value: Any, _depth: int = 0) -> Any:
    """A copy of a JSON-like value with sensitive keys masked (recursively), for bodies kept on errors."""
    if isinstance(value, (Mapping, list)) and _depth >= _MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_sensitive(k) else redact_body(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_body(v, _depth + 1) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs credentials from the rendered message (and the traceback text).

    Attach it to a logger or a handler. The record is rewritten in place, so every handler downstream sees
    the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the record
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def install_filter(logger: logging.Logger) -> None:
    """Attach the shared filter once (idempotent: imports and reloads must not stack filters)."""
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(_FILTER)
