"""Geometry and pose on committed photos, against exact synthetic truth.

Every expected value here follows from how the image was made (resized by s, rotated by a known
angle, mirrored, moved in the frame), not from a previous run of the code.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from preflight import measures as M
from preflight.face import Face, FaceAnalyzer

from . import _synth as S
from .conftest import read_sample


def _primary(analyzer: FaceAnalyzer, rgb: np.ndarray) -> Face:
    faces = analyzer.detect(np.ascontiguousarray(rgb))
    assert faces, "no face found"
    return faces[0]


def _pose(analyzer: FaceAnalyzer, face: Face) -> tuple[float, float, float]:
    assert analyzer.canonical is not None
    p = M.head_pose(face.landmarks, analyzer.canonical)
    return p.pitch_deg, p.yaw_deg, M.roll_deg(face.landmarks)


@pytest.mark.parametrize("s", [0.5, 0.75, 1.5])
def test_resizing_scales_face_size_and_eye_distance(analyzer: FaceAnalyzer, obama: np.ndarray, s: float) -> None:
    base = _primary(analyzer, obama)
    scaled = _primary(analyzer, S.resize(obama, s))
    for fn in (M.face_size, M.eye_distance):
        assert fn(scaled.landmarks) == pytest.approx(s * fn(base.landmarks), rel=0.03), fn.__name__


def test_resolution_ladder_scales_like_the_image(analyzer: FaceAnalyzer) -> None:
    """The same photo at 480p, 720p and 1080p (committed): sizes follow the image width."""
    faces = {n: (read_sample(f"obama-{n}.jpg"), n) for n in ("480p", "720p", "1080p")}
    ref_img = faces["1080p"][0]
    ref = _primary(analyzer, ref_img)
    for name in ("480p", "720p"):
        img = faces[name][0]
        s = img.shape[1] / ref_img.shape[1]
        f = _primary(analyzer, img)
        assert M.eye_distance(f.landmarks) == pytest.approx(s * M.eye_distance(ref.landmarks), rel=0.03)
        assert M.face_size(f.landmarks) == pytest.approx(s * M.face_size(ref.landmarks), rel=0.03)


@pytest.mark.parametrize("angle", [-30, -15, 15, 30])
def test_in_plane_rotation_changes_roll_by_the_angle(analyzer: FaceAnalyzer, obama: np.ndarray, angle: int) -> None:
    p0, y0, r0 = _pose(analyzer, _primary(analyzer, obama))
    face = _primary(analyzer, S.rotate(obama, angle))
    p, y, r = _pose(analyzer, face)
    # OpenCV turns the picture counter-clockwise for a positive angle: the image-right eye rises
    assert r - r0 == pytest.approx(-angle, abs=1.5)
    assert abs(y - y0) < 3 and abs(p - p0) < 3
    assert M.face_size(face.landmarks) == pytest.approx(M.face_size(_primary(analyzer, obama).landmarks), rel=0.04)


@pytest.mark.parametrize("name", ["obama2.jpg", "biden.jpg"])
def test_mirroring_flips_yaw_and_roll(analyzer: FaceAnalyzer, name: str) -> None:
    rgb = read_sample(name)
    p0, y0, r0 = _pose(analyzer, _primary(analyzer, rgb))
    p, y, r = _pose(analyzer, _primary(analyzer, rgb[:, ::-1]))
    assert abs(y0) > 8  # these two are visibly turned, so the sign test means something
    assert y == pytest.approx(-y0, abs=1.5)
    assert r == pytest.approx(-r0, abs=1.0)
    assert p == pytest.approx(p0, abs=1.5)


def test_signs_on_photos_a_person_can_check(analyzer: FaceAnalyzer) -> None:
    # obama2: the nose points to the image's left; biden: to the right, head tilted clockwise
    _, yaw_obama2, _ = _pose(analyzer, _primary(analyzer, read_sample("obama2.jpg")))
    _, yaw_biden, roll_biden = _pose(analyzer, _primary(analyzer, read_sample("biden.jpg")))
    assert yaw_obama2 < -8
    assert yaw_biden > 8
    assert roll_biden > 6


@pytest.mark.parametrize("theta", [-30, 30])
def test_pitch_sign_from_tilting_the_photo(analyzer: FaceAnalyzer, obama: np.ndarray, theta: int) -> None:
    """A flat photo tilted with its top away from the camera reads as chin-up (pitch increases).

    A flat picture carries no depth, so only the direction is exact; MediaPipe reads about a third
    of the tilt (see docs/accuracy.md)."""
    base = _primary(analyzer, obama)
    p0, _, _ = _pose(analyzer, base)
    cx, cy = base.xy.mean(axis=0)
    p, _, _ = _pose(analyzer, _primary(analyzer, S.tilt(obama, theta, cx, cy, 3 * M.eye_distance(base.landmarks))))
    assert np.sign(p - p0) == np.sign(theta)
    assert abs(p - p0) > 4


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_moving_the_face_in_the_frame_does_not_change_the_pose(analyzer: FaceAnalyzer, side: str) -> None:
    rgb = read_sample("grace_hopper_512x512.jpg")
    p0, y0, r0 = _pose(analyzer, _primary(analyzer, rgb))
    n = rgb.shape[0]
    pads = {"left": (0, 0, n, 0), "right": (0, 0, 0, n), "top": (n, 0, 0, 0), "bottom": (0, n, 0, 0)}[side]
    padded = cv2.copyMakeBorder(rgb, *pads, cv2.BORDER_REPLICATE)
    p, y, r = _pose(analyzer, _primary(analyzer, padded))
    assert abs(p - p0) < 2.0 and abs(y - y0) < 2.0 and abs(r - r0) < 1.0
