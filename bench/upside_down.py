"""Photos turned without an EXIF tag: does the gate say so (IMAGE_TURNED), and never on upright ones?

1. Every JPEG/PNG of ``shared/faces`` that passes the default policy upright (each content once) is
   turned by 180 (also at half and one and a half times the size: MediaPipe's forced fits change
   with the size), 90 clockwise and 90 counter-clockwise, saved as PNG *without* an orientation
   tag, and checked again: how many pass (the failure this bench exists for), are reported as
   turned, give no face, or fail on other codes. The same with ``turn_search=False`` shows what the
   turned search adds.
2. False alarms: the calibration photos (``_corpus.py``) upright, untouched and under the
   degradations of ``calibrate.py`` that change the eyes' shading most (exposure, tone curve,
   backlight, side light, blur, colour), and resized: how often IMAGE_TURNED is reported, and how
   often the turned search ran (its cost: one more landmarker run).
3. The cues behind the search (``measures.eye_shading``, ``measures.lip_redness``) on upright fits
   and on the upright meshes MediaPipe forces onto the turned photos.

    .venv/bin/python bench/upside_down.py      # about 6 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _corpus import calibration_set, read_rgb, shared_faces
from calibrate import fold, levels

import preflight
from preflight import codes as C
from preflight import measures as M
from preflight import pixels
from preflight.face import FaceAnalyzer
from preflight.policy import Policy


def _scaled(image: Image.Image, s: float) -> Image.Image:
    return image.resize((round(image.width * s), round(image.height * s)), Image.Resampling.LANCZOS)


TURNS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "r180": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "r180 x0.5": lambda im: _scaled(im, 0.5).transpose(Image.Transpose.ROTATE_180),
    "r180 x1.5": lambda im: _scaled(im, 1.5).transpose(Image.Transpose.ROTATE_180),
    "cw90": lambda im: im.transpose(Image.Transpose.ROTATE_270),
    "ccw90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
}
#: Upright, resized: false alarms at other sizes (the forced fits change with the size).
SIZES = {"orig x0.5": 0.5, "orig x1.5": 1.5}
UPRIGHT_LEVELS = ("orig", "EV -3", "EV -2", "EV +2", "gamma 2.5", "gamma 0.4", "backlit (face -2, bg +2 EV)",
                  "side light -2 EV", "gauss 4%", "motion 20%", "tungsten (R x1.6, B x0.5)", "desaturated")


class CountingAnalyzer(FaceAnalyzer):
    """Counts landmarker runs on the turned image (the turned search's cost)."""

    turned_runs = 0

    def _run(self, rgb: np.ndarray, *, tiles: bool) -> list[Any]:
        if not tiles and self.tile_search:
            CountingAnalyzer.turned_runs += 1
        return super()._run(rgb, tiles=tiles)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def outcome(report: preflight.Report) -> str:
    if report.passed:
        return "pass"
    for code in (C.IMAGE_TURNED, C.FACE_NOT_FOUND, C.ROLL_TOO_LARGE):
        if code in report.codes:
            return code
    return "other"


def turned_photos() -> None:
    root = shared_faces()
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    seen: set[str] = set()
    shading: dict[str, list[float]] = {"upright fit": [], "mesh forced upright on r180": []}
    redness: dict[str, list[float]] = {"upright fit": [], "mesh forced upright on r180": []}
    columns = ("pass", C.IMAGE_TURNED, C.FACE_NOT_FOUND, C.ROLL_TOO_LARGE, "other")
    counts = {(search, name): dict.fromkeys(columns, 0) for search in (True, False) for name in TURNS}
    with preflight.Gate() as gate, preflight.Gate() as gate_plain:
        plain = gate_plain.analyzer
        plain.turn_search = False
        passing = []
        for path in paths:
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                if gate.check(path).passed:
                    passing.append(path)
        for path in passing:
            upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            rgb = np.asarray(upright)
            if faces := plain.detect(rgb):
                _cues(rgb, faces[0].landmarks, "upright fit", shading, redness)
            for name, turn in TURNS.items():
                turned = turn(upright)
                data = png(turned)
                counts[True, name][outcome(gate.check(data))] += 1
                counts[False, name][outcome(gate_plain.check(data))] += 1
                faces = plain.detect(np.asarray(turned)) if name.startswith("r180") else []
                if faces and abs(M.roll_deg(faces[0].landmarks)) < 90:
                    _cues(np.asarray(turned), faces[0].landmarks, "mesh forced upright on r180", shading, redness)
    print(f"## 1. {len(passing)} distinct corpus photos pass upright; turned without a tag, checked again")
    print(f"{'turn':10} {'turn_search':>11} " + " ".join(f"{k:>15}" for k in columns))
    for (search, name), row in counts.items():
        print(f"{name:10} {'on' if search else 'off':>11} " + " ".join(f"{v:15d}" for v in row.values()))
    print("\n## 3. the cues (quantiles 5/50/95 %, n)")
    for label, values in (("eye_shading", shading), ("lip_redness", redness)):
        for group, v in values.items():
            q = np.percentile(v, [5, 50, 95]) if v else [float("nan")] * 3
            print(f"  {label:12} {group:30} {q[0]:+.3f} {q[1]:+.3f} {q[2]:+.3f}  n={len(v)}")


def _cues(rgb: np.ndarray, landmarks: np.ndarray, group: str,
          shading: dict[str, list[float]], redness: dict[str, list[float]]) -> None:
    if (value := M.eye_shading(rgb, landmarks)) is not None:
        shading[group].append(value)
    if (value := M.lip_redness(rgb, landmarks)) is not None:
        redness[group].append(value)


_ANALYZER: CountingAnalyzer | None = None


def _init() -> None:
    global _ANALYZER
    _ANALYZER = CountingAnalyzer(max_faces=2)


def _upright(task: tuple[int, str, str]) -> list[tuple[str, str, bool, bool, int]]:
    """(image, level, IMAGE_TURNED?, face found?, turned runs) for each upright level."""
    index, rel, path = task
    assert _ANALYZER is not None
    rgb = read_rgb(path)
    faces = _ANALYZER.detect(rgb)
    if not faces:
        return []
    out = []
    variants = [(name, lambda fn=fn: fn(rgb, faces[0], index)) for name, _, fn in levels() if name in UPRIGHT_LEVELS]
    variants += [(name, lambda s=s: cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1
                                               else cv2.INTER_CUBIC)) for name, s in SIZES.items()]
    for name, make in variants:
        image = np.ascontiguousarray(make())
        before = CountingAnalyzer.turned_runs
        result = pixels.analyse(image, Policy(), _ANALYZER)
        codes = {i.code for i in result.issues}
        out.append((rel, name, C.IMAGE_TURNED in codes, C.FACE_NOT_FOUND not in codes,
                    CountingAnalyzer.turned_runs - before))
    return out


def false_alarms() -> None:
    tasks = [(i, rel, str(path)) for i, (rel, path) in enumerate(calibration_set())]
    with ProcessPoolExecutor(max_workers=2, initializer=_init) as pool:
        rows = [row for rows in pool.map(_upright, tasks) for row in rows]
    print(f"\n## 2. upright calibration photos ({len(tasks)}): IMAGE_TURNED reported (false), turned search run")
    print(f"{'level':30} {'n':>4} {'faces':>5} {'TURNED A':>8} {'TURNED B':>8} {'searched':>8}")
    for name in (*UPRIGHT_LEVELS, *SIZES):
        rs = [r for r in rows if r[1] == name]
        flagged = {f: sum(r[2] for r in rs if fold(r[0]) == f) for f in "AB"}
        searched = sum(r[4] > 0 for r in rs)
        print(f"{name:30} {len(rs):4d} {sum(r[3] for r in rs):5d} {flagged['A']:8d} {flagged['B']:8d} "
              f"{100 * searched / max(1, len(rs)):7.1f}%")
        for r in rs:
            if r[2]:
                print(f"    false IMAGE_TURNED: {r[0]}")


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    turned_photos()
    false_alarms()


if __name__ == "__main__":
    main()
