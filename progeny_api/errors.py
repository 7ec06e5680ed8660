"""Typed errors. Every error says what happened without carrying secrets in its message.

Hierarchy::

    ProgenyError
    ├── TransportError            no usable HTTP response (connect/read timeout, dropped connection)
    ├── ResponseFormatError       a 2xx whose body is not the JSON the docs describe
    ├── TaskFailedError           the task ended FAILURE / REVOKED / REJECTED
    ├── TaskTimeoutError          polling reached its deadline
    └── APIStatusError            any non-2xx HTTP answer
        ├── BadRequestError       400, with DRF ``field_errors``
        ├── AuthenticationError   401 (or no credentials configured)
        ├── PermissionDeniedError 403
        ├── NotFoundError         404
        ├── RateLimitError        429, with ``retry_after``
        ├── ServerError           5xx (JSON or an HTML error page)
        └── RedirectError         3xx (never followed on POST)

Messages hold the status, method and path, never a body: bodies may echo personal data. The parsed body
is on ``.body`` (token values masked) for callers who need it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._redact import redact_text

if TYPE_CHECKING:
    from .models import Task


class ProgenyError(Exception):
    """Base class of every error raised by :mod:`progeny_api`."""

    #: Set when a retry was skipped only because the polling deadline would have passed.
    _deadline_exhausted: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        task_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = redact_text(message)
        super().__init__(message)
        self.message = message
        #: HTTP status of the response, when there was one.
        self.status_code = status_code
        #: Parsed JSON body, or the (truncated) text of a non-JSON body such as an HTML error page.
        self.body = body
        #: Response headers (a plain dict; the request and its ``Authorization`` header are not kept).
        self.headers: dict[str, str] = dict(headers or {})
        self.method = method
        self.path = path
        #: UUID of the task concerned, when known (so the caller can resume with ``wait(task_id)``).
        self.task_id = task_id
        #: Seconds the server asked us to wait (``Retry-After``), when it said.
        self.retry_after = retry_after

    @property
    def request_id(self) -> str | None:
        """A request id header, if the server or a proxy set one (useful in support tickets)."""
        for name in ("X-Request-ID", "X-Request-Id", "X-Correlation-ID", "CF-Ray"):
            for key, value in self.headers.items():
                if key.lower() == name.lower():
                    return value
        return None

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """DRF validation messages by field (``{"image": ["No file was submitted."]}``); empty if none."""
        if self.status_code != 400 or not isinstance(self.body, Mapping):
            return {}
        errors: dict[str, list[str]] = {}
        for key, value in self.body.items():
            if isinstance(value, list):
                errors[str(key)] = [str(v) for v in value]
            elif isinstance(value, str):
                errors[str(key)] = [value]
        return errors

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = f", status_code={self.status_code}" if self.status_code is not None else ""
        return f"{type(self).__name__}({self.message!r}{extra})"


class TransportError(ProgenyError):
    """No usable response: DNS, connect or read timeout, TLS failure, dropped connection.

    ``may_have_reached_server`` tells whether the request could have been processed anyway (read timeout,
    connection dropped after sending). A service POST in that state is not replayed automatically: it may
    already have created (and billed) a task.
    """

    def __init__(self, message: str, *, may_have_reached_server: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.may_have_reached_server = may_have_reached_server


class ResponseFormatError(ProgenyError):
    """A 2xx answer whose body is not the JSON the API documents (e.g. malformed, or an HTML page)."""


class APIStatusError(ProgenyError):
    """The server answered with a non-2xx status."""


class BadRequestError(APIStatusError):
    """400: DRF validation failed; see :attr:`field_errors`."""


class AuthenticationError(APIStatusError):
    """401: bad credentials, or a token the server would not accept even after a refresh."""


class PermissionDeniedError(APIStatusError):
    """403: the account may not use this service."""


class NotFoundError(APIStatusError):
    """404: unknown endpoint, or a task id still unknown after the not-found grace period."""


class RateLimitError(APIStatusError):
    """429: throttled. ``retry_after`` is the server's hint in seconds, when given."""


class ServerError(APIStatusError):
    """5xx, including HTML error pages from Django or a proxy (``body`` is then the page text)."""


class RedirectError(APIStatusError):
    """3xx. Redirects are not followed on POST (a client would turn the POST into a GET)."""

    @property
    def location(self) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == "location":
                return value
        return None


class TaskFailedError(ProgenyError):
    """The task reached FAILURE, REVOKED or REJECTED. A verdict with issues is *not* this error."""

    def __init__(
        self,
        message: str,
        *,
        task: Task,
        status: str,
        exc_type: str | None = None,
        exc_message: Any = None,
        raw: Any = None,
    ) -> None:
        super().__init__(message, task_id=task.id, body=raw)
        self.task = task
        self.status = status
        self.exc_type = exc_type
        #: The worker's exception message (not put in ``str(error)``: it may echo submitted data).
        self.exc_message = exc_message
        self.raw = raw


class TaskTimeoutError(ProgenyError):
    """Polling reached its deadline. The task may still finish: resume with ``client.wait(err.task)``."""

    def __init__(self, message: str, *, task: Task, last_status: str | None, deadline: float) -> None:
        super().__init__(message, task_id=task.id)
        self.task = task
        #: Last state seen (``"PENDING"``, ``"STARTED"``, ``"NOT_FOUND"`` for a 404...), or None.
        self.last_status = last_status
        #: The deadline that ran out, in seconds.
        self.deadline = deadline
