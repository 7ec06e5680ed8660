"""Image manipulations of known size for the tests (mirrors bench/_degrade.py, kept minimal)."""

from __future__ import annotations

import math

import cv2
import numpy as np

_X = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_X <= 0.04045, _X / 12.92, ((_X + 0.055) / 1.055) ** 2.4)


def _encode(linear: np.ndarray) -> np.ndarray:
    y = np.clip(linear, 0.0, 1.0)
    return np.clip(np.round(np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055) * 255.0),
                   0, 255).astype(np.uint8)


def exposure(rgb: np.ndarray, ev: float) -> np.ndarray:
    """An exposure change of ``ev`` stops (linear light, clipped)."""
    return cv2.LUT(rgb, _encode(_LINEAR * 2.0**ev))


def white_balance(rgb: np.ndarray, red: float, blue: float) -> np.ndarray:
    """A colour cast of the light: red and blue multiplied in linear light."""
    lin = _LINEAR[rgb] * np.array([red, 1.0, blue])
    return np.clip(np.round(_encode(lin)), 0, 255).astype(np.uint8)


def gamma(rgb: np.ndarray, g: float) -> np.ndarray:
    """A tone curve ``255 * (v / 255) ** g`` on every channel (g > 1 crushes, g < 1 washes out)."""
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return cv2.LUT(rgb, lut)


def relight(rgb: np.ndarray, mask: np.ndarray, ev_inside: float, ev_outside: float) -> np.ndarray:
    gain = mask[..., None] * 2.0**ev_inside + (1.0 - mask[..., None]) * 2.0**ev_outside
    return _encode(_LINEAR[rgb] * gain)


def side_light(rgb: np.ndarray, centre_x: float, width: float, ev: float) -> np.ndarray:
    """Darken the image-left side by ``ev`` stops with a smooth ramp at ``centre_x``."""
    x = np.arange(rgb.shape[1], dtype=np.float64)
    ramp = 1.0 / (1.0 + np.exp((x - centre_x) / max(width / 4.0, 1.0)))
    return _encode(_LINEAR[rgb] * (2.0 ** (ev * ramp))[None, :, None])


def polygon_mask(shape: tuple[int, ...], points: np.ndarray, feather: float = 0.0) -> np.ndarray:
    m = np.zeros(shape[:2], np.float32)
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1.0)
    return cv2.GaussianBlur(m, (0, 0), feather) if feather > 0 else m


def motion(rgb: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    half = math.ceil(length / 2) + 1
    k = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    a = math.radians(angle_deg)
    for t in np.linspace(-length / 2, length / 2, int(length * 8) + 2):
        x, y = half + t * math.cos(a), half + t * math.sin(a)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        k[y0, x0] += (1 - fx) * (1 - fy)
        k[y0, x0 + 1] += fx * (1 - fy)
        k[y0 + 1, x0] += (1 - fx) * fy
        k[y0 + 1, x0 + 1] += fx * fy
    return cv2.filter2D(rgb, -1, k / k.sum(), borderType=cv2.BORDER_REFLECT)


def rotate(rgb: np.ndarray, angle: float) -> np.ndarray:
    """Rotate counter-clockwise (as seen) by ``angle`` degrees on an enlarged canvas."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def tilt(rgb: np.ndarray, theta_deg: float, cx: float, cy: float, focal: float) -> np.ndarray:
    """Show the (flat) photo rotated about the horizontal axis through (cx, cy) by ``theta_deg``,
    through a pinhole of focal length ``focal`` px: positive angles move the top away (chin up)."""
    h, w = rgb.shape[:2]
    t = math.radians(theta_deg)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = []
    for u, v in src:
        x, y = u - cx, v - cy
        z = focal - y * math.sin(t)
        dst.append([cx + focal * x / z, cy + focal * y * math.cos(t) / z])
    hom = cv2.getPerspectiveTransform(src, np.float32(dst))
    return cv2.warpPerspective(rgb, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def desaturate(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)


def resize(rgb: np.ndarray, s: float) -> np.ndarray:
    return cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
