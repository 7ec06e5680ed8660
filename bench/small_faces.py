"""Small faces in large photos: what the tile pass of ``FaceAnalyzer.detect`` finds, and what it costs.

The face of each public-domain sample (cropped with 0.8 face sizes of margin) is pasted into a
textured 4000x3000 canvas at 3 % to 15 % of the longer side. Per size: is it found without the tile
pass (``tile_search=False``) and with it, at the main place (off-centre) and at three places (also
a corner and across a tile edge); the eye distance measured at the main place against the original
photo's scaled by the paste; and the median time of ``detect()`` with and without the tile pass.
Last, the worst case: canvases without a face, where every tile runs (4000x3000, and for the other
grids 4096x4096, 3000x2250 with 1250 px tiles, 1920x1080).

Run::

    .venv/bin/python bench/small_faces.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from preflight import measures as M  # noqa: E402
from preflight.face import FaceAnalyzer, tile_grid  # noqa: E402

SAMPLES = ["obama.jpg", "biden.jpg", "obama2.jpg"]
WIDTH, HEIGHT = 4000, 3000
#: Patch centres as fractions of the canvas: off-centre (the main one), a corner, and x = 1600,
#: an edge between tiles.
PLACES = [(0.3, 0.6), (1.0, 0.0), (0.4, 0.5)]
PERCENTS = [3, 4, 4.5, 5, 5.5, 6, 7, 8, 9, 10, 11, 12, 13, 15]


def canvas(width: int, height: int) -> np.ndarray:
    """Smooth colour blobs with fine grain (as in tests/face/test_small_faces.py)."""
    rng = np.random.default_rng(7)
    blobs: np.ndarray = cv2.resize(rng.uniform(60, 200, (6, 8, 3)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    grain = np.tile(rng.normal(0, 6, (256, 256, 1)).astype(np.float32), (height // 256 + 1, width // 256 + 1, 3))
    return np.clip(blobs + grain[:height, :width], 0, 255).astype(np.uint8)


def portrait(analyzer: FaceAnalyzer, name: str) -> tuple[np.ndarray, float, float]:
    """The face of a sample with margin, its face size and eye distance in pixels."""
    bgr = cv2.imread(str(ROOT / "sample_images" / name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    face = analyzer.detect(rgb)[0]
    size = M.face_size(face.landmarks)
    x0, y0, x1, y1 = face.extent
    m = 0.8 * size
    crop = rgb[max(0, int(y0 - m)) : int(y1 + m), max(0, int(x0 - m)) : int(x1 + m)]
    return crop, size, M.eye_distance(face.landmarks)


def paste(background: np.ndarray, patch: np.ndarray, place: tuple[float, float]) -> np.ndarray:
    height, width = background.shape[:2]
    h, w = patch.shape[:2]
    x = int(np.clip(place[0] * width - w / 2, 0, width - w))
    y = int(np.clip(place[1] * height - h / 2, 0, height - h))
    out = background.copy()
    out[y : y + h, x : x + w] = patch
    return out


def median_ms(analyzer: FaceAnalyzer, rgb: np.ndarray, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        analyzer.detect(rgb)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def yes(found: object) -> str:
    return "yes" if found else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per image (median)")
    args = parser.parse_args()
    print("$", shlex.join([sys.executable, *sys.argv]))
    background = canvas(WIDTH, HEIGHT)
    with FaceAnalyzer() as tiled, FaceAnalyzer(tile_search=False) as plain:
        print(f"canvas {WIDTH}x{HEIGHT}, {len(tile_grid(WIDTH, HEIGHT))} tiles; places (x, y fractions): {PLACES}")
        for name in SAMPLES:
            crop, size0, eyes0 = portrait(tiled, name)
            print(f"\n## {name} (face {size0:.0f} px, eyes {eyes0:.0f} px apart in the original)")
            print(f"{'face':>9} | {'main place':>11} | {'3 places':>11} | {'eyes':>6} {'expected':>8} {'error':>6} | "
                  f"{'detect ms':>17}")
            print(f"{'% / px':>9} | {'plain':>5} {'tiles':>5} | {'plain':>5} {'tiles':>5} | {'(main place)':>22} | "
                  f"{'plain':>8} {'tiles':>8}")
            for percent in PERCENTS:
                scale = percent / 100 * WIDTH / size0
                patch = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                images = [paste(background, patch, place) for place in PLACES]
                plain_hits = [bool(plain.detect(img)) for img in images]
                tiled_faces = [tiled.detect(img) for img in images]
                expected = eyes0 * scale
                if tiled_faces[0]:
                    eyes = M.eye_distance(tiled_faces[0][0].landmarks)
                    eye_cols = f"{eyes:6.1f} {expected:8.1f} {eyes / expected - 1:+6.1%}"
                else:
                    eye_cols = f"{'-':>6} {expected:8.1f} {'':>6}"
                n = len(PLACES)
                print(f"{percent:4g}%{percent / 100 * WIDTH:4.0f} | {yes(plain_hits[0]):>5} {yes(tiled_faces[0]):>5} | "
                      f"{sum(plain_hits):>3}/{n} {sum(map(bool, tiled_faces)):>3}/{n} | {eye_cols} | "
                      f"{median_ms(plain, images[0], args.runs):8.1f} {median_ms(tiled, images[0], args.runs):8.1f}")
        print("\n## no face (every tile runs)")
        for width, height in ((WIDTH, HEIGHT), (4096, 4096), (3000, 2250), (1920, 1080)):
            empty = canvas(width, height)
            assert not tiled.detect(empty)
            plain_ms, tiled_ms = median_ms(plain, empty, args.runs), median_ms(tiled, empty, args.runs)
            print(f"{width}x{height}, {len(tile_grid(width, height))} tiles: detect {plain_ms:.1f} ms plain, "
                  f"{tiled_ms:.1f} ms with tiles")


if __name__ == "__main__":
    main()
