"""End-user guidance: one short, imperative hint per code, translatable, ordered by what to fix first.

The hints live in JSON message catalogues (``preflight/locales/<locale>.json``), one per language,
so a translator edits data, not code. English is the fallback for a missing locale or message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from . import codes as C

if TYPE_CHECKING:
    from .report import Issue

DEFAULT_LOCALE = "en"

#: What to fix first. A person cannot judge blur in a photo that has no usable light, and a
#: face that is not in the frame has no pose: fix the file, then the scene (who and what is in
#: it, light), then the framing (distance, angle), then the moment (hold still, open eyes).
FIX_ORDER: tuple[str, ...] = (
    C.FAILED_TO_READ_IMAGE,
    C.UNSUPPORTED_FORMAT,
    C.FILE_TOO_LARGE,
    C.RESOLUTION_TOO_HIGH,
    C.RESOLUTION_TOO_LOW,
    C.JPEG_QUALITY_TOO_LOW,
    C.IMAGE_TURNED,
    C.FACE_NOT_FOUND,
    C.MULTIPLE_FACES,
    C.SUNGLASSES,
    C.IMAGE_TOO_DARK,
    C.IMAGE_TOO_BRIGHT,
    C.UNEVEN_LIGHTING,
    C.GLARE,
    C.FACE_TOO_SMALL,
    C.EYE_DISTANCE_TOO_SMALL,
    C.FACE_CUT_OFF,
    C.YAW_TOO_LARGE,
    C.PITCH_TOO_LARGE,
    C.ROLL_TOO_LARGE,
    C.IMAGE_BLURRY,
    C.EYES_CLOSED,
    C.GRAYSCALE_IMAGE,
    C.EXIF_ROTATED,
    C.HEIGHT_ABOVE_RECOMMENDED,
)
_RANK = {code: i for i, code in enumerate(FIX_ORDER)}


@cache
def available_locales() -> tuple[str, ...]:
    """Locales that have a message catalogue."""
    folder = resources.files("preflight") / "locales"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json")))


@cache
def catalogue(locale: str = DEFAULT_LOCALE) -> dict[str, str]:
    """The hint catalogue of ``locale`` (``"de"``, ``"de_DE"``, ``"de-AT"`` all find ``de``)."""
    base = (resources.files("preflight") / "locales" / f"{DEFAULT_LOCALE}.json").read_text("utf-8")
    messages: dict[str, str] = json.loads(base)
    for candidate in _candidates(locale):
        if candidate == DEFAULT_LOCALE:
            break
        path = resources.files("preflight") / "locales" / f"{candidate}.json"
        if path.is_file():
            messages = {**messages, **json.loads(path.read_text("utf-8"))}
            break
    return messages


def find_locale(locale: str | None) -> str | None:
    """The available locale that ``locale`` names (``"de"``, ``"de-AT"``, ``"de_DE"`` -> ``"de"``), or
    ``None``. Only catalogue names come back, so made-up names never grow the cached catalogues."""
    if locale and locale.strip():
        available = available_locales()
        for candidate in _candidates(locale.strip()[:32]):
            if candidate in available:
                return candidate
    return None


def resolve_locale(locale: str | None) -> str:
    """:func:`find_locale`, English when it finds none."""
    return find_locale(locale) or DEFAULT_LOCALE


def _candidates(locale: str) -> list[str]:
    norm = locale.replace("-", "_").strip()
    return [norm, norm.split("_")[0].lower()] if norm else [DEFAULT_LOCALE]


def hint(code: str, locale: str = DEFAULT_LOCALE) -> str:
    """The end-user hint for ``code`` in ``locale`` (English when untranslated; empty for an unknown code)."""
    return catalogue(locale).get(code, "")


def fix_rank(code: str) -> int:
    """Position of ``code`` in :data:`FIX_ORDER` (unknown codes go last)."""
    return _RANK.get(code, len(_RANK))


def ordered_hints(issues: Iterable[Issue], locale: str = DEFAULT_LOCALE) -> list[str]:
    """Distinct hints for ``issues``, errors before warnings, each group in :data:`FIX_ORDER`."""
    ordered = sorted(issues, key=lambda i: (i.severity != "error", fix_rank(i.code)))
    out: list[str] = []
    for issue in ordered:
        text = hint(issue.code, locale) or issue.hint
        if text and text not in out:
            out.append(text)
    return out
