"""Just enough JWT for our needs, with the standard library only.

The client only needs to *read* ``exp`` (to refresh before expiry; it never trusts the claims for anything
else), and the sandbox needs to *sign and verify* HS256 tokens shaped like SimpleJWT's. PyJWT would be a
dependency for twenty lines of code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def decode_unverified(token: str) -> dict[str, Any] | None:
    """The payload of a JWT without checking the signature, or ``None`` if it is not a JWT.

    Only used to schedule a refresh: the server stays the judge of validity.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


def expiry_of(token: str) -> float | None:
    """The ``exp`` claim (seconds since the epoch), or ``None`` when absent or unreadable."""
    payload = decode_unverified(token)
    if payload is None:
        return None
    exp = payload.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return float(exp)


def encode_hs256(payload: dict[str, Any], secret: bytes) -> str:
    """Sign ``payload`` the way SimpleJWT does (header ``{"typ":"JWT","alg":"HS256"}``)."""
    header = b64url_encode(json.dumps({"typ": "JWT", "alg": "HS256"}, separators=(",", ":")).encode())
    body = b64url_encode(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode("ascii")
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{b64url_encode(signature)}"


def verify_hs256(token: str, secret: bytes) -> dict[str, Any] | None:
    """The payload if the HS256 signature is valid (expiry is the caller's business), else ``None``."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(b64url_decode(parts[0]))
        signature = b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    try:
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    except UnicodeEncodeError:
        return None
    expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    return decode_unverified(token)
