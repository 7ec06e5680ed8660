"""Every threshold the gate applies, in one frozen dataclass.

``Policy()`` is the documented Progeny selfie policy. Use :func:`dataclasses.replace` to change a
field, :meth:`Policy.from_toml` to load one from a file, and :meth:`Policy.progeny_document` for
ID-card and passport images (file and pixel rules only, no face geometry).
"""

from __future__ import annotations

import dataclasses
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
class Policy:
    """Thresholds of the local gate. Defaults are the documented Progeny selfie rules."""

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
                value = tuple(str(v).upper() for v in value)
            elif isinstance(current, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise PolicyError(f"policy field {key!r} must be a number, got {value!r}")
                value = float(value)
            elif isinstance(current, int):
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
        """
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise PolicyError(f"policy file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from exc
        base_name = data.pop("base", None)
        base = cls.named(base_name) if base_name else cls()
        return cls.from_mapping(data, base=base)

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
