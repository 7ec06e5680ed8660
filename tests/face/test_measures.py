"""The pure measurement functions, on arrays with known answers (no model needed)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from preflight import measures as M


def _landmarks_with_eyes(right: tuple[float, float], left: tuple[float, float]) -> np.ndarray:
    lm = np.zeros((478, 3), np.float32)
    lm[M.RIGHT_IRIS_CENTRE, :2] = right
    lm[M.LEFT_IRIS_CENTRE, :2] = left
    return lm


def test_eye_distance_and_roll_sign() -> None:
    # subject's right eye on the image's left, the image-right eye 10 px lower: clockwise tilt
    lm = _landmarks_with_eyes((100, 100), (200, 110))
    assert M.eye_distance(lm) == pytest.approx(math.hypot(100, 10))
    assert M.roll_deg(lm) == pytest.approx(math.degrees(math.atan2(10, 100)))
    assert M.roll_deg(_landmarks_with_eyes((100, 110), (200, 100))) < 0
    # upside down: about 180, not folded back into +-90
    assert abs(M.roll_deg(_landmarks_with_eyes((200, 100), (100, 100)))) == pytest.approx(180)


def _ellipse_face(cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0) -> np.ndarray:
    """478 landmarks on and inside an ellipse, with the outline on FACE_OVAL and level eyes."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 478)
    r = np.sqrt(rng.uniform(0, 1, 478))
    pts = np.stack([rx * r * np.cos(t), ry * r * np.sin(t)], axis=1)
    oval = np.linspace(-np.pi / 2, 1.5 * np.pi, len(M.FACE_OVAL), endpoint=False)
    pts[list(M.FACE_OVAL)] = np.stack([rx * np.cos(oval), ry * np.sin(oval)], axis=1)
    pts[M.FACE_OVAL[0]] = (0, -ry)  # top of the forehead
    pts[M.FACE_OVAL[len(M.FACE_OVAL) // 2]] = (0, ry)  # chin
    pts[M.FACE_OVAL[len(M.FACE_OVAL) // 4]] = (rx, 0)
    pts[M.FACE_OVAL[3 * len(M.FACE_OVAL) // 4]] = (-rx, 0)
    pts[M.RIGHT_IRIS_CENTRE] = (-0.4 * rx, -0.2 * ry)
    pts[M.LEFT_IRIS_CENTRE] = (0.4 * rx, -0.2 * ry)
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    pts = pts @ rot.T + (cx, cy)
    lm = np.zeros((478, 3), np.float32)
    lm[:, :2] = pts
    return lm


def test_face_size_is_the_shorter_side_and_ignores_in_plane_rotation() -> None:
    upright = _ellipse_face(300, 300, 100, 130)
    assert M.face_size(upright) == pytest.approx(200, rel=0.01)
    tilted = _ellipse_face(300, 300, 100, 130, angle_deg=30)
    assert M.roll_deg(tilted) == pytest.approx(30, abs=1e-3)
    assert M.face_size(tilted) == pytest.approx(200, rel=0.01)
    # the axis-aligned box of the tilted face is larger: we do not use it for the size
    _, _, w, h = M.face_box(tilted)
    assert min(w, h) > 215


def test_cut_off_fraction() -> None:
    inside = _ellipse_face(300, 300, 100, 130)
    assert M.cut_off_fraction(inside, 600, 600) == 0.0
    half = _ellipse_face(0, 300, 100, 130)  # centred on the left border
    assert M.cut_off_fraction(half, 600, 600) == pytest.approx(0.5, abs=0.02)
    corner = _ellipse_face(0, 0, 100, 130)
    assert M.cut_off_fraction(corner, 600, 600) == pytest.approx(0.75, abs=0.02)
    gone = _ellipse_face(-500, 300, 100, 130)
    assert M.cut_off_fraction(gone, 600, 600) == 1.0


def test_box_iou() -> None:
    assert M.box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert M.box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert M.box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """Rotation in model axes (x right, y up, z toward the viewer) with our sign conventions."""
    p, y, r = map(math.radians, (pitch, yaw, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])  # nose up
    rz = np.array([[math.cos(r), math.sin(r), 0], [-math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def test_angles_from_rotation_signs() -> None:
    assert M.angles_from_rotation(np.eye(3)) == pytest.approx((0, 0, 0), abs=1e-9)
    p, y, r = M.angles_from_rotation(_rotation(0, 20, 0))
    assert y == pytest.approx(20) and abs(p) < 1e-9  # nose toward +x, the image's right
    p, y, r = M.angles_from_rotation(_rotation(15, 0, 0))
    assert p == pytest.approx(15) and abs(y) < 1e-9  # nose toward +y, up
    p, y, r = M.angles_from_rotation(_rotation(0, 0, 10))
    assert r == pytest.approx(10)  # clockwise as seen (image y points down)


def _canonical() -> M.CanonicalFace:
    rng = np.random.default_rng(1)
    vertices = rng.normal(0, 5, (468, 3))
    vertices[:, 2] = np.abs(vertices[:, 2])  # a face bulges toward the viewer
    indices = np.arange(0, 468, 7)
    return M.CanonicalFace(vertices=vertices, indices=indices, weights=rng.uniform(0.5, 1.5, len(indices)))


@pytest.mark.parametrize(("pitch", "yaw"), [(0, 0), (20, 0), (-15, 0), (0, 30), (0, -25), (12, -18)])
def test_head_pose_recovers_a_known_rotation(pitch: float, yaw: float) -> None:
    canonical = _canonical()
    rot = _rotation(pitch, yaw, 5)
    model = canonical.vertices @ rot.T * 12.0  # 12 px per model unit
    lm = np.zeros((478, 3), np.float32)
    # model axes -> image axes (y down, z away), anywhere in the frame
    lm[:468] = np.stack([model[:, 0] + 800, -model[:, 1] + 300, -model[:, 2]], axis=1)
    pose = M.head_pose(lm, canonical)
    assert pose.pitch_deg == pytest.approx(pitch, abs=0.01)
    assert pose.yaw_deg == pytest.approx(yaw, abs=0.01)
    assert pose.scale == pytest.approx(12.0, rel=1e-3)


def _texture(size: int = 160, seed: int = 0) -> np.ndarray:
    """A natural-ish texture: noise with a 1/f spectrum, scaled to 40..210."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.normal(size=(size, size)))
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    spectrum /= np.maximum(np.hypot(fx, fy), 1.0 / size)
    img = np.real(np.fft.ifft2(spectrum))
    img = (img - img.min()) / (img.max() - img.min())
    return (40 + 170 * img).astype(np.float32)


def test_sharpness_falls_with_defocus_and_with_motion_blur() -> None:
    sharp_img = _texture()
    s0 = M.sharpness(sharp_img)
    assert s0 is not None and s0 > 0.1
    values = [M.sharpness(cv2.GaussianBlur(sharp_img, (0, 0), s)) for s in (0.8, 1.5, 3.0)]
    assert values[0] is not None and values[0] < s0
    assert values == sorted(values, reverse=True)
    # horizontal motion blur: sharp across, blurred along; the least sharp direction counts
    kernel = np.full((1, 9), 1 / 9, np.float32)
    moved = cv2.filter2D(sharp_img, -1, kernel)
    per_direction = M.directional_sharpness(moved)
    assert per_direction[0] < 0.5 * per_direction[4]  # 0 deg (along) vs 90 deg (across)
    moved_value = M.sharpness(moved)
    assert moved_value is not None and moved_value < 0.5 * s0


def test_sharpness_ignores_brightness_and_contrast() -> None:
    img = _texture()
    s0 = M.sharpness(img)
    assert s0 is not None
    assert M.sharpness(img * 0.5) == pytest.approx(s0, rel=1e-3)
    assert M.sharpness(img * 0.6 + 50) == pytest.approx(s0, rel=1e-3)


def test_sharpness_of_a_flat_region_is_zero_and_of_a_tiny_one_none() -> None:
    flat = np.full((50, 50), 128, np.float32)
    assert M.sharpness(flat) == 0.0
    mask = np.zeros((50, 50), bool)
    mask[10:15, 10:15] = True
    assert M.sharpness(_texture(50), mask) is None


def test_exposure_fractions() -> None:
    gray = np.array([[0, 10, 16, 17], [100, 249, 250, 255]], np.float32)
    e = M.exposure(gray)
    assert e is not None
    assert e.brightness == pytest.approx(gray.mean())
    assert e.underexposed_fraction == pytest.approx(3 / 8)
    assert e.overexposed_fraction == pytest.approx(2 / 8)
    mask = np.array([[False, False, False, True], [True, False, False, False]])
    masked = M.exposure(gray, mask)
    assert masked is not None and masked.underexposed_fraction == 0 and masked.brightness == pytest.approx(58.5)


def _encode_srgb(linear: np.ndarray) -> np.ndarray:
    y = np.clip(linear, 0.0, 1.0)
    v = np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)
    return np.clip(np.round(v * 255.0), 0, 255).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def test_tone_reads_contrast_in_stops_and_chroma_in_linear_light() -> None:
    # a "face" whose linear luminance spans 4 stops evenly and whose red is twice its green
    stops = np.linspace(-5.0, -1.0, 64 * 64).reshape(64, 64)
    green = 2.0**stops
    linear = np.stack([2.0 * green, green, 0.6 * green], axis=2)
    rgb = _encode_srgb(linear)
    ones = np.ones((64, 64), dtype=bool)
    tone = M.tone(_luma(rgb), rgb, ones)
    assert tone is not None
    assert tone.contrast_stops == pytest.approx(0.96 * 4.0, abs=0.15)  # 2nd..98th percentile of 4 stops
    assert tone.chroma_rg == pytest.approx(1.0, abs=0.05)
    w = M.TONE_CONTRAST_WEIGHT
    expected = w * tone.contrast_stops / M.REFERENCE_CONTRAST_STOPS + (1 - w) * 1.0 / M.REFERENCE_CHROMA_RG
    assert tone.gamma == pytest.approx(expected, abs=0.03)
    # the same face 1 stop darker: nothing changes
    dark_rgb = _encode_srgb(linear / 2.0)
    darker = M.tone(_luma(dark_rgb), dark_rgb, ones)
    assert darker is not None and darker.gamma is not None
    assert darker.gamma == pytest.approx(tone.gamma, abs=0.03)
    # grey: contrast only; too few pixels: nothing
    grey_rgb = np.repeat(rgb[..., 1:2], 3, axis=2)
    grey = M.tone(_luma(grey_rgb), grey_rgb, ones)
    assert grey is not None and grey.chroma_rg is None and grey.gamma is None
    assert M.tone(_luma(rgb), rgb, np.zeros((64, 64), dtype=bool)) is None


def test_colourfulness() -> None:
    rng = np.random.default_rng(0)
    gray = np.repeat(rng.integers(0, 256, (120, 160, 1), dtype=np.uint8), 3, axis=2)
    assert M.colourfulness(gray) == 0.0
    colour = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert M.colourfulness(colour) > 50
    # a grayscale JPEG stored as RGB: chroma is not exactly zero but tiny
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    assert M.colourfulness(cv2.imdecode(buf, cv2.IMREAD_COLOR)) < 2.0


def test_glare_fraction_counts_blobs_not_specks() -> None:
    gray = np.full((200, 200), 120, np.uint8)
    gray[50:70, 50:100] = 255  # 1000 px = 2.5 %
    assert M.glare_fraction(gray) == pytest.approx(0.025)
    specks = np.full((200, 200), 120, np.uint8)
    specks[::20, ::20] = 255
    assert M.glare_fraction(specks) == 0.0
