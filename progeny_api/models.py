"""Services, task handles and parsed task results.

The docs contradict themselves about where error codes live, whether scores are numbers and how dates are
written, so parsing here is deliberately lenient: it never raises on an odd shape, it keeps the raw JSON,
and it exposes the parsed view next to it.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# Services
# ---------------------------------------------------------------------------------------------------------

#: Every multipart field name that carries an image in any documented service.
IMAGE_FIELDS: frozenset[str] = frozenset({"image", "selfie_image", "front_id", "back_id", "passport_image"})
#: Image fields that hold a face (selfie), as opposed to a document.
FACE_FIELDS: frozenset[str] = frozenset({"image", "selfie_image"})


@dataclass(frozen=True)
class ServiceSpec:
    """What a service endpoint takes. ``files`` are the (required) image fields, in documented order."""

    name: str
    files: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    optional_fields: tuple[str, ...] = ()
    #: The service takes ``extend_data`` (the client always sends it, as "true"/"false").
    extend_data: bool = True
    #: The docs' 400 example lists ``extend_data`` as required (ocr_* and kyc_*).
    extend_data_required: bool = False
    #: False for endpoints whose fields Progeny has not documented (inferred from their names).
    documented: bool = True

    @property
    def path(self) -> str:
        """URL path relative to the base URL, always with the trailing slash."""
        return f"services/{self.name}/"

    @property
    def image_fields(self) -> tuple[str, ...]:
        return self.files

    @property
    def face_fields(self) -> tuple[str, ...]:
        """The image fields that must contain a face (what a pre-upload face check should look at)."""
        return tuple(f for f in self.files if f in FACE_FIELDS)

    @property
    def required(self) -> tuple[str, ...]:
        return self.files + self.fields


def _spec(name: str, **kwargs: Any) -> tuple[str, ServiceSpec]:
    return name, ServiceSpec(name=name, **kwargs)


#: Service name (as in the URL) -> what it takes. Read-only.
SERVICES: Mapping[str, ServiceSpec] = MappingProxyType(
    dict(
        [
            _spec("face_liveness", files=("image",)),
            _spec("register_face", files=("image",)),
            _spec("authenticate_face", files=("image",), fields=("uuid",)),
            _spec("ocr_card", files=("front_id", "back_id"), extend_data_required=True),
            _spec("ocr_passport", files=("passport_image",), extend_data_required=True),
            _spec("kyc_card", files=("selfie_image", "front_id", "back_id"), extend_data_required=True),
            _spec("kyc_passport", files=("selfie_image", "passport_image"), extend_data_required=True),
            _spec("background_check", fields=("fullname", "birth_date"), extend_data=False),
            _spec(
                "kyc_card_with_background_check",
                files=("selfie_image", "front_id", "back_id"),
                optional_fields=("fullname", "birth_date"),
                extend_data_required=True,
                documented=False,
            ),
            _spec(
                "kyc_passport_with_background_check",
                files=("selfie_image", "passport_image"),
                optional_fields=("fullname", "birth_date"),
                extend_data_required=True,
                documented=False,
            ),
        ]
    )
)

# ---------------------------------------------------------------------------------------------------------
# Task states (Celery)
# ---------------------------------------------------------------------------------------------------------

SUCCESS = "SUCCESS"
#: Terminal failure states: ``wait()`` raises :class:`~progeny_api.TaskFailedError`.
FAILED_STATES: frozenset[str] = frozenset({"FAILURE", "REVOKED", "REJECTED"})
#: Known "not yet" states. Unknown strings are treated the same way.
PENDING_STATES: frozenset[str] = frozenset({"PENDING", "RECEIVED", "STARTED", "RETRY"})
#: Pseudo-state recorded while the task GET answers 404 (before a worker has stored the task).
NOT_FOUND = "NOT_FOUND"

# ---------------------------------------------------------------------------------------------------------
# Lenient coercion
# ---------------------------------------------------------------------------------------------------------


def to_float(value: Any) -> float | None:
    """``2.59``, ``"20.0"``, ``"93.5%"`` -> float; anything unreadable (or NaN, or a bool) -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")  # "93,5" from a European locale
        try:
            result = float(text)
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(result) else result


def to_int(value: Any) -> int | None:
    number = to_float(value)
    if number is None or math.isinf(number) or number != int(number):
        return None
    return int(number)


def to_bool(value: Any) -> bool | None:
    """DRF-style: true/false, "true"/"false", "1"/"0", "yes"/"no"; anything else -> None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"true", "t", "yes", "y", "1", "on"}:
            return True
        if text in {"false", "f", "no", "n", "0", "off"}:
            return False
    return None


_DATE_RE = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:$|[T\s])")
_DMY_RE = re.compile(r"^\s*(\d{1,2})[./](\d{1,2})[./](\d{4})\s*$")


def parse_date(value: Any) -> _dt.date | None:
    """``"1991-9-24"`` -> date(1991, 9, 24); ``"None-None-None"``, ``""``, ``None``, nonsense -> None."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if not isinstance(value, str):
        return None
    match = _DATE_RE.match(value)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _DMY_RE.match(value)
        if not match:
            return None
        day, month, year = (int(g) for g in match.groups())
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None


def _is_date_key(key: str) -> bool:
    lowered = key.lower()
    return lowered.startswith("date") or lowered.endswith("date") or lowered.endswith("_on")


# ---------------------------------------------------------------------------------------------------------
# Task handle
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """A submitted task. ``id`` is the UUID returned by the POST: the only handle to poll with.

    Persist ``to_dict()`` before waiting so that a crashed process can resume with
    ``client.wait(Task.from_dict(saved))`` instead of submitting (and paying for) the work again.
    """

    id: str
    service: str | None = None
    #: Wall-clock time of the submission (seconds since the epoch), when known.
    submitted_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "submitted_at": self.submitted_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        task_id = data.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("Task.from_dict needs a non-empty string 'id'")
        service = data.get("service")
        submitted_at = data.get("submitted_at")
        return cls(
            id=task_id,
            service=service if isinstance(service, str) else None,
            submitted_at=float(submitted_at) if isinstance(submitted_at, (int, float)) else None,
        )

    @classmethod
    def new(cls, task_id: str, service: str | None) -> Task:
        return cls(id=task_id, service=service, submitted_at=time.time())


# ---------------------------------------------------------------------------------------------------------
# Task result
# ---------------------------------------------------------------------------------------------------------

_ENVELOPE_KEYS = ("status", "result")


def _split_envelope(raw: Mapping[str, Any]) -> tuple[int | None, str | None, int | None, dict[str, Any]]:
    """(record_id, status, inner http status, data) from a task body, with or without the envelope."""
    if not any(k in raw for k in _ENVELOPE_KEYS):
        # background_check is documented without the envelope: the whole body is the data.
        return None, SUCCESS, None, dict(raw)
    record_id = raw.get("id")
    record = (
        record_id if isinstance(record_id, int) and not isinstance(record_id, bool) else to_int(record_id)
    )
    status = raw.get("status")
    status_text = status if isinstance(status, str) else None
    result = raw.get("result")
    http_status: int | None = None
    data: dict[str, Any] = {}
    if isinstance(result, Mapping):
        if "data" in result or ("status" in result and len(result) <= 2):
            http_status = to_int(result.get("status"))
            inner = result.get("data")
            data = dict(inner) if isinstance(inner, Mapping) else {}
        else:
            data = dict(result)
    return record, status_text, http_status, data


def _bare_message(raw: Mapping[str, Any]) -> str | None:
    """A string where the result map should be (``"result": "Bad POST"``, or its ``data``), if any."""
    result = raw.get("result")
    if isinstance(result, Mapping):
        result = result.get("data")
    if isinstance(result, str) and result.strip():
        return result.strip()[:200]
    return None


def _collect_issues(data: Mapping[str, Any], service: str | None) -> dict[str, dict[str, str]]:
    """Merge the ``issues`` map with ``error_code``/``error`` found next to or inside each check."""
    issues: dict[str, dict[str, str]] = {}

    def add(check: str, code: Any, message: Any) -> None:
        if isinstance(code, str) and code:
            issues.setdefault(check, {}).setdefault(code, message if isinstance(message, str) else "")

    raw_issues = data.get("issues")
    if isinstance(raw_issues, Mapping):
        for check, value in raw_issues.items():
            if isinstance(value, Mapping):
                for code, message in value.items():
                    add(str(check), code, message)
            elif isinstance(value, list):
                for code in value:
                    add(str(check), code, "")
            elif isinstance(value, str):
                add(str(check), value, "")
    elif isinstance(raw_issues, list):
        for code in raw_issues:
            add(service or "task", code, "")

    for check, value in data.items():
        if check == "issues" or not isinstance(value, Mapping):
            continue
        add(check, value.get("error_code"), value.get("error"))
        inner = value.get("data")
        if isinstance(inner, Mapping):
            add(check, inner.get("error_code"), inner.get("error"))
    add(service or "task", data.get("error_code"), data.get("error"))
    return issues


def _collect_verdicts(data: Mapping[str, Any]) -> dict[str, bool | None]:
    """Per-check verdicts: ``{"liveness": {"result": true}}``, flat ``"compare": true``, and two derived.

    Derived (documented in docs/api-client.md): ``document`` = ``is_valid and not is_expired``;
    ``background_check`` = ``not potential_match``.
    """
    verdicts: dict[str, bool | None] = {}
    for check, value in data.items():
        if check == "issues":
            continue
        if isinstance(value, Mapping):
            if "result" in value:
                verdicts[check] = to_bool(value.get("result"))
            elif check == "document" and "is_valid" in value:
                valid = to_bool(value.get("is_valid"))
                expired = to_bool(value.get("is_expired"))
                verdicts[check] = None if valid is None else (valid and expired is not True)
            elif "potential_match" in value:
                match = to_bool(value.get("potential_match"))
                verdicts[check] = None if match is None else not match
        elif isinstance(value, bool):
            verdicts[check] = value
    return verdicts


@dataclass(frozen=True, repr=False)
class TaskResult:
    """A finished task: the raw JSON, and the verdict parsed out of it.

    A failed *verdict* (no face, face too small, documents not matching...) is a normal result: check
    :attr:`passed`, :attr:`issues` and :attr:`error_codes`. Only a failed *task* raises.
    """

    task_id: str
    #: The integer database id from the task GET (metadata only: never poll with it).
    record_id: int | None
    status: str
    #: The inner ``result.status`` (200 or 400 for the same kind of verdict: metadata, not an error).
    http_status: int | None
    data: Mapping[str, Any]
    raw: Any
    service: str | None = None
    #: ``{check: {CODE: message}}`` merged from ``issues`` and every ``error_code`` placement.
    issues: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: ``{check: True/False/None}`` from the ``result`` booleans (None: present but unreadable).
    verdicts: Mapping[str, bool | None] = field(default_factory=dict)

    @classmethod
    def from_response(cls, raw: Any, *, task_id: str, service: str | None = None) -> TaskResult:
        """Parse a task GET body; never raises on odd shapes (the raw JSON is kept)."""
        mapping: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        record_id, status, http_status, data = _split_envelope(mapping)
        issues = _collect_issues(data, service)
        text = _bare_message(mapping)
        if text:  # the legacy "Bad POST" (a documented error code) arrives as a bare string, not a map
            issues.setdefault(service or "task", {}).setdefault(text, text)
        return cls(
            task_id=task_id,
            record_id=record_id,
            status=status or SUCCESS,
            http_status=http_status,
            data=data,
            raw=raw,
            service=service,
            issues=issues,
            verdicts=_collect_verdicts(data),
        )

    # -- verdict ------------------------------------------------------------------------------------------

    @property
    def error_codes(self) -> frozenset[str]:
        """Every error code, whichever check reported it."""
        return frozenset(code for codes in self.issues.values() for code in codes)

    @property
    def passed(self) -> bool | None:
        """True if every verdict is true and there are no issues; False if any failed or any issue was
        reported; None when the result carries no verdict at all (e.g. register_face, OCR without
        ``is_valid``) or a verdict is unreadable."""
        if self.issues or any(v is False for v in self.verdicts.values()):
            return False
        if not self.verdicts or any(v is None for v in self.verdicts.values()):
            return None
        return True

    # -- convenient accessors -----------------------------------------------------------------------------

    def _check_data(self, check: str) -> Mapping[str, Any]:
        value = self.data.get(check)
        if isinstance(value, Mapping):
            inner = value.get("data")
            if isinstance(inner, Mapping):
                return inner
        return {}

    @property
    def liveness_score(self) -> float | None:
        return to_float(self._check_data("liveness").get("score"))

    @property
    def liveness_quality(self) -> float | None:
        return to_float(self._check_data("liveness").get("quality"))

    @property
    def liveness_probability(self) -> float | None:
        return to_float(self._check_data("liveness").get("probability"))

    @property
    def match_score(self) -> float | None:
        """authenticate_face ``matchScore`` as a float (it arrives as a string)."""
        return to_float(self._check_data("authentication").get("matchScore"))

    @property
    def score_percent(self) -> float | None:
        return to_float(self._check_data("authentication").get("scorePercent"))

    @property
    def uuid(self) -> str | None:
        """The face id returned by register_face (pass it to authenticate_face)."""
        value = self.data.get("uuid")
        return value if isinstance(value, str) and value else None

    @property
    def document(self) -> dict[str, Any] | None:
        """OCR fields with dates parsed (``"1991-9-24"`` -> date, ``"None-None-None"`` -> None) and
        ``age`` as int. The raw strings stay in ``data["document"]``."""
        raw = self.data.get("document")
        if not isinstance(raw, Mapping):
            return None
        parsed: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(key, str) and _is_date_key(key):
                parsed[key] = parse_date(value)
            elif key == "age":
                parsed[key] = to_int(value)
            else:
                parsed[key] = value
        return parsed

    @property
    def background_check(self) -> dict[str, Any] | None:
        value = self.data.get("background_check")
        return dict(value) if isinstance(value, Mapping) else None

    # -- serialisation ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the result (the raw JSON included: it holds personal data)."""
        return {
            "task_id": self.task_id,
            "service": self.service,
            "record_id": self.record_id,
            "status": self.status,
            "http_status": self.http_status,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        task_id = data.get("task_id")
        if not isinstance(task_id, str):
            raise ValueError("TaskResult.from_dict needs a string 'task_id'")
        service = data.get("service")
        return cls.from_response(
            data.get("raw"), task_id=task_id, service=service if isinstance(service, str) else None
        )

    def __repr__(self) -> str:
        # No data values: they hold portraits, portrait URLs, names and document numbers.
        verdicts = dict(self.verdicts)
        codes = sorted(self.error_codes)
        return (
            f"TaskResult(task_id={self.task_id!r}, service={self.service!r}, record_id={self.record_id!r}, "
            f"status={self.status!r}, http_status={self.http_status!r}, passed={self.passed!r}, "
            f"verdicts={verdicts!r}, error_codes={codes!r})"
        )

    __str__ = __repr__
