"""The result of a check: what was measured, which rules broke, and what to do about it.

Modelled on pydantic's ``ValidationError``: every :class:`Issue` is machine-readable (``code``),
human-readable (``message`` for developers, ``hint`` for the end user) and carries the measured
value and the limit it broke.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import guidance
from .codes import DEFAULT_SEVERITY, Severity

Number = int | float
Value = Number | str | bool | tuple[Any, ...] | None


def printable(text: str) -> str:
    r"""``text`` as valid Unicode, unchanged when it already is.

    A file name that is not valid UTF-8 reaches Python with its odd bytes kept as lone surrogates
    (``os.fsdecode``), which no UTF-8 file, Parquet string or JSON decoder elsewhere accepts; they are
    written as ``\xNN`` escapes instead (``caf\xe9.jpg``), as Python itself shows such names.
    Screening compares sources in this form when it resumes. Keeping valid names unchanged has one
    price: a name that literally contains ``\xe9`` reads the same as the Latin-1 one, so once one of
    them is in a screening's output, a resumed run skips the other as done.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class Issue:
    """One broken rule."""

    code: str
    severity: Severity
    message: str
    hint: str = ""
    measured: Value = None
    limit: Value = None

    @classmethod
    def make(
        cls,
        code: str,
        message: str,
        *,
        measured: Value = None,
        limit: Value = None,
        severity: Severity | None = None,
    ) -> Issue:
        """An issue with the code's default severity and English hint."""
        return cls(
            code=code,
            severity=severity or DEFAULT_SEVERITY.get(code, "error"),
            message=message,
            hint=guidance.hint(code),
            measured=measured,
            limit=limit,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "measured": _plain(self.measured),
            "limit": _plain(self.limit),
        }


@dataclass(frozen=True)
class Measurements:
    """What the gate measured. A field is ``None`` when it could not be measured."""

    # file (from the encoded bytes; None for decoded inputs such as arrays and PIL images)
    format: str | None = None
    file_bytes: int | None = None
    jpeg_quality: int | None = None
    exif_orientation: int | None = None
    # image, after applying the EXIF orientation (what a person sees)
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    # face (primary = largest face)
    face_count: int | None = None
    face_box: tuple[int, int, int, int] | None = None
    face_size_px: float | None = None
    eye_distance_px: float | None = None
    second_face_ratio: float | None = None
    face_cut_off_fraction: float | None = None
    pitch_deg: float | None = None
    yaw_deg: float | None = None
    roll_deg: float | None = None
    left_eye_closed: float | None = None
    right_eye_closed: float | None = None
    sunglasses_score: float | None = None
    # pixels of the face region
    sharpness: float | None = None
    brightness: float | None = None
    underexposed_fraction: float | None = None
    overexposed_fraction: float | None = None
    face_highlight_luma: float | None = None
    face_shadow_luma: float | None = None
    face_contrast_stops: float | None = None
    face_chroma_rg: float | None = None
    tone_gamma: float | None = None
    lighting_asymmetry: float | None = None
    colourfulness: float | None = None
    glare_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self).items()}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Report:
    """The verdict on one image."""

    issues: tuple[Issue, ...]
    measurements: Measurements
    #: Rules that were not evaluated, with the reason (e.g. a decoded input has no file size).
    not_checked: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    policy: str = "progeny_selfie"
    elapsed_ms: float | None = field(default=None, compare=False)

    @property
    def passed(self) -> bool:
        """True when no issue has error severity (warnings do not fail an image)."""
        return not any(i.severity == "error" for i in self.issues)

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(i.code for i in self.issues)

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    def hints(self, locale: str = guidance.DEFAULT_LOCALE) -> list[str]:
        """Distinct end-user hints, most important first, in ``locale``."""
        return guidance.ordered_hints(self.issues, locale)

    def api_issues(self) -> dict[str, str]:
        """``{CODE: message}``, the shape the Progeny API uses for its own issues."""
        return {i.code: i.message for i in self.issues}

    def to_dict(self, locale: str | None = None) -> dict[str, Any]:
        """A JSON-ready dict. With ``locale`` (``"de"``...), the hints (also each detail's) are in that
        language and a ``"locale"`` key says which one was used; without, they are English."""
        resolved = guidance.DEFAULT_LOCALE if locale is None else guidance.resolve_locale(locale)
        details = [i.to_dict() for i in self.issues]
        if locale is not None:
            for detail in details:
                detail["hint"] = guidance.hint(detail["code"], resolved) or detail["hint"]
        body = {
            "source": None if self.source is None else printable(self.source),
            "passed": self.passed,
            "policy": self.policy,
            "issues": {"preflight": self.api_issues()} if self.issues else {},
            "details": details,
            "hints": self.hints(resolved),
            "measurements": self.measurements.to_dict(),
            "not_checked": dict(self.not_checked),
            "elapsed_ms": None if self.elapsed_ms is None else round(self.elapsed_ms, 2),
        }
        if locale is not None:
            body["locale"] = resolved
        return body

    def to_json(self, *, locale: str | None = None, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON; other keyword arguments go to :func:`json.dumps`."""
        kwargs.setdefault("ensure_ascii", False)
        return json.dumps(self.to_dict(locale), **kwargs)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        lines = [f"{printable(self.source) if self.source else '<image>'}: {verdict}"]
        lines += [f"  {i.severity:7} {i.code}: {i.message}" for i in self.issues]
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON-friendly: tuples to lists, NaN to None, numpy scalars to Python numbers."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        return _plain(item())
    return str(value)
