"""Which hint catalogue to answer in."""

from __future__ import annotations

from ..guidance import DEFAULT_LOCALE, available_locales, find_locale

locales = available_locales  # the locales that have a hint catalogue (en, de, ...), for /healthz


def resolve_locale(value: str | None, accept_language: str | None = None, default: str = DEFAULT_LOCALE) -> str:
    """An available locale for ``value`` ("de", "de-AT", "de_DE" -> "de"), else from Accept-Language, else default.

    Only locales that have a catalogue are ever returned (:func:`~preflight.guidance.find_locale`), so a
    client cannot grow the (cached) catalogues with made-up names.
    """
    candidates = [value] if value else []
    if accept_language:
        candidates += _by_preference(accept_language)
    for candidate in candidates:
        found = find_locale(candidate)
        if found is not None:
            return found
    return find_locale(default) or DEFAULT_LOCALE


def _by_preference(accept_language: str) -> list[str]:
    """The language tags of an Accept-Language header, most wanted first; ``q=0`` means "not this one"."""
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:16]):
        tag, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and 0 < quality <= 1:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]
