"""Test images made in the tests (no faces): patterns, encodings."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image


def encode(img: Image.Image | np.ndarray, fmt: str = "JPEG", **params: Any) -> bytes:
    """Encode a PIL image or RGB array to bytes."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def gradient(width: int, height: int) -> np.ndarray:
    """A smooth, asymmetric RGB test pattern (no face), compressible and orientation-revealing."""
    y, x = np.mgrid[0:height, 0:width]
    r = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(height - 1, 1)).astype(np.uint8)
    b = ((x + 2 * y) % 256).astype(np.uint8)
    img = np.stack([r, g, b], axis=2)
    img[: height // 8, : width // 8] = (255, 0, 0)  # a red marker in the top-left corner
    return img
