"""Lossless metadata removal for JPEG and PNG files (privacy: EXIF, GPS, XMP, IPTC, comments).

Stripping by rewriting the container keeps every pixel bit-exact, so a photo that only needs its
metadata removed is never re-encoded. Colour information (ICC profiles, Adobe colour transform,
PNG colour chunks) is kept, because dropping it would change how the image looks.
"""

from __future__ import annotations

import struct

# JPEG segments we keep before the scan: JFIF (APP0), ICC profiles (APP2 "ICC_PROFILE"),
# Adobe (APP14, needed to decode CMYK/YCCK correctly) and all non-APP coding segments.
_KEEP_APP = {0xE0, 0xE2, 0xEE}


def strip_jpeg(data: bytes) -> bytes | None:
    """``data`` without EXIF/XMP/IPTC/comments and without anything after the main image's EOI.

    Returns ``None`` when the stream is not a well-formed JPEG (the caller then re-encodes instead).
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    out = bytearray(b"\xff\xd8")
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker == 0xD9:
            out += b"\xff\xd9"
            return bytes(out)
        if pos + 4 > n:
            return None
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > n:
            return None
        segment = data[pos:end]
        is_app = 0xE0 <= marker <= 0xEF
        keep = (not is_app and marker != 0xFE) or (
            marker in _KEEP_APP and not (marker == 0xE2 and not segment[4:16].startswith(b"ICC_PROFILE"))
        )
        if keep:
            out += segment
        pos = end
        if marker == 0xDA:  # entropy-coded data up to the next marker that is not RST or stuffing
            scan_end = _scan_end(data, pos)
            if scan_end is None:
                return None
            out += data[pos:scan_end]
            pos = scan_end
    return None


def _scan_end(data: bytes, pos: int) -> int | None:
    n = len(data)
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= n:
            return None
        nxt = data[pos + 1]
        if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
            pos += 1 if nxt == 0xFF else 2
            continue
        return pos


_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
             b"cICP", b"pHYs", b"bKGD", b"acTL", b"fcTL", b"fdAT"}


def strip_png(data: bytes) -> bytes | None:
    """``data`` with only the chunks that define the picture (drops eXIf, text, time and private chunks)."""
    sig = b"\x89PNG\r\n\x1a\n"
    if not data.startswith(sig):
        return None
    out = bytearray(sig)
    pos, n = 8, len(data)
    while pos + 12 <= n:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            return None
        if kind in _PNG_KEEP:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            return bytes(out)
    return None
