"""The HTTP service: ``POST /v1/check``, ``/v1/annotate``, ``/v1/submit/{service}``, ``GET /healthz`` and ``/``.

One :class:`~preflight.Gate` per worker process, created (and its face model loaded) in the app's lifespan and
closed at shutdown. The CPU-bound work runs in the thread pool so that the event loop stays responsive;
:class:`~preflight.service._guard.UploadGuard` bounds the body size and the requests in progress.

Status codes (see docs/service.md):

* 200 -- the image was read and judged (``passed`` is true or false);
* 422 -- the upload is not a usable image (the report carries ``FAILED_TO_READ_IMAGE`` or
  ``UNSUPPORTED_FORMAT``), or a required part is missing, or a form value is invalid;
* 413 -- the body is larger than ``max_upload_bytes`` (``FILE_TOO_LARGE`` in the same issue shape);
* 415 / 400 -- not ``multipart/form-data`` / a malformed body; 408 -- the upload stalled;
* 503 + ``Retry-After`` -- all slots busy, or Progeny throttled us; 401/403/400/502/504 -- Progeny errors.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, codes
from ..annotate import annotate as annotate_image
from ..errors import PreflightError
from ..gate import Gate
from ..guidance import DEFAULT_LOCALE
from ..policy import Policy
from ..report import Report
from ..submit import submit as submit_images
from ._forms import FilePart, Form, FormError, is_multipart, parse_form
from ._guard import Limiter, UploadGuard
from ._locale import locales, resolve_locale

if TYPE_CHECKING:
    from progeny_api import ProgenyClient, ProgenyError

log = logging.getLogger("preflight.service")

DEFAULT_MAX_UPLOAD_BYTES = 10_000_000
DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_MAX_SUBMIT_CONCURRENCY = 8
DEFAULT_RETRY_AFTER = 1
DEFAULT_BODY_TIMEOUT = 30.0
#: The annotated preview embedded in a check answer (``annotate=true``) fits in this many pixels.
PREVIEW_MAX_SIDE = 1024
#: Policy presets a client may ask for by name (never a file path).
POLICY_PRESETS = ("progeny_selfie", "progeny_document", "selfie", "document")
#: Codes that mean "this upload is not a usable image": the answer is 422 instead of 200.
UNUSABLE_UPLOAD_CODES = frozenset({codes.FAILED_TO_READ_IMAGE, codes.UNSUPPORTED_FORMAT})

#: Environment variables read by :func:`app_from_env` (``preflight serve`` sets them for its workers).
ENV_POLICY = "PREFLIGHT_SERVICE_POLICY"
ENV_MAX_UPLOAD_BYTES = "PREFLIGHT_SERVICE_MAX_UPLOAD_BYTES"
ENV_MAX_CONCURRENCY = "PREFLIGHT_SERVICE_MAX_CONCURRENCY"
ENV_MAX_SUBMIT_CONCURRENCY = "PREFLIGHT_SERVICE_MAX_SUBMIT_CONCURRENCY"
ENV_MODEL_PATH = "PREFLIGHT_SERVICE_MODEL_PATH"
ENV_LOCALE = "PREFLIGHT_SERVICE_LOCALE"

STATIC_DIR = Path(__file__).resolve().parent / "static"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


# ---------------------------------------------------------------------------------------------------------
# Settings and per-process state
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What one app instance is configured with."""

    policy: Policy
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_submit_concurrency: int = DEFAULT_MAX_SUBMIT_CONCURRENCY
    retry_after: int = DEFAULT_RETRY_AFTER
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    progeny_base_url: str | None = None
    model_path: str | None = None
    warm_up: bool = True
    default_locale: str = DEFAULT_LOCALE
    #: Silence file descriptor 2 while the face model loads (MediaPipe's C++ start-up lines). Only for a
    #: process the service owns: the redirection is process-wide.
    quiet_model_start: bool = False

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be positive, got {self.max_upload_bytes}")
        if self.retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {self.retry_after}")
        if not (self.body_timeout > 0 and math.isfinite(self.body_timeout)):
            raise ValueError(f"body_timeout must be a positive number of seconds, got {self.body_timeout}")


class ServiceState:
    """The per-process objects: the gate, the API client, the concurrency limiters."""

    def __init__(self, settings: Settings, gate: Gate | None, client: ProgenyClient | None) -> None:
        self.settings = settings
        self._gate = gate
        self._owns_gate = gate is None
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        self.check_limiter = Limiter("check", settings.max_concurrency)
        self.submit_limiter = Limiter("submit", settings.max_submit_concurrency)
        self.started_at: float | None = None

    def limiter_for(self, path: str) -> Limiter | None:
        if path.startswith(("/v1/check", "/v1/annotate")):
            return self.check_limiter
        if path.startswith("/v1/submit"):
            return self.submit_limiter
        return None

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            raise RuntimeError("the service has not started (lifespan not run)")
        return self._gate

    @property
    def model_loaded(self) -> bool:
        """Whether this worker's face model is loaded (at start-up, or by the first check that needed it)."""
        return self._gate is not None and self._gate.model_loaded

    def client(self) -> ProgenyClient:
        """The API client, created on first use from the settings and PROGENY_* environment variables."""
        with self._client_lock:
            if self._client is None:
                from progeny_api import ProgenyClient

                self._client = ProgenyClient(
                    base_url=self.settings.progeny_base_url, timeout=UPSTREAM_TIMEOUT, max_retries=UPSTREAM_RETRIES
                )
            return self._client

    async def start(self) -> None:
        if self._gate is None:
            self._gate = Gate(self.settings.policy, model_path=self.settings.model_path)
        if self.settings.warm_up:
            gate = self._gate
            # Load the face model now, once per worker process, so the first request is not slow and a
            # broken model file stops the worker at start-up instead of failing requests. Also when the
            # default policy checks no face: a request may pick the selfie preset, and a liveness submit
            # checks its selfie.
            await run_in_threadpool(lambda: gate.load_model(quiet=self.settings.quiet_model_start))
        self.started_at = time.monotonic()

    def stop(self) -> None:
        if self._owns_gate and self._gate is not None:
            self._gate.close()
            self._gate = None
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


class ServiceError(Exception):
    """An answer other than 200, with a JSON body: ``{"error": slug, "message": text, ...extra}``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


# ---------------------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------------------


#: python-multipart's loggers: their warnings quote bytes of the body ("got 81 at index 6").
FORM_PARSER_LOGGERS = ("python_multipart", "multipart")


#: The service's own client waits less than the library's default (5 s, 60 s; 2 retries): a submit holds
#: one of few slots, and a Progeny that accepts connections but never answers held it for 3 minutes.
#: Progeny answers a POST with a task id at once; the verdict is then polled (up to 120 s).
UPSTREAM_TIMEOUT: tuple[float, float] = (5.0, 20.0)
UPSTREAM_RETRIES = 1


def quiet_form_parser_logs() -> None:
    """Keep python-multipart's warnings, which quote bytes of the uploaded body, out of the logs.

    A malformed body is answered 400 with our own message; its bytes (a photo, personal data) must
    never reach a log. Errors without data still pass.
    """
    for name in FORM_PARSER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.ERROR:
            logger.setLevel(logging.ERROR)


def create_app(
    policy: Policy | None = None,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    max_submit_concurrency: int = DEFAULT_MAX_SUBMIT_CONCURRENCY,
    retry_after: int = DEFAULT_RETRY_AFTER,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    progeny_base_url: str | None = None,
    model_path: str | None = None,
    gate: Gate | None = None,
    client: ProgenyClient | None = None,
    warm_up: bool = True,
    default_locale: str = DEFAULT_LOCALE,
    quiet_model_start: bool = False,
) -> FastAPI:
    """The ASGI app. ``gate`` and ``client`` may be passed in (the app then does not close them).

    ``max_upload_bytes`` bounds the whole request body; ``max_concurrency`` the check/annotate requests in
    progress per process (the rest get 503 + Retry-After); ``max_submit_concurrency`` the same for submits,
    which wait on the network. Progeny credentials come from PROGENY_USERNAME / PROGENY_PASSWORD.
    ``quiet_model_start`` keeps MediaPipe's start-up lines out of a worker's log (see :class:`Settings`).
    """
    quiet_form_parser_logs()
    settings = Settings(
        policy=gate.policy if (policy is None and gate is not None) else (policy or Policy()),
        max_upload_bytes=max_upload_bytes,
        max_concurrency=max_concurrency,
        max_submit_concurrency=max_submit_concurrency,
        retry_after=retry_after,
        body_timeout=body_timeout,
        progeny_base_url=progeny_base_url,
        model_path=model_path,
        warm_up=warm_up,
        default_locale=resolve_locale(default_locale),
        quiet_model_start=quiet_model_start,
    )
    state = ServiceState(settings, gate, client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.start()
        log.info("preflight service ready in process %d (policy %s)", os.getpid(), settings.policy.name)
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(
        title="preflight",
        version=__version__,
        summary="Check face photos before they are uploaded to an identity-verification API.",
        description=(
            "Upload a photo as `multipart/form-data` (field `image`) to `/v1/check` for a report of what to fix, "
            "to `/v1/annotate` for the photo with the face box, eyes, pose and issue codes drawn on it, or to "
            "`/v1/submit/{service}` to check and then forward it to the Progeny API. "
            "Issue codes use the API's own shape: `{\"issues\": {\"preflight\": {CODE: message}}}`."
        ),
        lifespan=lifespan,
    )
    app.state.preflight = state
    app.add_middleware(
        UploadGuard,
        max_body_bytes=settings.max_upload_bytes,
        limiter_for=state.limiter_for,
        retry_after=settings.retry_after,
        body_timeout=settings.body_timeout,
        default_locale=settings.default_locale,
    )
    _add_error_handlers(app)
    _add_routes(app, state)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (and for each worker of ``preflight serve``).

    Reads PREFLIGHT_SERVICE_POLICY (a preset name or a TOML file), PREFLIGHT_SERVICE_MAX_UPLOAD_BYTES,
    PREFLIGHT_SERVICE_MAX_CONCURRENCY, PREFLIGHT_SERVICE_MAX_SUBMIT_CONCURRENCY, PREFLIGHT_SERVICE_MODEL_PATH,
    PREFLIGHT_SERVICE_LOCALE (the hint language when a request names none) and PROGENY_BASE_URL.
    The worker process is the service's own, so MediaPipe's start-up lines are kept out of its log.
    """
    from ..cli import load_policy

    env = os.environ
    return create_app(
        load_policy(env.get(ENV_POLICY) or None),
        max_upload_bytes=_env_int(ENV_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
        max_concurrency=_env_int(ENV_MAX_CONCURRENCY, DEFAULT_MAX_CONCURRENCY),
        max_submit_concurrency=_env_int(ENV_MAX_SUBMIT_CONCURRENCY, DEFAULT_MAX_SUBMIT_CONCURRENCY),
        model_path=env.get(ENV_MODEL_PATH) or None,
        progeny_base_url=env.get("PROGENY_BASE_URL") or None,
        default_locale=env.get(ENV_LOCALE) or DEFAULT_LOCALE,
        quiet_model_start=True,
    )


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


# ---------------------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------------------

_IMAGE_SCHEMA = {"type": "string", "format": "binary", "description": "a JPEG or PNG photo"}
_LOCALE_SCHEMA = {"type": "string", "description": "language of the hints (en, de); default en"}
_REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The report of preflight.Report.to_dict(), with the hints in the requested locale.",
    "properties": {
        "passed": {"type": "boolean"},
        "source": {"type": ["string", "null"]},
        "policy": {"type": "string"},
        "issues": {
            "type": "object",
            "description": '{"preflight": {CODE: message}}, or {} when there is no issue',
            "properties": {"preflight": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "severity": {"type": "string", "enum": ["error", "warning"]},
                    "message": {"type": "string"},
                    "hint": {"type": "string"},
                    "measured": {},
                    "limit": {},
                },
            },
        },
        "hints": {"type": "array", "items": {"type": "string"}, "description": "what to fix, most important first"},
        "locale": {"type": "string"},
        "measurements": {"type": "object"},
        "not_checked": {"type": "object", "additionalProperties": {"type": "string"}},
        "elapsed_ms": {"type": ["number", "null"]},
        "annotated_image": {
            "type": ["string", "null"],
            "description": "with annotate=true: a JPEG data URL of the annotated photo (at most 1024 px a side)",
        },
    },
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _form_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


_COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed multipart body", "content": _json_content(_ERROR_SCHEMA)},
    408: {"description": "the upload stalled", "content": _json_content(_ERROR_SCHEMA)},
    413: {
        "description": "the body is larger than the service accepts; FILE_TOO_LARGE in the report's issue shape",
        "content": _json_content(_REPORT_SCHEMA),
    },
    415: {"description": "the body is not multipart/form-data", "content": _json_content(_ERROR_SCHEMA)},
    503: {
        "description": "all slots are busy: retry after the Retry-After header",
        "content": _json_content(_ERROR_SCHEMA),
    },
}


def _add_routes(app: FastAPI, state: ServiceState) -> None:
    from progeny_api.models import SERVICES

    check_form = _form_body(
        {
            "image": _IMAGE_SCHEMA,
            "policy": {"type": "string", "enum": list(POLICY_PRESETS), "description": "a policy preset"},
            "locale": _LOCALE_SCHEMA,
            "annotate": {"type": "boolean", "description": "also return the annotated photo (annotated_image)"},
        },
        ["image"],
    )

    # HEAD as well as GET: load balancers and uptime monitors probe with HEAD
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_PAGE_HEADERS)

    @app.api_route("/healthz", methods=["HEAD"], include_in_schema=False)  # one operation in the OpenAPI document
    @app.get("/healthz", summary="Liveness and readiness of this worker process")
    async def healthz() -> dict[str, Any]:
        uptime = None if state.started_at is None else round(time.monotonic() - state.started_at, 1)
        return {
            "status": "ok",
            "version": __version__,
            "pid": os.getpid(),
            "policy": state.settings.policy.name,
            "model_loaded": state.model_loaded,
            "uptime_s": uptime,
            "max_upload_bytes": state.settings.max_upload_bytes,
            "check": state.check_limiter.to_dict(),
            "submit": state.submit_limiter.to_dict(),
            "locales": list(locales()),
        }

    @app.post(
        "/v1/check",
        summary="Check one photo and return the report",
        openapi_extra=check_form,
        response_class=Response,
        responses={
            200: {"description": "the report (passed true or false)", "content": _json_content(_REPORT_SCHEMA)},
            422: {
                "description": "not a usable image (a report with FAILED_TO_READ_IMAGE or UNSUPPORTED_FORMAT), "
                "or a missing image / invalid form value (an error body)",
                "content": _json_content(_REPORT_SCHEMA),
            },
            **_COMMON_ERRORS,
        },
    )
    async def check(request: Request) -> Response:
        form = await _read_form(request)
        image = _require_file(form, "image")
        policy = _policy_from(form, state)
        locale = _locale_from(request, form, state)
        annotate = _flag(form, "annotate")
        report = await run_in_threadpool(state.gate.check, image.data, policy=policy, name=_safe_name(image))
        body = report.to_dict(locale)
        unusable = bool(report.codes & UNUSABLE_UPLOAD_CODES)
        if annotate:
            body["annotated_image"] = (
                None if unusable else await run_in_threadpool(_preview, image.data, report, state.gate, policy)
            )
        return json_response(body, 422 if unusable else 200)

    @app.post(
        "/v1/annotate",
        summary="Check one photo and return it annotated (PNG)",
        openapi_extra=_form_body(
            {
                "image": _IMAGE_SCHEMA,
                "policy": {"type": "string", "enum": list(POLICY_PRESETS)},
            },
            ["image"],
        ),
        response_class=Response,
        responses={
            200: {
                "description": "the photo with face box, eyes, pose and issue codes drawn on it; the verdict is in "
                "the X-Preflight-Passed and X-Preflight-Codes headers",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
            },
            422: {"description": "not a usable image: the report", "content": _json_content(_REPORT_SCHEMA)},
            **_COMMON_ERRORS,
        },
    )
    async def annotate(request: Request) -> Response:
        form = await _read_form(request)
        image = _require_file(form, "image")
        policy = _policy_from(form, state)
        report = await run_in_threadpool(state.gate.check, image.data, policy=policy, name=_safe_name(image))
        if report.codes & UNUSABLE_UPLOAD_CODES:
            return json_response(report.to_dict(_locale_from(request, form, state)), 422)
        png = await run_in_threadpool(_png, image.data, report, state.gate, policy)
        headers = {
            "X-Preflight-Passed": "true" if report.passed else "false",
            "X-Preflight-Codes": ",".join(sorted(report.codes)),
            "Cache-Control": "no-store",
        }
        return Response(png, media_type="image/png", headers=headers)

    services = sorted(SERVICES)
    submit_form = _form_body(
        {
            **{name: _IMAGE_SCHEMA for name in ("image", "selfie_image", "front_id", "back_id", "passport_image")},
            **{name: {"type": "string"} for name in ("uuid", "fullname", "birth_date")},
            "extend_data": {"type": "boolean"},
            "locale": _LOCALE_SCHEMA,
        },
        [],
    )

    @app.post(
        "/v1/submit/{service}",
        summary="Check the photos, then forward them to the Progeny API when they pass",
        description=(
            "Send the service's own fields (for example `image` for face_liveness, `selfie_image`, `front_id` and "
            "`back_id` for kyc_card). The photos are checked first; only when they pass is the request forwarded. "
            f"Services: {', '.join(services)}."
        ),
        openapi_extra=submit_form,
        response_class=Response,
        responses={
            200: {"description": "the combined report (local checks, and the API's result when forwarded)",
                  "content": _json_content({"type": "object"})},
            401: {
                "description": "Progeny rejected this service's credentials",
                "content": _json_content(_ERROR_SCHEMA),
            },
            404: {"description": "unknown service", "content": _json_content(_ERROR_SCHEMA)},
            422: {
                "description": "a missing or unknown field (error body), or an image that cannot be read "
                "(the combined report, not forwarded)",
                "content": _json_content(_ERROR_SCHEMA),
            },
            502: {"description": "Progeny failed or answered unexpectedly", "content": _json_content(_ERROR_SCHEMA)},
            504: {"description": "Progeny did not finish the task in time", "content": _json_content(_ERROR_SCHEMA)},
            **_COMMON_ERRORS,
        },
    )
    async def submit(service: str, request: Request) -> Response:
        spec = SERVICES.get(service)
        if spec is None:
            raise ServiceError(404, "unknown_service", f"unknown service {service!r}", services=services)
        form = await _read_form(request)
        locale = _locale_from(request, form, state)
        allowed = {*spec.files, *spec.fields, *spec.optional_fields, "locale"}
        if spec.extend_data:
            allowed.add("extend_data")
        unknown = sorted((set(form.files) | set(form.fields)) - allowed)
        misplaced = sorted(name for name in spec.files if name in form.fields)
        missing = sorted(
            [name for name in spec.files if name not in form.files]
            + [name for name in spec.fields if form.text(name) is None]
        )
        if unknown or missing:
            raise ServiceError(
                422,
                "invalid_fields",
                f"{service} takes files {list(spec.files)} and fields {list(spec.fields + spec.optional_fields)}",
                missing=missing,
                unknown=unknown,
                not_a_file=misplaced,
            )
        fields: dict[str, Any] = {name: form.files[name].data for name in spec.files}
        for name in (*spec.fields, *spec.optional_fields):
            value = form.text(name)
            if value is not None:
                fields[name] = value
        if spec.extend_data and form.text("extend_data") is not None:
            fields["extend_data"] = _flag(form, "extend_data")
        client = state.client()
        try:
            combined = await run_in_threadpool(
                lambda: submit_images(service, client=client, gate=state.gate, **fields)
            )
        except PreflightError as exc:
            raise ServiceError(422, "invalid_input", str(exc)) from None
        except ValueError as exc:  # the client's own validation, before anything was sent
            raise ServiceError(422, "invalid_fields", str(exc)) from None
        except Exception as exc:
            from progeny_api import ProgenyError

            if isinstance(exc, ProgenyError):
                raise upstream_error(exc, retry_after=state.settings.retry_after) from None
            raise
        body = combined.to_dict(locale)
        body["locale"] = locale
        unusable = any(report.codes & UNUSABLE_UPLOAD_CODES for report in combined.local.values())
        return json_response(body, 422 if unusable and not combined.forwarded else 200)


_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=()",
    "Cache-Control": "no-cache",
}


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


async def _read_form(request: Request) -> Form:
    content_type = request.headers.get("content-type")
    if not is_multipart(content_type):
        raise ServiceError(
            415,
            "unsupported_media_type",
            "send the photo as multipart/form-data with the file in the field 'image'",
        )
    body = await request.body()  # already read (and size-checked) by UploadGuard
    try:
        return parse_form(body, content_type)
    except FormError as exc:
        raise ServiceError(400, "malformed_body", str(exc)) from None


def _require_file(form: Form, name: str) -> FilePart:
    part = form.files.get(name)
    if part is None:
        detail = "is a text field, not a file" if name in form.fields else "is missing"
        raise ServiceError(
            422,
            "missing_image",
            f"the form field {name!r} {detail}: send the photo as a file part named {name!r}",
            field=name,
        )
    return part


def _policy_from(form: Form, state: ServiceState) -> Policy:
    name = form.text("policy")
    if name is None:
        return state.settings.policy
    if name not in POLICY_PRESETS:
        raise ServiceError(422, "unknown_policy", f"unknown policy {name[:64]!r}", policies=list(POLICY_PRESETS))
    return Policy.named(name)


def _flag(form: Form, name: str) -> bool:
    value = form.text(name)
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ServiceError(422, "invalid_value", f"{name} must be true or false")


def _locale_from(request: Request, form: Form | None, state: ServiceState) -> str:
    value = (form.text("locale") if form is not None else None) or request.query_params.get("locale")
    return resolve_locale(value, request.headers.get("accept-language"), state.settings.default_locale)


def _safe_name(part: FilePart) -> str | None:
    name = part.filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:200] or None


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    import json

    payload = json.dumps(_finite(body), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(payload.encode("utf-8"), status_code=status, media_type="application/json", headers=headers)


def _finite(value: Any) -> Any:
    """JSON-safe: non-finite floats become null (the report already does this for NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _png(data: bytes, report: Report, gate: Gate, policy: Policy) -> bytes:
    image = annotate_image(data, report, gate=gate, policy=policy)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _preview(data: bytes, report: Report, gate: Gate, policy: Policy) -> str:
    """The annotated photo as a JPEG data URL, at most PREVIEW_MAX_SIDE pixels a side."""
    image = annotate_image(data, report, gate=gate, policy=policy)
    image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
    if image.mode != "RGB":
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def upstream_error(exc: ProgenyError, *, retry_after: int = DEFAULT_RETRY_AFTER) -> ServiceError:
    """Map a Progeny API error to the answer this service gives (never a 500; no bodies, no secrets)."""
    from progeny_api import (
        AuthenticationError,
        BadRequestError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
        TaskFailedError,
        TaskTimeoutError,
        TransportError,
    )

    extra: dict[str, Any] = {"upstream_status": exc.status_code}
    if exc.task_id:
        extra["task_id"] = exc.task_id
    if exc.request_id:
        extra["upstream_request_id"] = exc.request_id
    detail = str(exc)
    if isinstance(exc, AuthenticationError):
        return ServiceError(
            401,
            "upstream_authentication",
            "The Progeny API rejected this service's credentials (PROGENY_USERNAME / PROGENY_PASSWORD): " + detail,
            **extra,
        )
    if isinstance(exc, PermissionDeniedError):
        return ServiceError(403, "upstream_permission_denied", "The Progeny account may not use this service: "
                            + detail, **extra)
    if isinstance(exc, BadRequestError):
        return ServiceError(400, "upstream_bad_request", "The Progeny API refused the request: " + detail,
                            field_errors=exc.field_errors, **extra)
    if isinstance(exc, RateLimitError) or (isinstance(exc, ServerError) and exc.status_code == 503):
        seconds = exc.retry_after if exc.retry_after is not None else retry_after
        wait = max(1, math.ceil(min(seconds, 3600)))
        return ServiceError(503, "upstream_busy", "The Progeny API is busy: " + detail,
                            headers={"Retry-After": str(wait)}, retry_after=wait, **extra)
    if isinstance(exc, TaskTimeoutError):
        return ServiceError(504, "upstream_timeout", "The Progeny task did not finish in time: " + detail,
                            last_status=exc.last_status, **extra)
    if isinstance(exc, TransportError):
        return ServiceError(502, "upstream_unreachable", "The Progeny API could not be reached: " + detail, **extra)
    if isinstance(exc, TaskFailedError):
        return ServiceError(502, "upstream_task_failed", "The Progeny task failed: " + detail,
                            task_status=exc.status, **extra)
    return ServiceError(502, "upstream_error", "The Progeny API answered unexpectedly: " + detail, **extra)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> Response:
        return json_response(exc.body(), exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        slug = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response({"error": slug, "message": str(exc.detail)}, exc.status_code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
        return json_response({"error": "invalid_request", "message": "invalid request", "detail": errors}, 422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected %s while handling a request", type(exc).__name__)
        return json_response({"error": "internal_error", "message": "unexpected server error"}, 500)
