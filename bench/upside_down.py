"""Photos turned without an EXIF tag: how often the gate still passes them (a known limitation).

Every JPEG/PNG of ``shared/faces`` that passes the default policy upright (each content once) is
turned by 180, 90 clockwise and 90 counter-clockwise, saved as PNG *without* an orientation tag, and
checked again. For the turned photos where a face is still found, the roll of the fitted mesh shows
whether MediaPipe fitted it as an inverted face (roll near 180) or forced an upright mesh onto it.
A colour cue is printed as well: redness of the lips minus redness of the eye regions, by the mesh.

    .venv/bin/python bench/upside_down.py      # about 2 minutes
"""

from __future__ import annotations

import hashlib
import io
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _corpus import shared_faces

import preflight
from preflight import measures as M
from preflight.face import FaceAnalyzer

TURNS = {"r180": Image.Transpose.ROTATE_180, "cw90": Image.Transpose.ROTATE_270, "ccw90": Image.Transpose.ROTATE_90}
LIPS = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
EYES = ([33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7],
        [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249])


def redness(rgb: np.ndarray, polygons: list[np.ndarray]) -> float | None:
    mask = np.zeros(rgb.shape[:2], np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    pixels = rgb[mask.astype(bool)].astype(float)
    if not len(pixels):
        return None
    return float(np.mean((pixels[:, 0] - pixels[:, 1]) / (pixels.sum(axis=1) + 1)))


def lips_minus_eyes(rgb: np.ndarray, landmarks: np.ndarray) -> float | None:
    xy = landmarks[:, :2]
    lips, eyes = redness(rgb, [xy[LIPS]]), redness(rgb, [xy[e] for e in EYES])
    return None if lips is None or eyes is None else lips - eyes


def _mean_in(luma: np.ndarray, draw) -> float:  # type: ignore[no-untyped-def]
    mask = np.zeros(luma.shape, np.uint8)
    draw(mask)
    values = luma[mask.astype(bool)]
    return float(values.mean()) if len(values) else float("nan")


def shading_cue(rgb: np.ndarray, landmarks: np.ndarray) -> float:
    """(iris / eye region) x (brow / cheek) luminance, by the mesh: below 1 where the "eyes" have dark
    irises and a darker brow above than cheek below, as real eyes do; a mesh forced onto an inverted
    face puts its eyes on the mouth, with the chin "above"."""
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    xy = landmarks[:, :2].astype(np.float64)
    eyes_apart = float(np.linalg.norm(xy[M.RIGHT_IRIS_CENTRE] - xy[M.LEFT_IRIS_CENTRE]))
    angle = np.radians(M.roll_deg(landmarks))
    up = np.array([np.sin(angle), -np.cos(angle)])

    def disk(centre: np.ndarray, radius: float) -> float:
        point = (int(np.rint(centre[0])), int(np.rint(centre[1])))
        return _mean_in(luma, lambda m: cv2.circle(m, point, max(1, int(radius)), 1, -1))

    iris, shading = [], []
    for centre, eye in ((M.RIGHT_IRIS_CENTRE, EYES[1]), (M.LEFT_IRIS_CENTRE, EYES[0])):
        region = _mean_in(luma, lambda m, e=eye: cv2.fillPoly(m, [np.round(xy[e]).astype(np.int32)], 1))
        iris.append(disk(xy[centre], eyes_apart * 0.05) / max(1.0, region))
        shading.append(disk(xy[centre] + up * eyes_apart * 0.3, eyes_apart * 0.1)
                       / max(1.0, disk(xy[centre] - up * eyes_apart * 0.35, eyes_apart * 0.1)))
    return float(np.nanmean(iris) * np.nanmean(shading))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    root = shared_faces()
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    seen: set[str] = set()
    analyzer = FaceAnalyzer()
    cue: dict[str, list[float]] = {"upright": [], "turned, mesh forced upright": []}
    shading: dict[str, list[float]] = {"upright": [], "turned, mesh forced upright": []}
    counts: dict[str, dict[str, int]] = {name: {"pass": 0, "no face": 0, "ROLL_TOO_LARGE": 0, "other": 0,
                                                "mesh upright": 0} for name in TURNS}
    with preflight.Gate() as gate:
        passing = []
        for path in paths:
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            if gate.check(path).passed:
                passing.append(path)
        for path in passing:
            upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            rgb = np.asarray(upright)
            faces = analyzer.detect(rgb)
            if faces and (value := lips_minus_eyes(rgb, faces[0].landmarks)) is not None:
                cue["upright"].append(value)
            if faces:
                shading["upright"].append(shading_cue(rgb, faces[0].landmarks))
            for name, turn in TURNS.items():
                turned = upright.transpose(turn)
                report = gate.check(png(turned))
                row = counts[name]
                if report.passed:
                    row["pass"] += 1
                elif preflight.codes.FACE_NOT_FOUND in report.codes:
                    row["no face"] += 1
                elif preflight.codes.ROLL_TOO_LARGE in report.codes:
                    row["ROLL_TOO_LARGE"] += 1
                else:
                    row["other"] += 1
                faces = analyzer.detect(np.asarray(turned))
                if faces and abs(M.roll_deg(faces[0].landmarks)) < (90 if name == "r180" else 35):
                    row["mesh upright"] += 1
                    value = lips_minus_eyes(np.asarray(turned), faces[0].landmarks)
                    if name == "r180" and value is not None:
                        cue["turned, mesh forced upright"].append(value)
                    if name == "r180":
                        forced = shading_cue(np.asarray(turned), faces[0].landmarks)
                        shading["turned, mesh forced upright"].append(forced)
    print(f"{len(passing)} distinct photos pass upright; turned without a tag:")
    print(f"{'turn':6} " + " ".join(f"{k:>14}" for k in next(iter(counts.values()))))
    for name, row in counts.items():
        print(f"{name:6} " + " ".join(f"{v:14d}" for v in row.values()))
    print("shading cue (iris/eye x brow/cheek luminance): share above t")
    for t in (0.8, 0.9, 1.0):
        print(f"  t={t}: " + ", ".join(f"{name} {sum(v > t for v in values)}/{len(values)}"
                                      for name, values in shading.items()))
    print("lips minus eye redness (by the fitted mesh):")
    for name, values in cue.items():
        if values:
            print(f"  {name:28} n={len(values):3d} min {min(values):+.3f} median {statistics.median(values):+.3f}"
                  f" max {max(values):+.3f}")


if __name__ == "__main__":
    main()
