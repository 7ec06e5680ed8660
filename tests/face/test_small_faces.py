"""Small faces in large photos: the tile pass of FaceAnalyzer.detect, on public-domain portraits
pasted small into large textured canvases (real model, real images)."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

import preflight
from preflight import codes as C
from preflight import measures as M
from preflight.face import TILE_OVERLAP, Face, FaceAnalyzer, merge_tile_faces, tile_grid

from .conftest import read_sample


@dataclass(frozen=True)
class Pasted:
    """A canvas with one portrait pasted at (x, y), and what the portrait alone measures."""

    rgb: np.ndarray
    x: int
    y: int
    alone: Face  # the pasted pixels analysed on their own
    eye_distance: float  # the original photo's, scaled by the paste
    face_size: float


@pytest.fixture(scope="module")
def plain() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer(tile_search=False) as fa:
        yield fa


def _canvas(width: int, height: int) -> np.ndarray:
    """Smooth colour blobs with fine grain: not a flat background the detector could ignore."""
    rng = np.random.default_rng(7)
    blobs: np.ndarray = cv2.resize(rng.uniform(60, 200, (6, 8, 3)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    grain = np.tile(rng.normal(0, 6, (256, 256, 1)).astype(np.float32), (height // 256 + 1, width // 256 + 1, 3))
    return np.clip(blobs + grain[:height, :width], 0, 255).astype(np.uint8)


def _paste(analyzer: FaceAnalyzer, name: str, face_px: float, size: tuple[int, int],
           where: tuple[float, float]) -> Pasted:
    """Paste the face of ``name`` (with 0.8 face sizes of margin) at ``face_px``; ``where`` is the
    patch's centre as fractions of the canvas (clamped so the patch stays inside)."""
    photo = read_sample(name)
    face = analyzer.detect(photo)[0]
    size0 = M.face_size(face.landmarks)
    x0, y0, x1, y1 = face.extent
    m = 0.8 * size0
    crop = photo[max(0, int(y0 - m)) : int(y1 + m), max(0, int(x0 - m)) : int(x1 + m)]
    scale = face_px / size0
    patch = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    width, height = size
    h, w = patch.shape[:2]
    x = int(np.clip(where[0] * width - w / 2, 0, width - w))
    y = int(np.clip(where[1] * height - h / 2, 0, height - h))
    rgb = _canvas(width, height)
    rgb[y : y + h, x : x + w] = patch
    return Pasted(rgb=rgb, x=x, y=y, alone=analyzer.detect(np.ascontiguousarray(patch))[0],
                  eye_distance=M.eye_distance(face.landmarks) * scale, face_size=size0 * scale)


@pytest.mark.parametrize(("size", "count", "side"), [
    ((4000, 3000), 12, 1600), ((3000, 4000), 12, 1600), ((4096, 4096), 16, 1639),  # 0.4 of the longer side
    ((3000, 2250), 12, 1250), ((2000, 1500), 4, 1250), ((1920, 1080), 2, 1250),  # 1250 px: faces from 150 px
    ((4000, 1000), 4, 1600),
])
def test_tile_grid_overlaps_enough_to_hold_any_missed_face_whole(size: tuple[int, int], count: int,
                                                                 side: int) -> None:
    width, height = size
    tiles = tile_grid(width, height)
    assert len(tiles) == count
    assert {(w, h) for _, _, w, h in tiles} == {(min(side, width), min(side, height))}
    assert all(x >= 0 and y >= 0 and x + w <= width and y + h <= height for x, y, w, h in tiles)
    for axis, length in ((0, width), (1, height)):
        spans = sorted({(t[axis], t[axis] + t[axis + 2]) for t in tiles})
        assert spans[0][0] == 0 and spans[-1][1] == length
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end - start >= int(max(size) * TILE_OVERLAP)


def _box_face(x0: float, y0: float, x1: float, y1: float) -> Face:
    """A stand-in face whose landmarks span exactly the box (x0, y0)-(x1, y1)."""
    landmarks = np.zeros((478, 3), np.float32)
    landmarks[0::2, :2] = x0, y0
    landmarks[1::2, :2] = x1, y1
    return Face(landmarks=landmarks, blendshapes={}, matrix=np.eye(4), image_size=(1600, 1600))


def test_merge_keeps_the_copy_farthest_from_inner_tile_edges_and_drops_cut_ones() -> None:
    found = [
        # one face at (1500, 100)-(1700, 300) of a 4000x3000 image, seen by three tiles
        ((0, 0, 1600, 1600), _box_face(1500, 100, 1700, 300)),  # crosses the inner edge x = 1600
        ((1200, 0, 1600, 1600), _box_face(302, 100, 502, 300)),  # whole, 300 px from an inner edge
        ((800, 0, 1600, 1600), _box_face(700, 100, 900, 300)),  # whole, 700 px: kept
        # cut by the image's corner, not by its tile: kept as it is
        ((2400, 1400, 1600, 1600), _box_face(1450, 1450, 1750, 1750)),
        # cut by the only tile that saw it: dropped
        ((0, 1400, 1600, 1600), _box_face(1500, 500, 1700, 700)),
    ]
    faces = merge_tile_faces(found, 4000, 3000)
    assert [f.extent for f in faces] == [(3850.0, 2850.0, 4150.0, 3150.0), (1500.0, 100.0, 1700.0, 300.0)]
    assert all(f.image_size == (4000, 3000) and f.matrix is None for f in faces)


CASES = {
    # name, face size, canvas, patch centre
    "300px-off-centre": ("obama.jpg", 300, (4000, 3000), (0.3, 0.45)),
    "300px-top-left-corner": ("biden.jpg", 300, (4000, 3000), (0.0, 0.0)),
    # centred on x = 1600, the edge of tiles 0 and 2: whole in tile 1; tile 2 sees a cut face (eyes -14 %)
    "300px-across-a-tile-edge": ("obama.jpg", 300, (4000, 3000), (0.4, 0.5)),
    "180px-bottom-right-corner": ("obama.jpg", 180, (3000, 2250), (1.0, 1.0)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_small_face_is_found_in_tiles_with_full_image_geometry(analyzer: FaceAnalyzer, plain: FaceAnalyzer,
                                                               case: str) -> None:
    name, face_px, size, where = CASES[case]
    pasted = _paste(analyzer, name, face_px, size, where)
    assert plain.detect(pasted.rgb) == []  # the limit this pass exists for

    faces = analyzer.detect(pasted.rgb)
    assert len(faces) == 1
    face = faces[0]
    assert face.image_size == size
    assert face.matrix is None  # MediaPipe's would refer to the tile's virtual camera
    assert {"eyeBlinkLeft", "eyeBlinkRight"} <= set(face.blendshapes)
    assert M.eye_distance(face.landmarks) == pytest.approx(pasted.eye_distance, rel=0.05)
    assert M.face_size(face.landmarks) == pytest.approx(pasted.face_size, rel=0.04)
    offset = np.array([pasted.x, pasted.y], dtype=np.float32)
    assert np.abs(face.right_iris - (pasted.alone.right_iris + offset)).max() < 3.0
    assert np.abs(face.left_iris - (pasted.alone.left_iris + offset)).max() < 3.0
    # z in the same pixel scale as x: scaled by the tile's width, not the canvas's (2.5 times more)
    assert np.ptp(face.landmarks[:, 2]) == pytest.approx(np.ptp(pasted.alone.landmarks[:, 2]), rel=0.15)


def test_no_face_in_a_large_canvas(analyzer: FaceAnalyzer) -> None:
    assert analyzer.detect(_canvas(4000, 3000)) == []


def test_a_face_found_in_the_full_frame_is_unchanged(analyzer: FaceAnalyzer, plain: FaceAnalyzer) -> None:
    pasted = _paste(analyzer, "obama.jpg", 600, (4000, 3000), (0.6, 0.5))
    with_tiles, without = analyzer.detect(pasted.rgb), plain.detect(pasted.rgb)
    assert len(with_tiles) == len(without) == 1
    assert np.array_equal(with_tiles[0].landmarks, without[0].landmarks)
    assert with_tiles[0].matrix is not None  # no tile pass ran


def test_tile_search_setting_survives_pickling(plain: FaceAnalyzer) -> None:
    clone = pickle.loads(pickle.dumps(plain))
    try:
        assert clone.tile_search is False
    finally:
        clone.close()


@pytest.mark.parametrize(("face_px", "size", "too_small"), [(300, (4000, 3000), False), (180, (3000, 2250), True)])
def test_gate_reports_the_small_face_instead_of_no_face(analyzer: FaceAnalyzer, face_gate: preflight.Gate,
                                                        tmp_path: Path, face_px: int, size: tuple[int, int],
                                                        too_small: bool) -> None:
    pasted = _paste(analyzer, "obama.jpg", face_px, size, (0.7, 0.3))
    path = tmp_path / "canvas.jpg"
    assert cv2.imwrite(str(path), cv2.cvtColor(pasted.rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    report = face_gate.check(path)
    assert C.FACE_NOT_FOUND not in report.codes
    assert (C.FACE_TOO_SMALL in report.codes) is too_small
    assert report.measurements.face_size_px == pytest.approx(face_px, rel=0.05)
