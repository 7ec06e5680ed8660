"""Backoff and ``Retry-After`` arithmetic (openai-python / stripe-python style), free of I/O."""

from __future__ import annotations

import datetime
import email.utils
import random
import time
from collections.abc import Mapping


def backoff_delay(retry_index: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """``base * 2**n`` capped at ``cap``, minus up to 25 % jitter so that clients do not retry in step."""
    delay = min(base * (2.0**retry_index), cap)
    jitter = 1.0 - 0.25 * (rng or random).random()
    return max(0.0, delay * jitter)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP-date.

    Returns None when absent or unreadable; never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if parsed is None:
            return None
        if parsed.tzinfo is None:  # "-0000" parses naive; HTTP dates are GMT
            parsed = parsed.replace(tzinfo=datetime.timezone.utc)
        current = time.time() if now is None else now
        return max(0.0, parsed.timestamp() - current)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
        return None
    return max(0.0, seconds)
