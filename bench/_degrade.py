"""Degradations of known size, for calibration: blur relative to the eye distance, exposure in
stops (EV, applied in linear light like a camera would), gamma, backlight and side light."""

from __future__ import annotations

import math

import cv2
import numpy as np

_X = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_X <= 0.04045, _X / 12.92, ((_X + 0.055) / 1.055) ** 2.4)


def _encode(linear: np.ndarray) -> np.ndarray:
    y = np.clip(linear, 0.0, 1.0)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055) * 255.0


def exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """Scale the light by 2**ev in linear sRGB, clip, re-encode (an exposure change of ``ev`` stops)."""
    lut = np.clip(np.round(_encode(_LINEAR * 2.0**ev)), 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def white_balance(rgb: np.ndarray, red: float, blue: float) -> np.ndarray:
    """Multiply red and blue in linear light (a colour cast of the light: warm indoor light has red up
    and blue down), clip, re-encode."""
    lin = _LINEAR[rgb] * np.array([red, 1.0, blue])
    return np.clip(np.round(_encode(lin)), 0, 255).astype(np.uint8)


def gamma(rgb: np.ndarray, g: float) -> np.ndarray:
    """``out = 255 * (in/255) ** g``: g > 1 darkens the mid-tones, g < 1 washes them out."""
    lut = np.clip(np.round(255.0 * _X**g), 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def gaussian(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return rgb if sigma <= 0 else cv2.GaussianBlur(rgb, (0, 0), sigma)


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised, anti-aliased straight streak of ``length`` pixels at ``angle_deg``."""
    half = max(1, math.ceil(length / 2) + 1)
    size = 2 * half + 1
    k = np.zeros((size, size), np.float32)
    a = math.radians(angle_deg)
    dx, dy = math.cos(a), math.sin(a)
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 8) + 1)):
        x, y = half + t * dx, half + t * dy
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return k / k.sum()


def motion(rgb: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    if length < 1:
        return rgb
    return cv2.filter2D(rgb, -1, motion_kernel(length, angle_deg), borderType=cv2.BORDER_REFLECT)


def face_mask(shape: tuple[int, ...], outline: np.ndarray, feather: float) -> np.ndarray:
    """Float mask 0..1 of the face outline polygon, feathered by a Gaussian of ``feather`` px."""
    m = np.zeros(shape[:2], np.float32)
    cv2.fillPoly(m, [np.round(outline).astype(np.int32)], 1.0)
    if feather > 0:
        m = cv2.GaussianBlur(m, (0, 0), feather)
    return m


def relight(rgb: np.ndarray, mask: np.ndarray, ev_inside: float, ev_outside: float) -> np.ndarray:
    """Change the exposure inside and outside ``mask`` separately (backlight, dark background)."""
    lin = _LINEAR[rgb]
    gain = mask[..., None] * 2.0**ev_inside + (1.0 - mask[..., None]) * 2.0**ev_outside
    return np.clip(np.round(_encode(lin * gain)), 0, 255).astype(np.uint8)


def side_light(rgb: np.ndarray, centre_x: float, width: float, ev: float) -> np.ndarray:
    """Darken the image-left side by ``ev`` stops, with a smooth ramp of ``width`` px at ``centre_x``
    (light from the right; one half of the face in shadow)."""
    w = rgb.shape[1]
    x = np.arange(w, dtype=np.float64)
    ramp = 1.0 / (1.0 + np.exp((x - centre_x) / max(width / 4.0, 1.0)))  # 1 on the left, 0 on the right
    gain = 2.0 ** (ev * ramp)
    lin = _LINEAR[rgb] * gain[None, :, None]
    return np.clip(np.round(_encode(lin)), 0, 255).astype(np.uint8)


def desaturate(rgb: np.ndarray) -> np.ndarray:
    """A grayscale filter: luma copied to all three channels."""
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return np.repeat(y[:, :, None], 3, axis=2)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
