"""Which hint catalogue to answer in."""

from __future__ import annotations

from functools import cache

from ..guidance import DEFAULT_LOCALE, available_locales


@cache
def locales() -> tuple[str, ...]:
    """The locales that have a hint catalogue (en, de, ...)."""
    return available_locales()


def resolve_locale(value: str | None, accept_language: str | None = None, default: str = DEFAULT_LOCALE) -> str:
    """An available locale for ``value`` ("de", "de-AT", "de_DE" -> "de"), else from Accept-Language, else default.

    Only locales that have a catalogue are ever returned, so a client cannot grow the (cached) catalogues
    with made-up names.
    """
    candidates: list[str] = []
    if value:
        candidates.append(value)
    if accept_language:
        candidates += [item.split(";")[0] for item in accept_language.split(",")[:8]]
    available = locales()
    for candidate in candidates:
        norm = candidate.strip().replace("-", "_")[:32]
        for option in (norm, norm.split("_")[0].lower()):
            if option in available:
                return option
    return default if default in available else DEFAULT_LOCALE
