"""The service's front door: request body size and concurrency, enforced before the app sees a request.

A pure ASGI middleware, so that it acts on the raw byte stream:

* a ``Content-Length`` above the limit is answered 413 before the body is read;
* a body without a length (chunked) is counted while it is read and answered 413 once it passes the limit;
* a request for a busy endpoint is answered 503 with ``Retry-After`` before its body is read, so that
  at most ``limit`` bodies per endpoint group are ever held in memory (no unbounded queue);
* a body that stops arriving (nothing for ``body_timeout`` seconds) is answered 408, and so is one
  still trickling in after ``TOTAL_BODY_FACTOR`` times that (a slow-loris client would otherwise hold
  one of the few slots for as long as it likes); a slow but steady upload is never cut before that.

The body is then handed to the app in one piece (it has to be in memory for the check anyway).
Before an early 413/503, a bounded amount of the unread body is drained so that clients that send
the whole body before reading the answer (most HTTP libraries) see the status instead of a reset.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import codes
from ..guidance import hint
from ._locale import resolve_locale

#: Give up draining an unwanted body after this many seconds (a lingering close, as nginx does).
DRAIN_SECONDS = 2.0
#: A whole body may take this many times ``body_timeout`` (300 s by default: 2 MB at 7 kB/s).
TOTAL_BODY_FACTOR = 10


class _Stalled(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class Limiter:
    """A non-blocking counting semaphore for one event loop (no lock needed: one thread touches it)."""

    def __init__(self, name: str, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"{name}: the concurrency limit must be at least 1, got {limit}")
        self.name = name
        self.limit = limit
        self.active = 0
        #: Requests answered 503 so far (for /healthz).
        self.rejected = 0

    def try_acquire(self) -> bool:
        if self.active >= self.limit:
            self.rejected += 1
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)

    def to_dict(self) -> dict[str, int]:
        return {"limit": self.limit, "active": self.active, "rejected": self.rejected}


class _TooLarge(Exception):
    def __init__(self, received: int) -> None:
        self.received = received


class _Disconnected(Exception):
    pass


class UploadGuard:
    """ASGI middleware: body size limit, body read timeout and per-endpoint-group concurrency limits."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        limiter_for: Callable[[str], Limiter | None],
        retry_after: int = 1,
        body_timeout: float = 30.0,
        default_locale: str = "en",
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limiter_for = limiter_for
        self.retry_after = retry_after
        self.body_timeout = body_timeout
        self.default_locale = default_locale

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared: int | None = None
        raw_length = headers.get("content-length")
        if raw_length is not None:
            try:
                declared = int(raw_length)
                if declared < 0:
                    raise ValueError
            except ValueError:
                await _send_json(send, 400, {"error": "bad_request", "message": "invalid Content-Length header"})
                return
        # A client that asked "Expect: 100-continue" has not sent its body yet: answer without reading it.
        expects_continue = headers.get("expect", "").lower() == "100-continue"
        if declared is not None and declared > self.max_body_bytes:
            if not expects_continue:
                await self._drain(receive, declared)
            await _send_json(send, 413, self._too_large_body(scope, declared), close=True)
            return

        limiter = self.limiter_for(scope["path"])
        if limiter is not None and not limiter.try_acquire():
            if not expects_continue:
                await self._drain(receive, declared)
            body = {
                "error": "busy",
                "message": f"The service is busy ({limiter.limit} {limiter.name} request(s) in progress). "
                f"Retry after {self.retry_after} s.",
                "retry_after": self.retry_after,
            }
            await _send_json(send, 503, body, headers=[(b"retry-after", str(self.retry_after).encode())])
            return
        try:
            try:
                body_bytes = await self._read_body(receive)
            except _TooLarge as exc:
                await self._drain(receive, None)
                await _send_json(send, 413, self._too_large_body(scope, exc.received), close=True)
                return
            except _Stalled as exc:
                await _send_json(send, 408, {"error": "upload_timeout", "message": exc.message}, close=True)
                return
            except _Disconnected:
                return
            await self.app(scope, _replay(body_bytes, receive), send)
        finally:
            if limiter is not None:
                limiter.release()

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        total = self.body_timeout * TOTAL_BODY_FACTOR
        deadline = time.monotonic() + total
        while True:
            left = deadline - time.monotonic()
            try:
                with anyio.fail_after(max(0.0, min(self.body_timeout, left))):
                    message = await receive()
            except TimeoutError:
                if left <= self.body_timeout:
                    raise _Stalled(f"The upload took longer than {total:g} s ({size} bytes received).") from None
                raise _Stalled(f"The upload stalled: nothing arrived for {self.body_timeout:g} s "
                               f"({size} bytes received).") from None
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise _TooLarge(size)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _drain(self, receive: Receive, declared: int | None) -> None:
        """Read and discard up to twice the limit for up to DRAIN_SECONDS, so the client sees our answer."""
        cap = 2 * self.max_body_bytes
        if declared is not None and declared > cap:
            return  # too much to be polite about: answer now and close the connection
        seen = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            while seen <= cap:
                message = await receive()
                if message["type"] != "http.request":
                    return
                seen += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return

    def _locale(self, scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        values = parse_qs(query).get("locale")
        accept = Headers(scope=scope).get("accept-language")
        return resolve_locale(values[0] if values else None, accept, self.default_locale)

    def _too_large_body(self, scope: Scope, received: int) -> dict[str, Any]:
        locale = self._locale(scope)
        limit = self.max_body_bytes
        message = f"The upload ({received} bytes or more) is larger than the {limit} bytes this service accepts"
        return {
            "error": "upload_too_large",
            "message": message,
            "passed": False,
            "issues": {"preflight": {codes.FILE_TOO_LARGE: message}},
            "details": [
                {
                    "code": codes.FILE_TOO_LARGE,
                    "severity": "error",
                    "message": message,
                    "hint": hint(codes.FILE_TOO_LARGE, locale),
                    "measured": received,
                    "limit": limit,
                }
            ],
            "hints": [hint(codes.FILE_TOO_LARGE, locale)],
            "locale": locale,
        }


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the server (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
) -> None:
    payload = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *(headers or []),
    ]
    if close:
        raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})

