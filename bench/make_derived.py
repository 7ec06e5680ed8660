"""Derived images of known defects, made from the public-domain ``sample_images/obama.jpg``.

* ``obama_selfie_1080x1440.jpg``: the photo scaled (bicubic) to 1440 px high and centre-cropped to
  1080 px wide, JPEG quality 90 (the performance benchmark's input).
* ``obama_gaussian_blur_4pct.jpg``: Gaussian blur, sigma = 4 % of the eye distance (IMAGE_BLURRY).
* ``obama_motion_blur_20pct.jpg``: a 30-degree motion streak of 20 % of the eye distance (IMAGE_BLURRY).
* ``obama_underexposed_3ev.jpg``: 3 stops less light, applied in linear sRGB (IMAGE_TOO_DARK).
* ``obama_painted_sunglasses.jpg``: dark ellipses painted over the eyes (SUNGLASSES, a warning).

They are written to a folder of your choice, not into ``sample_images/`` (tests of other parts
count the files there). Run::

    .venv/bin/python bench/make_derived.py [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _degrade as D  # noqa: E402

from preflight import measures as M  # noqa: E402
from preflight.face import FaceAnalyzer  # noqa: E402

SOURCE = ROOT / "sample_images" / "obama.jpg"


def save(folder: Path, name: str, rgb: np.ndarray, quality: int = 90) -> Path:
    path = folder / name
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    print(f"{path}: {rgb.shape[1]}x{rgb.shape[0]}, {path.stat().st_size} bytes")
    return path


def selfie_1080x1440(folder: Path) -> Path:
    """The benchmark input: a 1080x1440 (3:4 portrait) JPEG selfie."""
    folder.mkdir(parents=True, exist_ok=True)
    src = cv2.cvtColor(cv2.imread(str(SOURCE)), cv2.COLOR_BGR2RGB)
    h, w = src.shape[:2]
    s = 1440 / h
    big = cv2.resize(src, (round(w * s), 1440), interpolation=cv2.INTER_CUBIC)
    x0 = (big.shape[1] - 1080) // 2
    return save(folder, "obama_selfie_1080x1440.jpg", np.ascontiguousarray(big[:, x0 : x0 + 1080]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/preflight-derived"))
    out = ap.parse_args().out
    selfie_1080x1440(out)
    src = cv2.cvtColor(cv2.imread(str(SOURCE)), cv2.COLOR_BGR2RGB)

    with FaceAnalyzer() as analyzer:
        face = analyzer.detect(src)[0]
    ied = M.eye_distance(face.landmarks)
    save(out, "obama_gaussian_blur_4pct.jpg", D.gaussian(src, 0.04 * ied))
    save(out, "obama_motion_blur_20pct.jpg", D.motion(src, 0.20 * ied, 30.0))
    save(out, "obama_underexposed_3ev.jpg", D.exposure(src, -3.0))
    lenses = src.copy()
    for iris in (face.right_iris, face.left_iris):
        centre = (round(float(iris[0])), round(float(iris[1])))
        cv2.ellipse(lenses, centre, (round(0.42 * ied), round(0.3 * ied)), 0, 0, 360, (22, 24, 28), -1)
    y = round(float((face.right_iris[1] + face.left_iris[1]) / 2))
    cv2.line(lenses, (round(float(face.right_iris[0])), y), (round(float(face.left_iris[0])), y),
             (22, 24, 28), max(2, round(0.05 * ied)))
    save(out, "obama_painted_sunglasses.jpg", lenses)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
