"""A local stand-in for the Progeny API: real HTTP on loopback, the documented contract, fault injection.

Built on ``http.server`` (one thread per connection, HTTP/1.1 keep-alive) so that it needs nothing beyond
the standard library. It mimics the frameworks the API is built on: SimpleJWT tokens (real HS256 JWTs
with ``token_type``/``exp``/``jti``/``user_id``, rotation, blacklisting), Django REST framework validation
and error bodies, Django's ``APPEND_SLASH`` 301, HTML error pages, and Celery task states stored by
django-celery-results (integer row id, UUID task id, an early 404 before a worker stores the row).

Everything a test needs to observe is recorded: counters, every request (fields and uploaded bytes), tasks.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .._jwt import encode_hs256, verify_hs256
from .._redact import install_filter
from ..models import SERVICES, ServiceSpec, to_bool
from ._results import (
    MESSAGES,
    FaceChecker,
    Judge,
    UploadedFile,
    background_block,
    document_fields,
    envelope,
    failed_check,
    header_face_checker,
    liveness_passed,
    preflight_face_checker,
)

log = logging.getLogger("progeny_api.sandbox")
install_filter(log)

PREFIX = "/api/v3"
DEFAULT_USERNAME = "sandbox"
DEFAULT_PASSWORD = "sandbox-password"
#: 404 first (no row until a worker stores the task), then the Celery states, one step per poll.
DEFAULT_LIFECYCLE: tuple[str, ...] = ("404", "PENDING", "STARTED", "SUCCESS")
TERMINAL_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})

_REQUIRED = "This field is required."
_BLANK = "This field may not be blank."
_NO_FILE = "No file was submitted."
_NOT_A_FILE = "The submitted data was not a file. Check the encoding type on the form."
_EMPTY_FILE = "The submitted file is empty."
_TOKEN_INVALID = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
_TOKEN_BLACKLISTED = {"detail": "Token is blacklisted", "code": "token_not_valid"}
_ACCESS_NOT_VALID = {
    "detail": "Given token not valid for any token type",
    "code": "token_not_valid",
    "messages": [
        {"token_class": "AccessToken", "token_type": "access", "message": "Token is invalid or expired"}
    ],
}
_NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
_BAD_CREDENTIALS = {"detail": "No active account found with the given credentials"}
_WWW_AUTH = ("WWW-Authenticate", 'Bearer realm="api"')

_HTML_PAGES = {
    404: (
        '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
        "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n"
    ),
    500: (
        '<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n'
        "  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n"
    ),
}


def _nginx_page(status: int, reason: str) -> str:
    return (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )


_REASONS = {
    400: "Bad Request",
    408: "Request Time-out",
    413: "Request Entity Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


def _allow(method: str) -> str:
    """The Allow header of a DRF view (Django adds HEAD to views that have GET)."""
    return "GET, HEAD, OPTIONS" if method == "GET" else f"{method}, OPTIONS"


def _options_metadata(route: str, service: str | None) -> dict[str, Any]:
    """DRF's SimpleMetadata for an OPTIONS request (the view names are inferred, not documented)."""
    names = {"obtain": "Token Obtain Pair", "refresh": "Token Refresh", "task": "Task"}
    return {
        "name": names.get(route) or f"{(service or 'service').replace('_', ' ').title()} Service",
        "description": "",
        "renders": ["application/json"],
        "parses": ["application/json", "application/x-www-form-urlencoded", "multipart/form-data"],
    }


def html_page(status: int) -> str:
    """The HTML error page Django (404/500) or nginx (413/502/503/504) would send."""
    return _HTML_PAGES.get(status) or _nginx_page(status, _REASONS.get(status, "Error"))


# ---------------------------------------------------------------------------------------------------------
# Records, faults, tasks
# ---------------------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One request as the sandbox saw it. ``status`` is None when the connection was dropped."""

    method: str
    path: str
    route: str | None
    service: str | None
    fields: dict[str, str]
    files: dict[str, UploadedFile]
    at: float
    status: int | None = None
    fault: str | None = None
    authorization: str | None = field(default=None, repr=False)


_FAULT_ALIASES = {
    "rate_limit": "429",
    "html_500": "500",
    "html_502": "502",
    "html_503": "503",
    "html_504": "504",
    "401": "token_expired",
    "expired_token": "token_expired",
    "invalid_token": "token_expired",
    "malformed": "malformed_json",
}
FAULT_KINDS = frozenset(
    {
        "429",
        "500",
        "502",
        "503",
        "504",
        "drop",
        "slow",
        "token_expired",
        "malformed_json",
        "redirect",
        "status",
    }
)


@dataclass
class Fault:
    """A queued misbehaviour for the next ``times`` requests matching ``target``."""

    target: str
    kind: str
    times: int = 1
    retry_after: Any = None
    delay: float = 2.0
    status: int | None = None
    body: Any = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: For ``drop``: handle the request (e.g. create the task) before dropping the connection.
    process: bool = True
    hits: int = 0

    @property
    def remaining(self) -> int:
        return self.times - self.hits


@dataclass
class SandboxTask:
    """A task in the store. ``lifecycle`` advances one step per poll; the last step sticks."""

    id: str
    record_id: int
    service: str
    lifecycle: tuple[str, ...]
    result: Mapping[str, Any] | None
    failure: Mapping[str, Any] | None = None
    polls: int = 0
    created_at: float = field(default_factory=time.time)


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> _Response:
        body = json.dumps(obj).encode()
        return cls(status, body, [("Content-Type", "application/json"), ("Vary", "Accept"), *headers])

    @classmethod
    def html(cls, status: int, headers: Iterable[tuple[str, str]] = ()) -> _Response:
        return cls(
            status, html_page(status).encode(), [("Content-Type", "text/html; charset=utf-8"), *headers]
        )


# ---------------------------------------------------------------------------------------------------------
# Body parsing
# ---------------------------------------------------------------------------------------------------------

_PARAM_RE = re.compile(r'(\w+)\*?=(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, _, rest = value.partition(";")
    params = {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
        for m in _PARAM_RE.finditer(rest)
    }
    return main.strip().lower(), params


class _UnsupportedMediaType(Exception):
    pass


class _ParseError(Exception):
    pass


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Fields and files of a multipart or urlencoded body, as Django would see them.

    Raises ``_UnsupportedMediaType`` (DRF 415) for anything else, e.g. JSON.
    """
    media, params = _header_params(content_type or "")
    if not body and not media:
        return {}, {}
    if media == "application/x-www-form-urlencoded":
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}, {}
    if media != "multipart/form-data":
        raise _UnsupportedMediaType(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise _ParseError("Multipart form parse error - Invalid boundary in multipart: None")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    chunks = body.split(delimiter)
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header_name, _, value = line.partition(":")
            headers[header_name.strip().lower()] = value.strip()
        _, disposition = _header_params(headers.get("content-disposition", ""))
        name = disposition.get("name")
        if name is None:
            continue
        filename = disposition.get("filename")
        if filename is not None:
            if not filename:
                continue  # Django skips a file part without a name: "No file was submitted."
            files[name] = UploadedFile(
                field=name,
                filename=filename,
                content_type=headers.get("content-type", "application/octet-stream"),
                data=content,
            )
        else:
            fields[name] = content.decode("utf-8", "replace")
    return fields, files


# ---------------------------------------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------------------------------------

LifecycleArg = Iterable[str]
JudgeArg = Judge | str | None


class Sandbox:
    """A local Progeny API: ``with Sandbox() as sb:`` then point a client at ``sb.base_url``.

    Args:
        host, port: where to listen (loopback and a free port by default).
        username, password: the one account (defaults ``sandbox`` / ``sandbox-password``).
        access_lifetime, refresh_lifetime: token lifetimes in seconds (SimpleJWT: 300 s / 14 days).
        rotate_refresh_tokens, blacklist_after_rotation: SimpleJWT settings (both on by default, so a client
            that re-uses a spent refresh token is caught: ``stats["refresh_rejected"]``).
        lifecycle: task states returned by successive polls (``"404"`` answers 404).
        judge: None/"default" (vision-free, from the image header), "preflight" (runs ``preflight.check``;
            needs the vision stack), or a callable ``judge(service, files, fields)`` returning the task
            ``data`` (or ``{"status": ..., "data": ...}``), or None to fall back to the default.
        background_check_envelope: background_check results come without the envelope, as documented.
        watchlist: full names that background checks report as a potential match.
        max_body_bytes: larger bodies get nginx's HTML 413.
        max_records: how many recent requests (with their uploaded bytes) to keep.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        access_lifetime: float = 300.0,
        refresh_lifetime: float = 14 * 24 * 3600.0,
        rotate_refresh_tokens: bool = True,
        blacklist_after_rotation: bool = True,
        lifecycle: LifecycleArg = DEFAULT_LIFECYCLE,
        judge: JudgeArg = None,
        background_check_envelope: bool = False,
        watchlist: Iterable[str] = (),
        max_body_bytes: int = 20 * 1024 * 1024,
        max_records: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.access_lifetime = float(access_lifetime)
        self.refresh_lifetime = float(refresh_lifetime)
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.blacklist_after_rotation = blacklist_after_rotation
        self.lifecycle = _check_lifecycle(lifecycle)
        self.judge: Judge | None = None
        self.face_checker: FaceChecker = header_face_checker
        self.set_judge(judge)
        self.background_check_envelope = background_check_envelope
        self.watchlist = frozenset(name.strip().casefold() for name in watchlist)
        self.max_body_bytes = max_body_bytes

        self._secret = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self._stats: collections.Counter[str] = collections.Counter()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=max_records)
        self._faults: list[Fault] = []
        self._tasks: dict[str, SandboxTask] = {}
        self._next_record_id = 2100
        self._blacklist: set[str] = set()
        self._revoked_access: set[str] = set()
        self._issued_access: set[str] = set()
        self._issued_refresh: set[str] = set()
        self._faces: dict[str, str] = {}  # registered face uuid -> sha256 of the image
        self._scripted: dict[str, tuple[str, str | None]] = {}  # image sha256 -> (code, message)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._stop.clear()
        server = _Server((self.host, self.port), _Handler, self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="progeny-sandbox", daemon=True
        )
        self._thread.start()
        log.info("sandbox listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Start, block until Ctrl-C, stop (what ``python -m progeny_api.sandbox`` does)."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API root to give the client, e.g. ``http://127.0.0.1:54321/api/v3``."""
        return self.origin + PREFIX

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"<Sandbox {self.base_url} {state}>"

    # -- configuration and fault injection ----------------------------------------------------------------

    def set_judge(self, judge: JudgeArg) -> None:
        """Swap the verdict logic (see the class docstring)."""
        if judge is None or judge == "default":
            self.judge, self.face_checker = None, header_face_checker
        elif judge == "preflight":
            self.judge, self.face_checker = None, preflight_face_checker
        elif callable(judge):
            self.judge, self.face_checker = judge, header_face_checker
        else:
            raise ValueError(f"judge must be None, 'default', 'preflight' or a callable, got {judge!r}")

    def set_verdict(self, image: bytes, code: str | None, message: str | None = None) -> None:
        """Make the default judge report ``code`` (e.g. ``"FACE_ANGLE_TOO_LARGE"``) for exactly these
        image bytes, wherever they are uploaded; ``code=None`` makes them pass."""
        with self._lock:
            self._scripted[hashlib.sha256(image).hexdigest()] = (code or "", message)

    def set_credentials(self, username: str, password: str) -> None:
        with self._lock:
            self.username, self.password = username, password

    def inject(self, target: str, kind: str, *, times: int = 1, **params: Any) -> Fault:
        """Queue a fault for the next ``times`` requests matching ``target``.

        ``target``: ``"obtain"``, ``"refresh"``, ``"token"`` (both), ``"task"`` (the poll), a service name,
        ``"services"`` (any service POST), ``"*"`` (anything), or a path such as ``"/services/task/"``.

        ``kind`` (params in brackets):

        * ``"429"`` [retry_after=1; None for no header]: DRF throttle body and ``Retry-After``.
        * ``"500"``, ``"502"``, ``"503"``, ``"504"`` [retry_after]: an HTML error page.
        * ``"drop"`` [process=True]: read the body, handle the request (a service POST creates its task),
          then close the connection without answering.
        * ``"slow"`` [delay=2.0]: sleep before handling the request normally.
        * ``"token_expired"``: 401 ``token_not_valid`` (on refresh: the refresh token is refused).
        * ``"malformed_json"``: 200 with a truncated JSON body.
        * ``"redirect"`` [status=301]: a redirect to the same path and query string.
        * ``"status"`` [status, body, content_type, headers]: any response you like.
        """
        kind = _FAULT_ALIASES.get(kind, kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; choose from {sorted(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        if kind == "429":
            params.setdefault("retry_after", 1)
        fault = Fault(target=target, kind=kind, times=times, **params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far invalid (a token expiring while a client is polling)."""
        with self._lock:
            self._revoked_access |= self._issued_access

    def revoke_refresh_tokens(self) -> None:
        """Blacklist every refresh token issued so far: the next refresh is refused, forcing a login."""
        with self._lock:
            self._blacklist |= self._issued_refresh

    # -- inspection ---------------------------------------------------------------------------------------

    @property
    def stats(self) -> collections.Counter[str]:
        """A snapshot of the counters: ``obtain``, ``obtain_failed``, ``refresh``, ``refresh_rejected``,
        ``post``, ``post:<service>``, ``tasks_created``, ``task_get``, ``unauthorized``, ``dropped``,
        ``fault:<kind>``..."""
        with self._lock:
            return collections.Counter(self._stats)

    def post_count(self, service: str | None = None) -> int:
        """Service POSTs received (whatever happened to them), for one service or all."""
        with self._lock:
            return self._stats[f"post:{service}" if service else "post"]

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def uploads(self, service: str | None = None, field: str | None = None) -> list[UploadedFile]:
        """Files received by service POSTs (most recent ``max_records`` requests), in arrival order."""
        found: list[UploadedFile] = []
        for record in self.requests:
            if record.route != "service" or (service and record.service != service):
                continue
            found.extend(f for name, f in record.files.items() if field is None or name == field)
        return found

    @property
    def tasks(self) -> dict[str, SandboxTask]:
        with self._lock:
            return dict(self._tasks)

    def task(self, task_id: str) -> SandboxTask:
        with self._lock:
            return self._tasks[task_id]

    def reset_stats(self) -> None:
        with self._lock:
            self._stats.clear()
            self._records.clear()

    # -- request handling (called from handler threads) -----------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str | None, str | None]:
        """(route, service) for a path below the prefix; route None for an unknown path."""
        if not path.startswith(PREFIX + "/"):
            return None, None
        rel = path[len(PREFIX) :]
        if rel == "/accounts/token/obtain/":
            return "obtain", None
        if rel == "/accounts/token/refresh/":
            return "refresh", None
        if rel == "/services/task/":
            return "task", None
        match = re.fullmatch(r"/services/([a-z0-9_]+)/", rel)
        if match and match.group(1) in SERVICES:
            return "service", match.group(1)
        if not rel.endswith("/") and self._route(method, path + "/")[0] is not None:
            return "append_slash", None
        return None, None

    def _take_fault(self, route: str | None, service: str | None, path: str) -> Fault | None:
        if route is None or route == "append_slash":
            return None
        names = {"*", route}
        if route in ("obtain", "refresh"):
            names.add("token")
        if route == "service" and service:
            names |= {service, "services", "service"}
        rel = path[len(PREFIX) :]
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and (fault.target in names or fault.target in (path, rel)):
                    fault.hits += 1
                    self._stats[f"fault:{fault.kind}"] += 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _fault_response(self, fault: Fault, route: str, raw_path: str) -> _Response:
        """The response of an injected fault. ``raw_path`` is the request target, query string included."""
        extra = list(fault.headers.items())
        if fault.retry_after is not None:
            extra.append(("Retry-After", str(fault.retry_after)))
        if fault.kind == "429":
            wait = fault.retry_after if fault.retry_after is not None else 1
            detail = f"Request was throttled. Expected available in {wait} seconds."
            return _Response.json(429, {"detail": detail}, extra)
        if fault.kind in ("500", "502", "503", "504"):
            return _Response.html(int(fault.kind), extra)
        if fault.kind == "token_expired":
            if route == "refresh":
                return _Response.json(401, _TOKEN_INVALID, [_WWW_AUTH, *extra])
            if route == "obtain":
                return _Response.json(401, _BAD_CREDENTIALS, [_WWW_AUTH, *extra])
            return _Response.json(401, _ACCESS_NOT_VALID, [_WWW_AUTH, *extra])
        if fault.kind == "malformed_json":
            return _Response(
                200,
                b'{"id": 2158, "status": "SUCCESS", "result": {"data": ',
                [
                    ("Content-Type", "application/json"),
                    *extra,
                ],
            )
        if fault.kind == "redirect":
            return _Response(fault.status or 301, b"", [("Location", self.origin + raw_path), *extra])
        # "status": anything
        body = fault.body
        if isinstance(body, (dict, list)):
            raw, ctype = json.dumps(body).encode(), "application/json"
        elif isinstance(body, str):
            raw, ctype = body.encode(), "text/plain; charset=utf-8"
        else:
            raw, ctype = (body or b""), "application/octet-stream"
        return _Response(fault.status or 500, raw, [("Content-Type", fault.content_type or ctype), *extra])

    def _record(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> RequestRecord:
        route, service = self._route(method, path)
        fields: dict[str, str] = {}
        files: dict[str, UploadedFile] = {}
        if body:
            with contextlib.suppress(_UnsupportedMediaType, _ParseError):
                fields, files = parse_form(headers.get("Content-Type", ""), body)
        record = RequestRecord(
            method=method,
            path=path,
            route=route,
            service=service,
            fields=fields,
            files=files,
            at=time.time(),
            authorization=headers.get("Authorization"),
        )
        with self._lock:
            self._records.append(record)
            if route == "service" and method == "POST":
                self._stats["post"] += 1
                self._stats[f"post:{service}"] += 1
        return record

    def _respond(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> _Response:
        """Handle one request, without faults."""
        split = urlsplit(raw_path)
        route, service = self._route(method, split.path)
        if route is None:
            return _Response.html(404)
        if route == "append_slash":
            # Django CommonMiddleware (APPEND_SLASH, DEBUG off): a 301, which clients follow as a GET.
            location = self.origin + split.path + "/" + (f"?{split.query}" if split.query else "")
            return _Response(301, b"", [("Location", location), ("Content-Type", "text/html; charset=utf-8")])
        allowed = "GET" if route == "task" else "POST"
        if method == "OPTIONS":
            # DRF's SimpleMetadata answer, after the same authentication as the view's other methods
            denied = None if route in ("obtain", "refresh") else self._authenticate(headers)
            return denied or _Response.json(200, _options_metadata(route, service), [("Allow", _allow(allowed))])
        if method != allowed and not (method == "HEAD" and allowed == "GET"):  # Django answers HEAD as GET
            return _Response.json(
                405, {"detail": f'Method "{method}" not allowed.'}, [("Allow", _allow(allowed))]
            )
        if route == "obtain":
            return self._obtain(headers, body)
        if route == "refresh":
            return self._refresh(headers, body)
        denied = self._authenticate(headers)
        if denied is not None:
            return denied
        if route == "task":
            return self._poll(parse_qs(split.query).get("id", [None])[-1])
        assert service is not None
        return self._submit(SERVICES[service], headers, body)

    def _form(
        self, headers: Mapping[str, str], body: bytes
    ) -> tuple[dict[str, str], dict[str, UploadedFile]] | _Response:
        content_type = headers.get("Content-Type", "")
        try:
            return parse_form(content_type, body)
        except _UnsupportedMediaType:
            return _Response.json(415, {"detail": f'Unsupported media type "{content_type}" in request.'})
        except _ParseError as exc:
            return _Response.json(400, {"detail": str(exc)})

    # tokens

    def _issue(self, token_type: str, lifetime: float) -> str:
        jti = uuid.uuid4().hex
        exp_float = time.time() + lifetime
        # SimpleJWT writes whole seconds; sub-minute (test) lifetimes get milliseconds so that truncation
        # does not eat most of a 1-second token.
        exp: float = int(exp_float) if lifetime >= 60 else round(exp_float, 3)
        token = encode_hs256({"token_type": token_type, "exp": exp, "jti": jti, "user_id": 1}, self._secret)
        with self._lock:
            (self._issued_access if token_type == "access" else self._issued_refresh).add(jti)
        return token

    def _valid_payload(self, token: str, token_type: str) -> dict[str, Any] | None:
        payload = verify_hs256(token, self._secret)
        if payload is None or payload.get("token_type") != token_type:
            return None
        exp = payload.get("exp")
        if not isinstance(exp, (int, float)) or exp <= time.time():
            return None
        return payload

    def _obtain(self, headers: Mapping[str, str], body: bytes) -> _Response:
        form = self._form(headers, body)
        if isinstance(form, _Response):
            return form
        fields, _ = form
        errors = {}
        for name in ("username", "password"):
            value = fields.get(name)
            if value is None:
                errors[name] = [_REQUIRED]
            elif not value.strip():
                errors[name] = [_BLANK]
        if errors:
            return _Response.json(400, errors)
        with self._lock:
            ok = fields["username"] == self.username and fields["password"] == self.password
            self._stats["obtain" if ok else "obtain_failed"] += 1
        if not ok:
            return _Response.json(401, _BAD_CREDENTIALS, [_WWW_AUTH])
        return _Response.json(
            200,
            {
                "refresh": self._issue("refresh", self.refresh_lifetime),
                "access": self._issue("access", self.access_lifetime),
            },
        )

    def _refresh(self, headers: Mapping[str, str], body: bytes) -> _Response:
        form = self._form(headers, body)
        if isinstance(form, _Response):
            return form
        fields, _ = form
        token = fields.get("refresh")
        if token is None:
            return _Response.json(400, {"refresh": [_REQUIRED]})
        if not token.strip():
            return _Response.json(400, {"refresh": [_BLANK]})
        payload = self._valid_payload(token, "refresh")
        with self._lock:  # check-and-blacklist atomically: two refreshes with one token cannot both win
            if payload is None:
                self._stats["refresh_rejected"] += 1
                return _Response.json(401, _TOKEN_INVALID, [_WWW_AUTH])
            jti = str(payload.get("jti"))
            if jti in self._blacklist:
                self._stats["refresh_rejected"] += 1
                self._stats["refresh_blacklisted"] += 1
                return _Response.json(401, _TOKEN_BLACKLISTED, [_WWW_AUTH])
            if self.rotate_refresh_tokens and self.blacklist_after_rotation:
                self._blacklist.add(jti)
            self._stats["refresh"] += 1
        answer = {"access": self._issue("access", self.access_lifetime)}
        if self.rotate_refresh_tokens:
            answer["refresh"] = self._issue("refresh", self.refresh_lifetime)
        return _Response.json(200, answer)

    def _authenticate(self, headers: Mapping[str, str]) -> _Response | None:
        """SimpleJWT's JWTAuthentication: None if the bearer token is valid, else the 401 to send."""
        header = headers.get("Authorization")
        parts = header.split() if header else []
        if not parts or parts[0] != "Bearer":
            with self._lock:
                self._stats["unauthorized"] += 1
            return _Response.json(401, _NOT_AUTHENTICATED, [_WWW_AUTH])
        if len(parts) != 2:
            with self._lock:
                self._stats["unauthorized"] += 1
            detail = {
                "detail": "Authorization header must contain two space-delimited values",
                "code": "bad_authorization_header",
            }
            return _Response.json(401, detail, [_WWW_AUTH])
        payload = self._valid_payload(parts[1], "access")
        with self._lock:
            if payload is None or str(payload.get("jti")) in self._revoked_access:
                self._stats["unauthorized"] += 1
                self._stats["token_not_valid"] += 1
                return _Response.json(401, _ACCESS_NOT_VALID, [_WWW_AUTH])
        return None

    # services

    def _validate(
        self, spec: ServiceSpec, fields: Mapping[str, str], files: Mapping[str, UploadedFile]
    ) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        for name in spec.files:
            upload = files.get(name)
            if upload is not None:
                if not upload.data:
                    errors[name] = [_EMPTY_FILE]
            elif name in fields:
                errors[name] = [_NOT_A_FILE]
            else:
                errors[name] = [_NO_FILE]
        for name in spec.fields + spec.optional_fields:
            value = fields.get(name)
            if value is None:
                if name in spec.fields:
                    errors[name] = [_REQUIRED]
            elif not value.strip():
                errors[name] = [_BLANK]
            elif name == "uuid":
                try:
                    uuid.UUID(value)
                except ValueError:
                    errors[name] = ["Must be a valid UUID."]
            elif name == "birth_date" and _parse_iso_date(value) is None:
                errors[name] = ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
        if spec.extend_data:
            value = fields.get("extend_data")
            if value is None:
                if spec.extend_data_required:
                    errors["extend_data"] = [_REQUIRED]
            elif to_bool(value) is None:
                errors["extend_data"] = ["Must be a valid boolean."]
        return errors

    def _submit(self, spec: ServiceSpec, headers: Mapping[str, str], body: bytes) -> _Response:
        form = self._form(headers, body)
        if isinstance(form, _Response):
            return form
        fields, files = form
        errors = self._validate(spec, fields, files)
        if errors:
            return _Response.json(400, errors)
        with self._lock:
            record_id = self._next_record_id
            self._next_record_id += 1
        task_id = str(uuid.uuid4())
        result: Mapping[str, Any] | None = None
        failure: Mapping[str, Any] | None = None
        try:
            result = self._judge(spec, fields, files, record_id)
        except Exception as exc:  # the worker crashed: Celery stores FAILURE with the exception
            failure = {
                "exc_type": type(exc).__name__,
                "exc_message": [str(exc)],
                "exc_module": type(exc).__module__,
            }
        task = SandboxTask(
            id=task_id,
            record_id=record_id,
            service=spec.name,
            lifecycle=self.lifecycle,
            result=result,
            failure=failure,
        )
        with self._lock:
            self._tasks[task_id] = task
            self._stats["tasks_created"] += 1
        return _Response.json(200, {"id": task_id})

    def _poll(self, task_id: str | None) -> _Response:
        with self._lock:
            self._stats["task_get"] += 1
            if task_id is None:
                return _Response.json(400, {"id": [_REQUIRED]})
            task = self._tasks.get(task_id)
            if task is None:
                return _Response.json(404, {"detail": "Not found."})
            step = task.lifecycle[min(task.polls, len(task.lifecycle) - 1)]
            task.polls += 1
        if step == "404":
            return _Response.json(404, {"detail": "Not found."})
        if step == "SUCCESS" and task.failure is not None:
            step = "FAILURE"
        if step == "SUCCESS":
            result = dict(task.result or {})
            if task.service == "background_check" and not self.background_check_envelope:
                return _Response.json(200, result.get("data", result))
            return _Response.json(200, {"id": task.record_id, "status": "SUCCESS", "result": result})
        if step == "FAILURE":
            failure = task.failure or {
                "exc_type": "RuntimeError",
                "exc_message": ["provider unavailable"],
                "exc_module": "builtins",
            }
            return _Response.json(200, {"id": task.record_id, "status": "FAILURE", "result": failure})
        if step in ("REVOKED", "REJECTED"):
            failure = {
                "exc_type": "TaskRevokedError",
                "exc_message": [step.lower()],
                "exc_module": "celery.exceptions",
            }
            return _Response.json(200, {"id": task.record_id, "status": step, "result": failure})
        return _Response.json(200, {"id": task.record_id, "status": step, "result": None})

    # verdicts

    def _face_code(self, upload: UploadedFile) -> tuple[str | None, str | None]:
        with self._lock:
            scripted = self._scripted.get(upload.sha256)
        if scripted is not None:
            return scripted[0] or None, scripted[1]
        return self.face_checker(upload), None

    def _document_code(self, upload: UploadedFile) -> tuple[str | None, str | None]:
        with self._lock:
            scripted = self._scripted.get(upload.sha256)
        if scripted is not None:
            return scripted[0] or None, scripted[1]
        return (
            None
            if upload.data[:3] == b"\xff\xd8\xff" or upload.data[:4] == b"\x89PNG"
            else "FAILED_TO_READ_IMAGE"
        ), None

    def _judge(
        self, spec: ServiceSpec, fields: Mapping[str, str], files: Mapping[str, UploadedFile], record_id: int
    ) -> Mapping[str, Any]:
        if self.judge is not None:
            custom = self.judge(spec.name, files, fields)
            if custom is not None:
                if set(custom) <= {"status", "data"} and "data" in custom:
                    return dict(custom)
                data = dict(custom)
                return envelope(data, 400 if data.get("issues") else 200)
        return self._default_result(spec, fields, files, record_id)

    def _default_result(
        self, spec: ServiceSpec, fields: Mapping[str, str], files: Mapping[str, UploadedFile], record_id: int
    ) -> dict[str, Any]:
        name = spec.name
        extended = to_bool(fields.get("extend_data")) is True
        today = _dt.date.today()
        data: dict[str, Any] = {}
        issues: dict[str, dict[str, str]] = {}
        status = 200

        def fail(check: str, code: str, message: str | None) -> dict[str, Any]:
            nonlocal status
            block, inner_status = failed_check(code, message)
            status = max(status, inner_status)
            issues.setdefault(check, {})[code] = message or MESSAGES.get(code, code)
            return block

        if name in ("face_liveness", "register_face", "authenticate_face"):
            code, message = self._face_code(files["image"])
            if code:
                data["liveness"] = fail("liveness", code, message)
                if name == "authenticate_face":
                    data["authentication"] = {"result": False}
            elif name == "face_liveness":
                data["liveness"] = liveness_passed()
            elif name == "register_face":
                face_id = str(uuid.uuid1())
                with self._lock:
                    self._faces[face_id] = files["image"].sha256
                data["uuid"] = face_id
            else:
                with self._lock:
                    registered = self._faces.get(fields["uuid"])
                if registered is None:
                    data["authentication"] = fail("authentication", "FACE_NOT_REGISTERED", None)
                else:
                    same = registered == files["image"].sha256
                    scores = (
                        {"matchScore": "20.0", "scorePercent": "100.0"}
                        if same
                        else {
                            "matchScore": "18.5",
                            "scorePercent": "92.5",
                        }
                    )
                    data["authentication"] = {"result": True, "data": scores}
                data["liveness"] = liveness_passed()
        else:
            document: dict[str, Any] | None = None
            if spec.files and name != "background_check":
                document = document_fields(self.origin, name, record_id, today)
                for field_name in spec.files:
                    if field_name == "selfie_image":
                        continue
                    code, message = self._document_code(files[field_name])
                    if code:
                        document["is_valid"] = False
                        issues.setdefault("document", {})[code] = message or MESSAGES.get(code, code)
                data["document"] = document
            if "selfie_image" in spec.files:
                code, message = self._face_code(files["selfie_image"])
                if code:
                    issues.setdefault("liveness", {})[code] = message or MESSAGES.get(code, code)
                data["liveness"] = code is None
                data["compare"] = code is None and bool(document and document["is_valid"])
            if name == "background_check" or name.endswith("_with_background_check"):
                fullname = fields.get("fullname")
                if fullname is None and document is not None:
                    fullname = f"{document['firstName']} {document['lastName']}"
                data["background_check"] = background_block(fullname, self.watchlist)
        if issues:
            data["issues"] = issues
        if extended:
            data["provider_response"] = {"provider": "sandbox", "request": record_id}
        return envelope(data, status)


def _parse_iso_date(value: str) -> _dt.date | None:
    match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value.strip())
    if not match:
        return None
    try:
        return _dt.date(*(int(g) for g in match.groups()))
    except ValueError:
        return None


def _check_lifecycle(lifecycle: LifecycleArg) -> tuple[str, ...]:
    steps = tuple(str(step).upper() for step in lifecycle)
    if not steps:
        raise ValueError("lifecycle needs at least one step")
    return steps


# ---------------------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sandbox: Sandbox
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads parked on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ProgenySandbox/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:
        # Request line and status only; never headers or bodies.
        log.debug("sandbox: " + format, *args)

    def _declared_length(self) -> int | None:
        """The Content-Length, None when there is none; -1 when nginx would refuse it (400)."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return None
        if len({v.strip() for v in values}) != 1 or not _DIGITS.fullmatch(values[0].strip()):
            return -1  # two different lengths, a sign, hex, spaces inside: request smuggling material
        return int(values[0].strip())

    def handle_expect_100(self) -> bool:
        """Refuse a body that is too large before the client sends it (nginx does the same)."""
        declared = self._declared_length()
        if declared is not None and declared > self.server.sandbox.max_body_bytes:
            self.close_connection = True
            self._write(_Response.html(413))
            return False
        return super().handle_expect_100()

    def _read_body(self) -> bytes | int:
        """The request body, or the status of nginx's refusal: 400 malformed framing, 408 a body that
        stopped arriving, 413 too large, 501 a transfer coding other than chunked.

        After a refusal the connection is closed, since the rest of the body cannot be told from the next
        request.
        """
        limit = self.server.sandbox.max_body_bytes
        coding = self.headers.get("Transfer-Encoding")
        declared = self._declared_length()
        try:
            if coding is not None:
                if coding.strip().lower() != "chunked":
                    return self._refuse(501)
                if declared is not None:  # both: nginx >= 1.21.1 refuses the request
                    return self._refuse(400)
                return self._read_chunked(limit)
            if declared == -1:
                return self._refuse(400)
            if declared is None or declared == 0:
                return b""
            if declared > limit:
                return self._refuse(413)  # answered at once; the body is drained afterwards (_linger)
            body = self.rfile.read(declared)
            return body if len(body) == declared else self._refuse(400)  # the client closed mid-body
        except TimeoutError:  # nothing for ``timeout`` seconds (nginx's client_body_timeout)
            return self._refuse(408)

    def _read_chunked(self, limit: int) -> bytes | int:
        chunks: list[bytes] = []
        received = 0
        while True:
            line = self.rfile.readline(1024)
            size_text = line.split(b";")[0].strip()
            if not line.endswith(b"\n") or not _HEX.fullmatch(size_text):
                return self._refuse(400)  # 0x3, 1_0, -5, a cut line: not a chunk size
            size = int(size_text, 16)
            if size == 0:
                while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            received += size
            if received > limit:  # counted as it comes, like a declared length
                return self._refuse(413)
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(1024) not in (b"\r\n", b"\n"):
                return self._refuse(400)
            chunks.append(chunk)

    def _refuse(self, status: int) -> int:
        self.close_connection = True
        return status

    def _linger(self) -> None:
        """Read and drop what the client is still sending, for up to 2 s, so that it sees the refusal
        rather than a reset (nginx's lingering close)."""
        budget = 64 << 20
        deadline = time.monotonic() + 2.0
        with contextlib.suppress(OSError, ValueError):
            while budget > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                got = self.rfile.read1(min(budget, 1 << 16))
                if not got:
                    break
                budget -= len(got)

    def _handle(self, method: str) -> None:
        sandbox = self.server.sandbox
        body = self._read_body()
        path = urlsplit(self.path).path
        if isinstance(body, int):
            self._write(_Response.html(body))
            self._linger()
            return
        # Header names are case-insensitive: normalise them once ("content-type" -> "Content-Type").
        headers = {k.title(): v for k, v in self.headers.items()}
        record = sandbox._record(method, path, headers, body)
        fault = sandbox._take_fault(record.route, record.service, path)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "slow":
                if sandbox._stop.wait(fault.delay):
                    self.close_connection = True
                    return
            elif fault.kind == "drop":
                if fault.process:
                    sandbox._respond(method, self.path, headers, body)
                with sandbox._lock:
                    sandbox._stats["dropped"] += 1
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            else:
                response = sandbox._fault_response(fault, record.route or "", self.path)
                record.status = response.status
                self._write(response)
                return
        response = sandbox._respond(method, self.path, headers, body)
        record.status = response.status
        self._write(response)

    def _write(self, response: _Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
