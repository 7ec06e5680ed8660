"""The calibration corpus: real photos in ``shared/faces`` (read in place, never copied into the repo).

Selection rule (fixed before any threshold was looked at): rows of ``MANIFEST.tsv`` with exactly one
visible face (a person's judgement), an iris distance of at least 60 px in the manifest's rough
MediaPipe column (enough pixels to degrade by a known fraction of the eye distance), not from a
source that is degraded, synthetic or not a photo, and each file content only once.

``SOFT_OR_BADLY_LIT`` lists the selected photos that a person, looking at face crops of all of
them at the same scale (eyes 64 px apart) *before* computing any measure, judged visibly blurred or
badly lit. Results are reported both with them ("all") and without them ("reference").
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def shared_faces() -> Path:
    """``../shared/faces`` next to the repository, or ``/work/shared/faces``."""
    for candidate in (HERE.parent.parent / "shared" / "faces", Path("/work/shared/faces")):
        if (candidate / "MANIFEST.tsv").is_file():
            return candidate
    raise SystemExit("shared/faces not found (expected ../shared/faces or /work/shared/faces)")


EXCLUDED_SOURCES = (
    "gh-CodeFormer/",      # restoration inputs: degraded on purpose
    "gh-GFPGAN/",          # old, degraded photos
    "/ai-",                # AI-generated
    "gh-glasses-detector/",  # 256x256 crops (used for the sunglasses score instead)
    "skimage/",            # no usable face
    "TestImages/5.jpg",    # a cartoon
)

SOFT_OR_BADLY_LIT = {
    "gh-mmpose/tests/data/lapa/13609937564_5.jpg": "visibly blurred",
    "gh-face_recognition/examples/alex-lacamoire.png": "soft and dark video still",
    "gh-face_recognition/examples/lin-manuel-miranda.png": "soft video still",
    "gh-vladmandic-human/samples/in/person-tasia.jpg": "sun flare across the face, soft",
    "gh-PRNet/TestImages/AFLW2000/image02545.jpg": "low-key lighting, face mostly in shadow",
    "gh-mmpose/tests/data/300w/indoor_029.png": "dark, face in shadow",
}


def manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "MANIFEST.tsv", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def photos(root: Path | None = None, keep: Callable[[dict[str, str]], bool] = lambda row: True
           ) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of the manifest's photos that ``keep`` accepts, in manifest order:
    not from an excluded source, and each file content only once."""
    root = root or shared_faces()
    seen: set[str] = set()
    out = []
    for row in manifest(root):
        rel = row["path"]
        if not keep(row) or any(s in rel for s in EXCLUDED_SOURCES):
            continue
        path = root / rel
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append((rel, path))
    return out


def _calibration_row(row: dict[str, str]) -> bool:
    if row["faces_visible_judgement"] != "1":
        return False
    try:
        return float(row["iris_dist_px_mp"]) >= 60
    except ValueError:
        return False


def calibration_set(root: Path | None = None) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of the selected photos, in manifest order."""
    return photos(root, _calibration_row)


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode like the gate does for a plain JPEG/PNG (OpenCV, then BGR -> RGB)."""
    bgr = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
