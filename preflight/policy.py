"""Every threshold the gate applies, in one frozen dataclass.

``Policy()`` is the documented Progeny selfie policy. Use :func:`dataclasses.replace` to change a
field, :meth:`Policy.from_toml` to load one from a file, and :meth:`Policy.progeny_document` for
ID-card and passport images (file and pixel rules only, no face geometry).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import sys
from dataclasses import dataclass, fields
from typing import Any

from .errors import PolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Range:
    """The values a numeric :class:`Policy` field accepts: ``lo``..``hi``, each end included
    unless ``lo_open`` (then the value must be strictly above ``lo``); ``None``: no bound."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or value <= self.hi

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"{self.lo:g}..{self.hi:g}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return "any finite number" if self.hi is None else f"<= {self.hi:g}"


_POSITIVE = Range(0, lo_open=True)
_AT_LEAST_1 = Range(1)
_NON_NEGATIVE = Range(0)
_FRACTION = Range(0, 1)
_ANGLE = Range(0, 180)
_LUMA = Range(0, 255)

#: The range of every numeric :class:`Policy` field (checked when a policy is made).
FIELD_RANGES: dict[str, Range] = {
    # sizes and counts: whole numbers of at least 1
    "max_file_bytes": _AT_LEAST_1,
    "min_side_px": _AT_LEAST_1,
    "max_side_px": _AT_LEAST_1,
    "recommended_max_height_px": _AT_LEAST_1,
    "max_decode_pixels": _AT_LEAST_1,
    "min_jpeg_quality": Range(0, 100),
    # face geometry
    "min_face_size_px": _POSITIVE,
    "min_eye_distance_px": _POSITIVE,
    "max_pitch_deg": _ANGLE,
    "max_yaw_deg": _ANGLE,
    "max_roll_deg": _ANGLE,
    "min_turned_roll_deg": _ANGLE,
    "multiple_faces_error_ratio": _FRACTION,
    "multiple_faces_ignore_ratio": _FRACTION,
    "min_face_detection_confidence": _FRACTION,
    "max_face_cut_off_fraction": _FRACTION,
    # pixels: sharpness, luma 0..255, shares of the face, scores 0..1, the tone curve
    "min_sharpness": _NON_NEGATIVE,
    "min_brightness": _LUMA,
    "min_face_highlight_luma": _LUMA,
    "max_underexposed_fraction": _FRACTION,
    "max_brightness": _LUMA,
    "max_face_shadow_luma": _LUMA,
    "max_overexposed_fraction": _FRACTION,
    "max_face_tone_gamma": _NON_NEGATIVE,
    "min_face_tone_gamma": _NON_NEGATIVE,
    "max_lighting_asymmetry": _FRACTION,
    "max_eye_closed_score": _FRACTION,
    "max_sunglasses_score": _FRACTION,
    "max_colourfulness_for_grayscale": _NON_NEGATIVE,
    "max_glare_fraction": _FRACTION,
}

#: ``(low, high)`` field pairs where the first must not exceed the second.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (
    ("min_side_px", "max_side_px"),
    ("multiple_faces_ignore_ratio", "multiple_faces_error_ratio"),
    ("min_brightness", "max_brightness"),
    ("min_face_tone_gamma", "max_face_tone_gamma"),
)


#: Every format :func:`preflight.loading.sniff_format` can name (Pillow's names), with its file name
#: extensions (the first is the one to suggest). One table, so that a format the loader recognises is
#: also one a policy may list and one whose files :func:`preflight.conform` can name.
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "BMP": (".bmp",),
    "TIFF": (".tif", ".tiff"),
    "AVIF": (".avif",),
    "HEIF": (".heic", ".heif"),
    "JPEG2000": (".jp2", ".j2k", ".jpf", ".jpx"),
    "JXL": (".jxl",),
    "ICO": (".ico",),
    "PSD": (".psd",),
    "PPM": (".ppm", ".pgm", ".pbm", ".pnm"),
}
#: The format names a policy may list.
KNOWN_FORMATS: tuple[str, ...] = tuple(FORMAT_SUFFIXES)
#: What people write for those names in a policy file.
FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "HEIC": "HEIF", "JP2": "JPEG2000"}


@dataclass(frozen=True)
class Policy:
    """Thresholds of the local gate. Defaults are the documented Progeny selfie rules.

    Every value is checked when a policy is made (``Policy(...)``, :func:`dataclasses.replace`,
    :meth:`from_mapping`, :meth:`from_toml`): a wrong type, a number outside its
    :data:`FIELD_RANGES` entry or an :data:`ORDERED_PAIRS` pair the wrong way round raises
    :class:`~preflight.errors.PolicyError` naming each field and its allowed range.
    """

    name: str = "progeny_selfie"

    # --- file rules (Progeny "image requirements") ---
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG")
    #: "No larger than 2MB": we read it conservatively as 2,000,000 bytes.
    max_file_bytes: int = 2_000_000
    min_side_px: int = 480
    max_side_px: int = 4096
    #: "For the best results, we recommend a maximum height of 1080px" (a warning).
    recommended_max_height_px: int = 1080
    #: "as uncompressed as possible. Do not go below 70%".
    min_jpeg_quality: int = 70
    #: Pixels we are willing to decode (a guard on top of max_side_px, for memory).
    max_decode_pixels: int = 4096 * 4096

    # --- face rules ---
    check_face: bool = True
    min_face_size_px: float = 224.0
    min_eye_distance_px: float = 85.0
    max_pitch_deg: float = 25.0
    max_yaw_deg: float = 25.0
    max_roll_deg: float = 35.0
    #: A face rolled by more than this is a photo turned on its side or upside down (IMAGE_TURNED,
    #: reported instead of ROLL_TOO_LARGE: the fix is to turn the photo, not the head). Independent
    #: of max_roll_deg; 180 turns the rule off (such photos then fail ROLL_TOO_LARGE, if any).
    min_turned_roll_deg: float = 60.0
    #: A second face whose size is at least this share of the primary face's is an error
    #: (someone else is in the picture); smaller ones (posters, people far behind) are a warning.
    multiple_faces_error_ratio: float = 0.5
    #: Faces smaller than this share of the primary face are ignored entirely.
    multiple_faces_ignore_ratio: float = 0.2
    #: Minimum FaceLandmarker detection confidence.
    min_face_detection_confidence: float = 0.5
    #: FACE_CUT_OFF when more than this share of the face outline lies outside the image.
    max_face_cut_off_fraction: float = 0.02

    # --- pixel quality (calibrated: see bench/calibrate.py and docs/accuracy.md) ---
    check_sharpness: bool = True
    min_sharpness: float = 0.08
    check_exposure: bool = True
    #: Exposure is measured on the inner face (see docs/accuracy.md). IMAGE_TOO_DARK when the mean
    #: face luma is below min_brightness, the face's highlights (95th percentile of luma) are below
    #: min_face_highlight_luma, or more than max_underexposed_fraction of it is crushed to black.
    min_brightness: float = 50.0
    min_face_highlight_luma: float = 110.0
    max_underexposed_fraction: float = 0.35
    #: IMAGE_TOO_BRIGHT when the mean face luma is above max_brightness, the face's shadows (5th
    #: percentile of luma) are above max_face_shadow_luma, or more than max_overexposed_fraction of
    #: it is clipped to white.
    max_brightness: float = 210.0
    max_face_shadow_luma: float = 140.0
    max_overexposed_fraction: float = 0.05
    #: Tone curve (``tone_gamma``, see docs/accuracy.md): IMAGE_TOO_DARK when a face darker than
    #: luma 140 reads above max_face_tone_gamma (mid-tones crushed), IMAGE_TOO_BRIGHT when a face
    #: brighter than that reads below min_face_tone_gamma (washed out). Needs a colour photo.
    max_face_tone_gamma: float = 1.7
    min_face_tone_gamma: float = 0.55
    #: UNEVEN_LIGHTING (a warning) when one half of the face is this much darker than the other.
    max_lighting_asymmetry: float = 0.5
    max_eye_closed_score: float = 0.6
    max_sunglasses_score: float = 0.5
    sunglasses_is_error: bool = False
    max_colourfulness_for_grayscale: float = 2.0
    #: Documents only: share of the image clipped to white in blobs (glare on the laminate).
    check_glare: bool = False
    max_glare_fraction: float = 0.02

    def __post_init__(self) -> None:
        for f in fields(self):  # a whole number given as 2e6 or 4096.0 (TOML, arithmetic) is still whole
            value = getattr(self, f.name)
            if (type(f.default) is int and isinstance(value, float) and math.isfinite(value)
                    and value.is_integer()):
                object.__setattr__(self, f.name, int(value))
        problems = policy_problems(self)
        if problems:
            raise PolicyError("; ".join(problems))

    @classmethod
    def progeny_selfie(cls) -> Policy:
        """The documented Progeny rules for a selfie (``image``, ``selfie_image``)."""
        return cls()

    @classmethod
    def progeny_document(cls) -> Policy:
        """ID cards and passports: file, resolution, JPEG quality, blur and exposure; glare; no face geometry."""
        return cls(name="progeny_document", check_face=False, check_glare=True)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], *, base: Policy | None = None) -> Policy:
        """Build a policy from a mapping of field names (unknown keys are an error, never ignored)."""
        base = base or cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise PolicyError(f"unknown policy field(s): {', '.join(unknown)}")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            current = getattr(base, key)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise PolicyError(f"policy field {key!r} must be true or false, got {value!r}")
            elif isinstance(current, tuple):
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise PolicyError(f"policy field {key!r} must be a list of strings")
                value = tuple(FORMAT_ALIASES.get(v.strip().upper(), v.strip().upper()) for v in value)
            elif isinstance(current, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise PolicyError(f"policy field {key!r} must be a number, got {value!r}")
                value = _to_float(value)
            elif isinstance(current, int):
                if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                    value = int(value)  # 2e6 or 4096.0 is still a whole number
                if isinstance(value, bool) or not isinstance(value, int):
                    raise PolicyError(f"policy field {key!r} must be a whole number, got {value!r}")
            elif isinstance(current, str) and not isinstance(value, str):
                raise PolicyError(f"policy field {key!r} must be a string")
            changes[key] = value
        return dataclasses.replace(base, **changes)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Policy:
        """Read a TOML file whose keys are :class:`Policy` field names.

        A top-level ``base = "progeny_document"`` starts from that preset instead of the selfie one.

        Raises:
            PolicyError: the file cannot be read (missing, a folder, no permission), is not UTF-8
                TOML, or holds an unknown field or an invalid value.
        """
        where = os.fspath(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file not found: {where}") from exc
        except IsADirectoryError as exc:
            raise PolicyError(f"policy file {where} is a directory, not a TOML file") from exc
        except OSError as exc:  # no permission, an I/O error...
            raise PolicyError(f"cannot read policy file {where}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy file {where} is not UTF-8 text, so not TOML: {exc.reason} "
                              f"at byte {exc.start}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {where} is not valid TOML: {exc}") from exc
        base_name = data.pop("base", None)
        if base_name is not None and not isinstance(base_name, str):
            raise PolicyError(f"policy file {where}: base must be a preset name (a string), got {base_name!r}")
        try:
            base = cls.named(base_name) if base_name else cls()
            return cls.from_mapping(data, base=base)
        except PolicyError as exc:
            raise PolicyError(f"policy file {where}: {exc}") from exc

    @classmethod
    def named(cls, name: str) -> Policy:
        """A preset by name: ``progeny_selfie`` or ``progeny_document``."""
        presets = {"progeny_selfie": cls.progeny_selfie, "selfie": cls.progeny_selfie,
                   "progeny_document": cls.progeny_document, "document": cls.progeny_document}
        try:
            return presets[name]()
        except KeyError:
            raise PolicyError(f"unknown policy preset {name!r}; choose one of {sorted(presets)}") from None

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain data (TOML/JSON friendly)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def policy_problems(policy: Policy) -> list[str]:
    """What is wrong with ``policy``'s values (empty when nothing is): wrong types, values out of
    :data:`FIELD_RANGES`, an :data:`ORDERED_PAIRS` pair the wrong way round."""
    problems: list[str] = []
    valid: dict[str, float] = {}
    for f in fields(policy):
        value, default = getattr(policy, f.name), f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"policy field {f.name!r} must be true or false, got {value!r}")
        elif isinstance(default, str):
            if not isinstance(value, str) or not value:
                problems.append(f"policy field {f.name!r} must be a non-empty string, got {value!r}")
        elif isinstance(default, tuple):
            if (not isinstance(value, tuple) or not value
                    or not all(isinstance(v, str) and v for v in value)):
                problems.append(f"policy field {f.name!r} must be a non-empty list of format names, got {value!r}")
            elif unknown := [v for v in value if v not in KNOWN_FORMATS]:
                # a typo would fail every photo as UNSUPPORTED_FORMAT, with a hint that cannot help
                problems.append(f"policy field {f.name!r} has unknown format(s) {', '.join(map(repr, unknown))}; "
                                f"known: {', '.join(KNOWN_FORMATS)}")
        elif isinstance(default, (int, float)):
            whole = isinstance(default, int)
            allowed = FIELD_RANGES.get(f.name, Range())
            number: float | None = None
            if isinstance(value, bool):
                pass
            elif whole and isinstance(value, numbers.Integral):
                number = int(value)  # exact, however large
            elif not whole and isinstance(value, numbers.Real):
                number = _to_float(value)
            if number is None or (not whole and not math.isfinite(number)):
                what = "a whole number" if whole else "a finite number"
                problems.append(f"policy field {f.name!r} must be {what} ({allowed.describe()}), got {value!r}")
            elif number not in allowed:
                problems.append(f"policy field {f.name!r} must be {allowed.describe()}, got {value!r}")
            else:
                valid[f.name] = number
    for low, high in ORDERED_PAIRS:
        if low in valid and high in valid and valid[low] > valid[high]:
            problems.append(f"policy field {low!r} ({valid[low]}) must not be above {high!r} ({valid[high]})")
    side, pixels = valid.get("min_side_px"), valid.get("max_decode_pixels")
    if side is not None and pixels is not None and pixels < side * side:
        problems.append(
            f"policy field 'max_decode_pixels' ({pixels}) must be at least min_side_px squared ({side * side}): "
            "otherwise no image large enough to pass could be decoded"
        )
    return problems


def _to_float(value: Any) -> float:
    """``float(value)``; infinity for an int too large for a float (rejected as not finite)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
