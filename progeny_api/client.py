"""``ProgenyClient``: one ``requests.Session``, typed errors, careful retries, bounded polling.

Design notes (the why):

* **No hangs.** Every request has a finite (connect, read) timeout, and a watchdog bounds each attempt as a
  whole (a server trickling bytes never trips a read timeout); polling has a finite deadline that bounds
  the requests in flight too.
* **No duplicate billed tasks.** Progeny has no idempotency key, so a service POST is replayed only when the
  server provably did not process it (connect failure, 429, 503, or a 401 that rejected the token), unless
  ``retry_ambiguous_posts=True``. Reads (the task GET) and token calls are retried more freely.
* **Full bodies on every attempt.** Images are read into memory once; each attempt encodes a fresh body.
* **One retry layer.** urllib3's own retries stay off (requests' default), only this module retries.
* **No secrets in logs.** Only method, path, status, task id, attempt and elapsed time are logged.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import logging
import math
import os
import random
import re
import threading
import time
import uuid as _uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Literal, overload
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from ._auth import TokenManager
from ._multipart import ImageInput, Part, encode_multipart, load_image
from ._redact import install_filter, redact_body, redact_url
from ._retry import backoff_delay, parse_retry_after
from ._transport import Watchdog, WatchedAdapter
from ._version import __version__
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProgenyError,
    RateLimitError,
    RedirectError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from .models import FAILED_STATES, IMAGE_FIELDS, NOT_FOUND, SERVICES, SUCCESS, Task, TaskResult

log = logging.getLogger("progeny_api")
log.addHandler(logging.NullHandler())
install_filter(log)
# urllib3 logs request lines at DEBUG; scrub them too in case a proxy URL carries credentials.
install_filter(logging.getLogger("urllib3.connectionpool"))

DEFAULT_BASE_URL = "https://be.progeny.tech/api/v3"
#: (connect, read) seconds. ``None`` (wait forever) is refused on purpose.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
DEFAULT_MAX_RETRIES = 2
DEFAULT_POLL_DEADLINE = 120.0
DEFAULT_NOT_FOUND_GRACE = 30.0
DEFAULT_MAX_RETRY_AFTER = 60.0
#: Answers are small JSON objects; a body that decodes to more than this is refused, unread.
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024

TimeoutArg = float | tuple[float, float]

_SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: An attempt under a polling deadline is limited to the time left, but not below this.
_MIN_TIMEOUT = 1.0
_TEXT_BODY_LIMIT = 4096
_CHUNK = 16 * 1024


def _finite(name: str, value: float, *, minimum: float = 0.0) -> float:
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return number


def _normalise_timeout(timeout: TimeoutArg | None) -> tuple[float, float]:
    if timeout is None:
        raise ValueError("timeout=None would let a request hang forever; pass seconds or (connect, read)")
    if isinstance(timeout, tuple):
        if len(timeout) != 2:
            raise ValueError("timeout must be seconds or a (connect, read) tuple")
        connect, read = timeout
    else:
        connect = read = timeout
    return _finite("connect timeout", connect, minimum=0.001), _finite("read timeout", read, minimum=0.001)


def _form_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, (str, int, float, _uuid.UUID)):
        return str(value)
    raise TypeError(f"{name}: unsupported value type {type(value).__name__}")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _may_have_reached_server(exc: requests.RequestException) -> bool:
    """False only when the request provably was not sent (no connection was ever made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ReadTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason: Any = exc.args[0] if exc.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        return not isinstance(
            reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
    # ChunkedEncodingError, ContentDecodingError...: a response had started.
    return True


def _retryable_exception(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # a certificate problem does not fix itself in a second
    return isinstance(
        exc,
        (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ),
    )


def _read_body(resp: requests.Response, limit: int) -> tuple[bytes, bool]:
    """The decoded body, read in chunks, and whether it was complete.

    Reading stops once more than ``limit`` bytes came out of the decoder, so a compressed "bomb" is never
    inflated in memory.
    """
    data = bytearray()
    for chunk in resp.iter_content(_CHUNK):
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), False
    return bytes(data), True


def _loads(content: bytes) -> Any:
    """``json.loads`` that raises only ValueError (absurdly deep nesting is a RecursionError)."""
    try:
        return json.loads(content)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _text(resp: requests.Response, content: bytes) -> str:
    try:
        return content[: _TEXT_BODY_LIMIT * 4].decode(resp.encoding or "utf-8", errors="replace")[:_TEXT_BODY_LIMIT]
    except LookupError:  # an unknown charset
        return content[: _TEXT_BODY_LIMIT * 4].decode("utf-8", errors="replace")[:_TEXT_BODY_LIMIT]


def _parse_body(resp: requests.Response, content: bytes) -> Any:
    """Parsed JSON, or the (truncated) text of a non-JSON body."""
    try:
        return _loads(content)
    except ValueError:
        return _text(resp, content)


def _drop_redirect_body(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A response hook: requests reads a redirect's whole body before following it. Close it unread instead
    (nothing in it is used, and it could be a decompression bomb)."""
    if resp.is_redirect:
        resp.close()


class ProgenyClient:
    """Client for the Progeny v3 API.

    Credentials and base URL default to ``PROGENY_USERNAME``, ``PROGENY_PASSWORD`` and ``PROGENY_BASE_URL``.
    Use it as a context manager (or call :meth:`close`); it is safe to share between threads.

    Every service method submits the task and waits for it (``wait=False`` returns the :class:`Task`
    instead). ``submit()`` + ``wait()`` are the same two steps, exposed so that the task id can be persisted.
    """

    def __init__(
        self,
        username: str | None = None,
        password: str | None = None,
        *,
        base_url: str | None = None,
        timeout: TimeoutArg = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        poll_deadline: float = DEFAULT_POLL_DEADLINE,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        poll_interval: float = 0.5,
        poll_max_interval: float = 5.0,
        poll_multiplier: float = 1.5,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        retry_ambiguous_posts: bool = False,
        refresh_skew: float = 30.0,
        user_agent: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._username = username if username is not None else os.environ.get("PROGENY_USERNAME")
        self._password = password if password is not None else os.environ.get("PROGENY_PASSWORD")
        url = (base_url or os.environ.get("PROGENY_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) URL, got {redact_url(url)!r}")
        if parts.username is not None or parts.password is not None:
            # requests would turn them into Basic auth and replace our Bearer token: every call a 401
            raise ValueError(f"base_url must not contain credentials, got {redact_url(url)!r}; "
                             "pass username= and password= instead")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            log.warning("base URL uses plain http: credentials and images would travel unencrypted")
        self.base_url = url
        self._base_path = parts.path
        self.timeout = _normalise_timeout(timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError("max_retries must be an int >= 0")
        self.max_retries = max_retries
        self.poll_deadline = _finite("poll_deadline", poll_deadline)
        self.not_found_grace = _finite("not_found_grace", not_found_grace)
        self.poll_interval = _finite("poll_interval", poll_interval)
        self.poll_max_interval = _finite("poll_max_interval", poll_max_interval)
        self.poll_multiplier = _finite("poll_multiplier", poll_multiplier, minimum=1.0)
        self.max_retry_after = _finite("max_retry_after", max_retry_after)
        self.backoff_base = _finite("backoff_base", backoff_base)
        self.backoff_max = _finite("backoff_max", backoff_max)
        self.retry_ambiguous_posts = bool(retry_ambiguous_posts)
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1:
            raise ValueError("max_response_bytes must be an int >= 1")
        self.max_response_bytes = max_response_bytes

        self._session = requests.Session()
        # Our adapter lets a watchdog cut an attempt that overruns its time (see _send).
        self._session.mount("https://", WatchedAdapter())
        self._session.mount("http://", WatchedAdapter())
        self._session.hooks["response"].append(_drop_redirect_body)
        # TLS verification stays on (requests' default); we never set verify=False.
        self._session.headers["User-Agent"] = user_agent or f"progeny-api-python/{__version__}"
        self._session.headers["Accept"] = "application/json"
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._sleep = time.sleep
        self._tokens = TokenManager(
            obtain=self._obtain_tokens,
            refresh=self._refresh_tokens,
            refresh_skew=_finite("refresh_skew", refresh_skew),
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"ProgenyClient(base_url={redact_url(self.base_url)!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session and forget the tokens."""
        self._closed = True
        self._tokens.clear()
        self._session.close()

    def __enter__(self) -> ProgenyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the two steps ------------------------------------------------------------------------------------

    def submit(self, service: str, /, **fields: Any) -> Task:
        """POST a task to ``/services/<service>/`` and return its handle (not waiting for the result).

        Image fields (``image``, ``selfie_image``, ``front_id``, ``back_id``, ``passport_image``) accept
        bytes, a path, a binary file object or ``(filename, bytes[, content_type])``; they are read once.
        ``extend_data`` is always sent for image services (default False). Missing required fields raise
        ``ValueError`` before anything is sent.
        """
        if not isinstance(service, str) or not _SERVICE_NAME_RE.match(service):
            raise ValueError(f"invalid service name {service!r}")
        spec = SERVICES.get(service)
        values = {k: v for k, v in fields.items() if v is not None}
        if spec is not None:
            missing = [name for name in spec.required if name not in values]
            if missing:
                raise ValueError(f"{service} needs {', '.join(missing)}")
            if spec.extend_data:
                values.setdefault("extend_data", False)
        parts: list[Part] = []
        for name, value in values.items():
            if name in IMAGE_FIELDS:
                parts.append((name, load_image(name, value)))
            else:
                parts.append((name, _form_value(name, value)))
        path = spec.path if spec is not None else f"services/{service}/"
        body = self._call("POST", path, parts=parts, idempotent=False)
        task_id = body.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ResponseFormatError(
                f"POST /{path} answered without a task id", status_code=200, body=redact_body(body)
            )
        task = Task.new(task_id, service)
        log.info("submitted %s task %s", service, task.id)
        return task

    def wait(self, task: Task | str, *, deadline: float | None = None) -> TaskResult:
        """Poll until the task finishes, or ``deadline`` seconds (default ``poll_deadline``) have passed.

        PENDING/RECEIVED/STARTED/RETRY and unknown states mean "not yet"; so does a 404 during the first
        ``not_found_grace`` seconds of 404s. SUCCESS returns a :class:`TaskResult` (even when the verdict
        failed); FAILURE/REVOKED/REJECTED raise :class:`TaskFailedError`; the deadline raises
        :class:`TaskTimeoutError` (resume with ``wait(err.task)``). ``deadline=0`` polls exactly once.
        """
        handle = task if isinstance(task, Task) else Task(id=self._task_id(task))
        budget = self.poll_deadline if deadline is None else _finite("deadline", deadline)
        started = time.monotonic()
        end = started + budget
        interval = self.poll_interval
        first_not_found: float | None = None
        last_status: str | None = None
        polls = 0
        while True:
            polls += 1
            try:
                body = self._call(
                    "GET",
                    "services/task/",
                    params={"id": handle.id},
                    idempotent=True,
                    deadline=end,
                    task_id=handle.id,
                )
            except NotFoundError as exc:
                now = time.monotonic()
                if first_not_found is None:
                    first_not_found = now
                if now - first_not_found >= self.not_found_grace:
                    exc.task_id = handle.id
                    raise
                last_status = NOT_FOUND
            except (TransportError, ServerError, RateLimitError) as exc:
                exc.task_id = exc.task_id or handle.id
                if exc._deadline_exhausted or time.monotonic() >= end:
                    # Transient trouble that outlasted the deadline: report it as the timeout it is
                    # (the cause stays attached), so callers have one "resume later" path.
                    raise self._task_timeout(handle, last_status, budget) from exc
                raise
            except ProgenyError as exc:
                exc.task_id = exc.task_id or handle.id
                raise
            else:
                status = body.get("status")
                if "status" not in body and "result" not in body:
                    status = SUCCESS  # background_check: documented without the envelope
                if status == SUCCESS:
                    log.info(
                        "task %s finished after %d poll(s) in %.2fs",
                        handle.id,
                        polls,
                        time.monotonic() - started,
                    )
                    return TaskResult.from_response(body, task_id=handle.id, service=handle.service)
                if isinstance(status, str) and status in FAILED_STATES:
                    raise self._task_failed(handle, str(status), body)
                last_status = status if isinstance(status, str) else "UNKNOWN"
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise self._task_timeout(handle, last_status, budget)
            self._sleep(min(self._jitter(interval), remaining))
            if time.monotonic() >= end:
                raise self._task_timeout(handle, last_status, budget)
            interval = min(interval * self.poll_multiplier, self.poll_max_interval)

    # -- one method per service -----------------------------------------------------------------------------

    @overload
    def face_liveness(
        self,
        image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def face_liveness(
        self,
        image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def face_liveness(
        self,
        image: ImageInput,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """Liveness check of one face image."""
        return self._run("face_liveness", wait, deadline, image=image, extend_data=extend_data)

    @overload
    def register_face(
        self,
        image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def register_face(
        self,
        image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def register_face(
        self,
        image: ImageInput,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """Register a face; ``result.uuid`` is the id to pass to :meth:`authenticate_face`."""
        return self._run("register_face", wait, deadline, image=image, extend_data=extend_data)

    @overload
    def authenticate_face(
        self,
        image: ImageInput,
        uuid: str,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def authenticate_face(
        self,
        image: ImageInput,
        uuid: str,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def authenticate_face(
        self,
        image: ImageInput,
        uuid: str,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """Compare a face with one registered by :meth:`register_face`."""
        return self._run("authenticate_face", wait, deadline, image=image, uuid=uuid, extend_data=extend_data)

    @overload
    def ocr_card(
        self,
        front_id: ImageInput,
        back_id: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def ocr_card(
        self,
        front_id: ImageInput,
        back_id: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def ocr_card(
        self,
        front_id: ImageInput,
        back_id: ImageInput,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """Read an ID card or driving licence (both sides)."""
        return self._run(
            "ocr_card", wait, deadline, front_id=front_id, back_id=back_id, extend_data=extend_data
        )

    @overload
    def ocr_passport(
        self,
        passport_image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def ocr_passport(
        self,
        passport_image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def ocr_passport(
        self,
        passport_image: ImageInput,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """Read a passport's data page."""
        return self._run(
            "ocr_passport", wait, deadline, passport_image=passport_image, extend_data=extend_data
        )

    @overload
    def kyc_card(
        self,
        selfie_image: ImageInput,
        front_id: ImageInput,
        back_id: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def kyc_card(
        self,
        selfie_image: ImageInput,
        front_id: ImageInput,
        back_id: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def kyc_card(
        self,
        selfie_image: ImageInput,
        front_id: ImageInput,
        back_id: ImageInput,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """OCR of a card, liveness of the selfie, and selfie-vs-card-photo comparison."""
        return self._run(
            "kyc_card",
            wait,
            deadline,
            selfie_image=selfie_image,
            front_id=front_id,
            back_id=back_id,
            extend_data=extend_data,
        )

    @overload
    def kyc_passport(
        self,
        selfie_image: ImageInput,
        passport_image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def kyc_passport(
        self,
        selfie_image: ImageInput,
        passport_image: ImageInput,
        *,
        extend_data: bool = ...,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def kyc_passport(
        self,
        selfie_image: ImageInput,
        passport_image: ImageInput,
        *,
        extend_data: bool = False,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """OCR of a passport, liveness of the selfie, and selfie-vs-passport-photo comparison."""
        return self._run(
            "kyc_passport",
            wait,
            deadline,
            selfie_image=selfie_image,
            passport_image=passport_image,
            extend_data=extend_data,
        )

    @overload
    def background_check(
        self,
        fullname: str,
        birth_date: str | _dt.date,
        *,
        wait: Literal[True] = ...,
        deadline: float | None = ...,
    ) -> TaskResult: ...
    @overload
    def background_check(
        self,
        fullname: str,
        birth_date: str | _dt.date,
        *,
        wait: Literal[False],
        deadline: float | None = ...,
    ) -> Task: ...
    def background_check(
        self,
        fullname: str,
        birth_date: str | _dt.date,
        *,
        wait: bool = True,
        deadline: float | None = None,
    ) -> TaskResult | Task:
        """Sanctions/PEP screening of a name and birth date (``yyyy-mm-dd`` or a ``date``)."""
        return self._run("background_check", wait, deadline, fullname=fullname, birth_date=birth_date)

    def _run(self, service: str, wait: bool, deadline: float | None, **fields: Any) -> TaskResult | Task:
        if deadline is not None:
            _finite("deadline", deadline)  # before the (billed) POST, not after it
        task = self.submit(service, **fields)
        return self.wait(task, deadline=deadline) if wait else task

    # -- tokens ---------------------------------------------------------------------------------------------

    def _obtain_tokens(self, deadline: float | None = None) -> Mapping[str, Any]:
        if not self._username or not self._password:
            raise AuthenticationError(
                "no credentials: pass username/password or set PROGENY_USERNAME and PROGENY_PASSWORD"
            )
        return self._call(
            "POST",
            "accounts/token/obtain/",
            parts=[("username", self._username), ("password", self._password)],
            auth=False,
            idempotent=True,
            deadline=deadline,
            secret=True,
        )

    def _refresh_tokens(self, refresh: str, deadline: float | None = None) -> Mapping[str, Any]:
        return self._call(
            "POST",
            "accounts/token/refresh/",
            parts=[("refresh", refresh)],
            auth=False,
            idempotent=True,
            deadline=deadline,
            secret=True,
        )

    # -- transport ------------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        parts: list[Part] | None = None,
        params: Mapping[str, str] | None = None,
        auth: bool = True,
        idempotent: bool,
        deadline: float | None = None,
        task_id: str | None = None,
        secret: bool = False,
    ) -> dict[str, Any]:
        """One logical call: attempts, retries, the 401 replay, and error mapping. Returns the JSON object."""
        if self._closed:
            raise ProgenyError("the client is closed")
        url = f"{self.base_url}/{path}"
        shown_path = f"{self._base_path}/{path}"
        retries = 0
        replayed_401 = False
        call_started = time.monotonic()
        while True:
            headers: dict[str, str] = {}
            token: str | None = None
            if auth:
                token = self._tokens.access_token(deadline)
                headers["Authorization"] = f"Bearer {token}"
            data: bytes | None = None
            if parts is not None:
                # A fresh body for every attempt, from bytes read once.
                data, headers["Content-Type"] = encode_multipart(parts)
            started = time.monotonic()
            attempt = retries + 1 + int(replayed_401)
            try:
                resp, content, complete = self._send(method, url, params, data, headers, deadline)
            except requests.RequestException as exc:
                elapsed = time.monotonic() - started
                reached = _may_have_reached_server(exc)
                total = time.monotonic() - call_started
                tries = f"{attempt} attempts in {total:.2f}s, the last " if attempt > 1 else ""
                transport_error = TransportError(
                    f"{method} {shown_path} failed ({tries}after {elapsed:.2f}s): {type(exc).__name__}"
                    + (" (the request may have reached the server)" if reached else ""),
                    may_have_reached_server=reached,
                    method=method,
                    path=shown_path,
                    task_id=task_id,
                )
                log.debug(
                    "%s %s -> %s after %.3fs (attempt %d)%s",
                    method,
                    shown_path,
                    type(exc).__name__,
                    elapsed,
                    attempt,
                    f" task={task_id}" if task_id else "",
                )
                safe = not reached or idempotent or self.retry_ambiguous_posts
                if safe and _retryable_exception(exc):
                    delay = self._backoff(retries)
                    if self._may_retry(retries, delay, deadline):
                        self._log_retry(method, shown_path, type(exc).__name__, delay, retries)
                        self._sleep(delay)
                        retries += 1
                        continue
                    transport_error._deadline_exhausted = retries < self.max_retries
                raise transport_error from None
            elapsed = time.monotonic() - started
            status = resp.status_code
            log.debug(
                "%s %s -> %d in %.3fs (attempt %d)%s",
                method,
                shown_path,
                status,
                elapsed,
                attempt,
                f" task={task_id}" if task_id else "",
            )
            if 200 <= status < 300:
                return self._json_object(resp, content, complete, method, shown_path, task_id, secret)
            body = _parse_body(resp, content)  # a truncated error page is still the error it reports
            if secret:
                body = redact_body(body)
            if status == 401 and auth and token is not None and not replayed_401:
                # The server rejected the token, so it did not process the request: refresh (once, shared
                # with other threads) and replay the full request once.
                log.info("%s %s -> 401; refreshing the access token and replaying once", method, shown_path)
                self._tokens.invalidate(token)
                replayed_401 = True
                continue
            error = self._status_error(resp, body, method, shown_path, task_id)
            if self._retryable_status(status, idempotent):
                server_hint = parse_retry_after(resp.headers)
                if server_hint is not None and server_hint > self.max_retry_after:
                    raise error  # do not sleep for minutes inside a library call: let the caller decide
                delay = server_hint if server_hint is not None else self._backoff(retries)
                if self._may_retry(retries, delay, deadline):
                    self._log_retry(method, shown_path, f"HTTP {status}", delay, retries)
                    self._sleep(delay)
                    retries += 1
                    continue
                error._deadline_exhausted = retries < self.max_retries
            raise error

    def _retryable_status(self, status: int, idempotent: bool) -> bool:
        if status in (408, 429, 503):
            return True  # the server refused the request before doing the work
        if status in (500, 502, 504):
            return idempotent or self.retry_ambiguous_posts  # the work may have been done
        return False

    def _may_retry(self, retries: int, delay: float, deadline: float | None) -> bool:
        if retries >= self.max_retries:
            return False
        return deadline is None or time.monotonic() + delay < deadline

    def _log_retry(self, method: str, path: str, reason: str, delay: float, retries: int) -> None:
        log.info(
            "%s %s: %s; retry %d of %d in %.2fs", method, path, reason, retries + 1, self.max_retries, delay
        )

    def _backoff(self, retries: int) -> float:
        with self._rng_lock:
            return backoff_delay(retries, self.backoff_base, self.backoff_max, self._rng)

    def _jitter(self, interval: float) -> float:
        with self._rng_lock:
            return interval * (1.0 - 0.25 * self._rng.random())

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
        deadline: float | None,
    ) -> tuple[requests.Response, bytes, bool]:
        """One attempt, headers and body, within ``connect + read`` seconds in all (and within the polling
        deadline, but at least ``_MIN_TIMEOUT``). Returns the response, its body and whether it was whole.

        A server that overruns the limit, even one trickling bytes under the read timeout, gets its socket
        shut by the watchdog; that is raised as a ``requests.ReadTimeout``.
        """
        connect, read = self.timeout
        limit = connect + read
        if deadline is not None:
            limit = min(limit, max(deadline - time.monotonic(), _MIN_TIMEOUT))
        watchdog = Watchdog(limit)
        try:
            with watchdog:
                resp = self._session.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    timeout=(min(connect, limit), min(read, limit)),
                    allow_redirects=method == "GET",
                    stream=True,
                )
                try:
                    if resp.is_redirect:  # never followed here (POST): only the Location header matters
                        content, complete = b"", True
                    else:
                        content, complete = _read_body(resp, self.max_response_bytes)
                finally:
                    resp.close()  # back to the pool if the body was read whole, else the connection is dropped
        except requests.RequestException as exc:
            if watchdog.tripped:
                raise requests.ReadTimeout(f"no complete response within {limit:.1f}s") from exc
            raise
        if watchdog.tripped:  # the body ended early, cut by the watchdog: it is not the whole answer
            raise requests.ReadTimeout(f"no complete response within {limit:.1f}s")
        return resp, content, complete

    def _json_object(
        self,
        resp: requests.Response,
        content: bytes,
        complete: bool,
        method: str,
        path: str,
        task_id: str | None,
        secret: bool,
    ) -> dict[str, Any]:
        if not complete:
            raise ResponseFormatError(
                f"{method} {path}: HTTP {resp.status_code} with a body over {self.max_response_bytes} bytes",
                status_code=resp.status_code,
                headers=resp.headers,
                method=method,
                path=path,
                task_id=task_id,
            )
        try:
            body = _loads(content)
        except ValueError:
            text = _text(resp, content)
            raise ResponseFormatError(
                f"{method} {path}: HTTP {resp.status_code} with a body that is not JSON",
                status_code=resp.status_code,
                body=redact_body(text) if secret else text,
                headers=resp.headers,
                method=method,
                path=path,
                task_id=task_id,
            ) from None
        if not isinstance(body, dict):
            raise ResponseFormatError(
                f"{method} {path}: HTTP {resp.status_code} with JSON that is not an object",
                status_code=resp.status_code,
                body=redact_body(body) if secret else body,
                headers=resp.headers,
                method=method,
                path=path,
                task_id=task_id,
            )
        return body

    def _status_error(
        self, resp: requests.Response, body: Any, method: str, path: str, task_id: str | None
    ) -> APIStatusError:
        status = resp.status_code
        detail = body.get("detail") if isinstance(body, dict) else None
        suffix = f": {detail[:200]}" if isinstance(detail, str) and detail else ""
        cls: type[APIStatusError]
        if 300 <= status < 400:
            cls = RedirectError
            message = f"{method} {path} was redirected (HTTP {status}); redirects are not followed on POST"
        elif status == 400:
            cls = BadRequestError
            fields = ", ".join(str(k) for k in body) if isinstance(body, dict) else ""
            message = f"{method} {path}: HTTP 400" + (f", invalid fields: {fields}" if fields else suffix)
        elif status == 401:
            cls, message = AuthenticationError, f"{method} {path}: HTTP 401{suffix}"
        elif status == 403:
            cls, message = PermissionDeniedError, f"{method} {path}: HTTP 403{suffix}"
        elif status == 404:
            cls, message = NotFoundError, f"{method} {path}: HTTP 404{suffix}"
        elif status == 429:
            cls = RateLimitError
            hint = parse_retry_after(resp.headers)
            message = f"{method} {path}: HTTP 429 (rate limited" + (
                f", retry after {hint:.1f}s)" if hint is not None else ")"
            )
        elif status >= 500:
            cls = ServerError
            kind = "" if isinstance(body, (dict, list)) else " (non-JSON body)"
            message = f"{method} {path}: HTTP {status}{kind}{suffix}"
        else:
            cls, message = APIStatusError, f"{method} {path}: HTTP {status}{suffix}"
        return cls(
            message,
            status_code=status,
            body=body,
            headers=resp.headers,
            method=method,
            path=path,
            task_id=task_id,
            retry_after=parse_retry_after(resp.headers),
        )

    # -- helpers ------------------------------------------------------------------------------------------

    @staticmethod
    def _task_id(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a task id must be a non-empty string (the UUID returned by submit)")
        return value.strip()

    @staticmethod
    def _task_failed(task: Task, status: str, body: Mapping[str, Any]) -> TaskFailedError:
        result = body.get("result")
        exc_type = result.get("exc_type") if isinstance(result, Mapping) else None
        exc_message = result.get("exc_message") if isinstance(result, Mapping) else None
        name = exc_type if isinstance(exc_type, str) else None
        return TaskFailedError(
            f"task {task.id} ended {status}" + (f" ({name})" if name else ""),
            task=task,
            status=status,
            exc_type=name,
            exc_message=exc_message,
            raw=body,
        )

    @staticmethod
    def _task_timeout(task: Task, last_status: str | None, budget: float) -> TaskTimeoutError:
        return TaskTimeoutError(
            f"task {task.id} not finished within {budget:.1f}s (last status: {last_status})",
            task=task,
            last_status=last_status,
            deadline=budget,
        )
