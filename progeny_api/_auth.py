"""The token pair: lazy login, proactive refresh, single-flight under a lock, rotation-safe.

SimpleJWT rotates the refresh token on every refresh (and may blacklist the old one). If two threads refresh
with the same refresh token, the second is refused and would force a spurious re-login, or a logout. So every
obtain/refresh happens under one lock, the state is re-checked after taking it, and the rotated refresh token
is stored in the same critical section as the new access token.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._jwt import expiry_of
from .errors import AuthenticationError, ResponseFormatError

log = logging.getLogger("progeny_api")

#: Both calls take the polling deadline (``time.monotonic()`` seconds) of the call that needs the token, if any.
TokenCall = Callable[[float | None], Mapping[str, Any]]
RefreshCall = Callable[[str, float | None], Mapping[str, Any]]

#: A token is sent as ``Authorization: Bearer <token>``: visible ASCII only (a JWT is base64url and dots).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


class TokenManager:
    """Holds the access/refresh pair and hands out a valid access token."""

    def __init__(
        self,
        *,
        obtain: TokenCall,
        refresh: RefreshCall,
        refresh_skew: float = 30.0,
        fallback_lifetime: float = 270.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._obtain_call = obtain
        self._refresh_call = refresh
        self._skew = refresh_skew
        self._fallback_lifetime = fallback_lifetime
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._access: str | None = None
        self._refresh: str | None = None
        self._access_renew_at = float("-inf")
        self._refresh_expires_at = float("inf")
        #: How many logins / refreshes this manager performed (for tests and diagnostics).
        self.obtain_count = 0
        self.refresh_count = 0

    def __repr__(self) -> str:
        state = "empty" if self._access is None else "holding a token pair"
        return f"<TokenManager {state}>"

    # -- public -------------------------------------------------------------------------------------------

    def access_token(self, deadline: float | None = None) -> str:
        """A valid access token: the cached one, else a refreshed one, else a fresh login.

        A refused refresh (401: expired, blacklisted, or the account changed) falls back to one login.
        ``deadline`` bounds the token calls made for a polling request.
        """
        with self._lock:
            now = self._monotonic()
            if self._access is not None and now < self._access_renew_at:
                return self._access
            if self._refresh is not None and now < self._refresh_expires_at:
                try:
                    self._do_refresh(self._refresh, deadline)
                    assert self._access is not None
                    return self._access
                except AuthenticationError:
                    log.info("token refresh refused; logging in again")
                    self._refresh = None
            self._do_obtain(deadline)
            assert self._access is not None
            return self._access

    def invalidate(self, access_token: str) -> None:
        """The server rejected ``access_token``: renew it on the next call, unless another thread already
        did (then the token in hand is newer and must not be refreshed again)."""
        with self._lock:
            if self._access == access_token:
                self._access_renew_at = float("-inf")

    def clear(self) -> None:
        with self._lock:
            self._access = None
            self._refresh = None
            self._access_renew_at = float("-inf")
            self._refresh_expires_at = float("inf")

    # -- internals (called with the lock held) ------------------------------------------------------------

    def _do_obtain(self, deadline: float | None) -> None:
        body = self._obtain_call(deadline)
        access = _token(body, "access")
        refresh = body.get("refresh")
        self.obtain_count += 1
        # Without a refresh token we simply log in again when the access token runs out.
        self._store(access, refresh if isinstance(refresh, str) and refresh else None)
        log.debug("obtained a new token pair")

    def _do_refresh(self, refresh_token: str, deadline: float | None) -> None:
        body = self._refresh_call(refresh_token, deadline)
        access = _token(body, "access")
        rotated = body.get("refresh")
        self.refresh_count += 1
        # With rotation the old refresh token is now spent (maybe blacklisted): keep the new one.
        self._store(access, rotated if isinstance(rotated, str) and rotated else refresh_token)
        log.debug("refreshed the access token (refresh token %s)", "rotated" if rotated else "kept")

    def _store(self, access: str, refresh: str | None) -> None:
        now_mono = self._monotonic()
        now_wall = self._clock()
        lifetime = self._remaining(access, now_wall)
        # Renew a little before expiry: `skew` seconds, but never more than a fifth of the lifetime (a
        # 2-second sandbox token must not be "about to expire" the moment it arrives).
        self._access = access
        self._access_renew_at = now_mono + lifetime - min(self._skew, lifetime * 0.2)
        self._refresh = refresh
        refresh_exp = expiry_of(refresh) if refresh else None
        if refresh_exp is None:
            self._refresh_expires_at = float("inf")
        else:
            self._refresh_expires_at = now_mono + (refresh_exp - now_wall) - min(self._skew, 5.0)

    def _remaining(self, access: str, now_wall: float) -> float:
        exp = expiry_of(access)
        if exp is None or exp <= now_wall:
            # Unreadable, or our clock is ahead of the server's: assume the documented 5-minute lifetime
            # minus a margin. A wrong guess only costs one 401 -> refresh -> replay.
            return self._fallback_lifetime
        return exp - now_wall


def _token(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ResponseFormatError(f"token response has no {key!r} token")
    if key == "access" and not _HEADER_SAFE.fullmatch(value):
        # It could not be sent in a header (http.client would raise UnicodeEncodeError, or refuse a newline).
        raise ResponseFormatError("token response has an 'access' token that is not a valid header value")
    return value
