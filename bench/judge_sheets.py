"""Contact sheets for judging exposure by eye, blind to the level and to every measure.

A degradation *parameter* is not the same as a degraded *photo*: gamma 2.5 on a pale, high-key
portrait gives a face of ordinary brightness and contrast, and EV +2 on a photo taken a stop under
gives one a stop over. To know which degraded photos are *clearly* too dark or too bright, a person
looks at them. This script shuffles the face crops of the untouched photos and of the exposure levels
whose catch rate was in question (gamma 2.5, gamma 0.4, EV +2), all from the same crop box, numbers
them, and writes sheets of 40 plus a key; nothing on a sheet tells the level, the photo or a measure.
The verdicts are kept in ``bench/exposure_judgements.tsv`` and ``calibrate.py`` reports against them.

    .venv/bin/python bench/judge_sheets.py --out /tmp/judge      # sheet-01.png .. and key.tsv
    .venv/bin/python bench/judge_sheets.py --out /tmp/judge2 --repeat 80 --seed 2

``--repeat N`` draws N of the crops again under another shuffle, to measure how well the judge
agrees with themself (the noise floor of any catch rate measured against these verdicts).

Sheets stay out of the repository (the photos keep their own licences in ``shared/faces``).
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _degrade as D
from _corpus import calibration_set, read_rgb

from preflight.face import FaceAnalyzer

JUDGED_LEVELS = {
    "orig": lambda im: im,
    "gamma 2.5": lambda im: D.gamma(im, 2.5),
    "gamma 0.4": lambda im: D.gamma(im, 0.4),
    "EV +2": lambda im: D.exposure(im, 2.0),
}
TILE, COLS, ROWS = 150, 8, 5
SEED = 20261126


def _crop_box(landmarks: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A square 1.5x the landmark extent, centred on the face, clipped to the image."""
    pts = landmarks[:, :2]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    half = 0.75 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = shape[:2]
    return (max(0, int(cx - half)), max(0, int(cy - half)), min(w, int(cx + half)), min(h, int(cy + half)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=0, help="only N crops drawn at random, for a repeat judgement")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    analyzer = FaceAnalyzer(max_faces=1)
    tiles: list[tuple[str, str, np.ndarray]] = []
    for rel, path in calibration_set():
        rgb = read_rgb(path)
        faces = analyzer.detect(rgb)
        if not faces:
            continue
        x0, y0, x1, y1 = _crop_box(faces[0].landmarks, rgb.shape)
        for level, degrade in JUDGED_LEVELS.items():
            crop = np.ascontiguousarray(degrade(rgb[y0:y1, x0:x1]))
            tiles.append((rel, level, cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA)))
    random.Random(args.seed).shuffle(tiles)
    if args.repeat:
        tiles = tiles[:args.repeat]
    per_sheet = COLS * ROWS
    with open(args.out / "key.tsv", "w", newline="") as fh:
        key = csv.writer(fh, delimiter="\t")
        key.writerow(["sheet", "number", "image", "level"])
        for s in range(0, len(tiles), per_sheet):
            sheet_no = s // per_sheet + 1
            canvas = np.full((ROWS * TILE, COLS * TILE, 3), 128, np.uint8)
            for i, (rel, level, tile) in enumerate(tiles[s:s + per_sheet]):
                r, c = divmod(i, COLS)
                canvas[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = tile
                cv2.rectangle(canvas, (c * TILE, r * TILE), (c * TILE + 24, r * TILE + 14), (0, 0, 0), -1)
                cv2.putText(canvas, str(i + 1), (c * TILE + 2, r * TILE + 11), cv2.FONT_HERSHEY_SIMPLEX,
                            0.38, (255, 255, 255), 1)
                key.writerow([sheet_no, i + 1, rel, level])
            cv2.imwrite(str(args.out / f"sheet-{sheet_no:02d}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    print(f"{len(tiles)} crops on {(len(tiles) + per_sheet - 1) // per_sheet} sheets in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
