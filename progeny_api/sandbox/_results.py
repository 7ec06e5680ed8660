"""Result bodies shaped like the documented samples, and the sandbox's verdict logic ("judges").

Where the docs are silent (ocr_card, kyc_* and register/authenticate failures) the shapes follow the
ocr_passport sample and the liveness samples; docs/api-client.md lists what is inferred.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._imageinfo import image_info

#: Messages for the documented error codes. The first two are verbatim from the docs; the rest are the
#: sandbox's own wording (Progeny's is not documented).
MESSAGES: dict[str, str] = {
    "FACE_NOT_FOUND": "Failed to detect face",
    "FACE_TOO_SMALL": "Absolute face size is too small",
    "FACE_ANGLE_TOO_LARGE": "Face angle is too large",
    "FACE_TOO_CLOSE": "Face is too close to the camera",
    "FAILED_TO_READ_IMAGE": "Failed to read image",
    "FACE_NOT_REGISTERED": "No face registered with this uuid",
}

#: Codes the docs show *inside* ``liveness.data`` with inner status 200 (overview sample); the others are
#: shown next to ``result`` with inner status 400 (face_liveness sample). The sandbox uses both placements
#: so that clients are exercised against both.
NESTED_CODES: frozenset[str] = frozenset({"FACE_NOT_FOUND", "FAILED_TO_READ_IMAGE"})

#: Minimum image side (px) of the default judge; the docs require at least 480x480.
MIN_SIDE = 480

LIVENESS_SCORES: dict[str, float] = {"score": 2.5943651, "quality": 0.8175214, "probability": 0.930498}


@dataclass(frozen=True, repr=False)
class UploadedFile:
    """One file part as the sandbox received it."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def __repr__(self) -> str:
        return f"UploadedFile(field={self.field!r}, filename={self.filename!r}, size={self.size})"


#: ``judge(service, files, fields)`` returns the task result ``data`` (or ``{"status": ..., "data": ...}``
#: for full control), or None to let the default judge decide. Raising makes the task end in FAILURE.
Judge = Callable[[str, Mapping[str, UploadedFile], Mapping[str, str]], "Mapping[str, Any] | None"]
#: ``checker(file) -> error code or None``: decides the verdict for one face image.
FaceChecker = Callable[[UploadedFile], "str | None"]


def envelope(data: Mapping[str, Any], status: int = 200) -> dict[str, Any]:
    return {"status": status, "data": dict(data)}


def failed_check(code: str, message: str | None = None) -> tuple[dict[str, Any], int]:
    """The ``{"result": false, ...}`` block for a check, in the placement the docs use for ``code``,
    and the inner status that goes with it."""
    text = message or MESSAGES.get(code, code.replace("_", " ").capitalize())
    if code in NESTED_CODES:
        return {"data": {"error": text, "error_code": code}, "result": False}, 200
    return {"result": False, "error": text, "error_code": code}, 400


def liveness_passed() -> dict[str, Any]:
    return {"data": dict(LIVENESS_SCORES), "result": True}


def face_failure(check: str, code: str, message: str | None = None) -> dict[str, Any]:
    """A result envelope for a failed face check, e.g. ``face_failure("liveness", "FACE_NOT_FOUND")``."""
    block, status = failed_check(code, message)
    text = message or MESSAGES.get(code, code)
    return envelope({check: block, "issues": {check: {code: text}}}, status)


def header_face_checker(file: UploadedFile) -> str | None:
    """The default, vision-free verdict: unreadable -> FAILED_TO_READ_IMAGE, < 480 px -> FACE_TOO_SMALL."""
    info = image_info(file.data)
    if info is None:
        return "FAILED_TO_READ_IMAGE"
    if min(info.width, info.height) < MIN_SIDE:
        return "FACE_TOO_SMALL"
    return None


# preflight issue code -> the API code it predicts, in order of precedence.
_PREFLIGHT_TO_API: tuple[tuple[str, str], ...] = (
    ("FAILED_TO_READ_IMAGE", "FAILED_TO_READ_IMAGE"),
    ("UNSUPPORTED_FORMAT", "FAILED_TO_READ_IMAGE"),
    ("FACE_NOT_FOUND", "FACE_NOT_FOUND"),
    ("FACE_TOO_SMALL", "FACE_TOO_SMALL"),
    ("EYE_DISTANCE_TOO_SMALL", "FACE_TOO_SMALL"),
    ("RESOLUTION_TOO_LOW", "FACE_TOO_SMALL"),
    ("FACE_TOO_CLOSE", "FACE_TOO_CLOSE"),
    ("FACE_CUT_OFF", "FACE_TOO_CLOSE"),
    ("PITCH_TOO_LARGE", "FACE_ANGLE_TOO_LARGE"),
    ("YAW_TOO_LARGE", "FACE_ANGLE_TOO_LARGE"),
    ("ROLL_TOO_LARGE", "FACE_ANGLE_TOO_LARGE"),
    ("IMAGE_TURNED", "FACE_ANGLE_TOO_LARGE"),
)


def preflight_face_checker(file: UploadedFile) -> str | None:
    """Realistic verdicts from the local gate. Imported here, lazily: only ``judge="preflight"`` pays for
    (and requires) numpy/OpenCV/MediaPipe."""
    preflight = importlib.import_module("preflight")  # optional, and heavy: never at module import
    report: Any = preflight.check(file.data)
    codes = frozenset(getattr(report, "codes", ()) or ())
    for local, api in _PREFLIGHT_TO_API:
        if local in codes:
            return api
    return None


def document_fields(origin: str, service: str, record_id: int, today: _dt.date) -> dict[str, Any]:
    """Fake OCR data in the shape of the ocr_passport sample (unpadded dates, "None-None-None")."""
    birth = _dt.date(1991, 9, 24)
    age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
    return {
        "is_valid": True,
        "is_expired": False,
        "dateOfBirth": "1991-9-24",
        "age": age,
        "firstName": "OLENA",
        "lastName": "TESTENKO",
        "dateOfIssue": "None-None-None",
        "dateOfExpiry": f"{today.year + 2}-9-25",
        "documentNumber": "XX008080",
        "sex": "F",
        "nationality": "UKRAINIAN",
        "portrait": f"images/services/{service}/{record_id}.jpg",
        "portrait_url": f"{origin}/media/images/services/{service}/{record_id}.jpg",
    }


def background_block(fullname: str | None, watchlist: frozenset[str]) -> dict[str, Any]:
    hit = fullname is not None and fullname.strip().casefold() in watchlist
    if not hit:
        return {"potential_match": False, "risk_level": "unknown", "total_matches": 0, "hits": []}
    return {
        "potential_match": True,
        "risk_level": "high",
        "total_matches": 1,
        "hits": [{"name": fullname, "score": 0.97, "datasets": ["sandbox-watchlist"]}],
    }
