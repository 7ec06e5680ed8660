"""Every face of the corpus, groups included, measured as the main face of its own crop.

Why: the exposure rules' worst risk is a false IMAGE_TOO_DARK on a well-exposed, very dark-skinned face,
and the calibration set (single-face photos) has none darker than a low-key ``clapton-1.jpg``. This
looks for such faces everywhere in the corpus: each face with at least ``--min-eyes`` px between the
eyes is cropped (2.4 x its landmark extent), checked, and the darker ones are listed with their
exposure measures (``--sheet`` writes their crops on a contact sheet, for a person to look at).

    .venv/bin/python bench/corpus_faces.py [--below 110] [--sheet dark_faces.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _corpus

from preflight import pixels
from preflight.face import FaceAnalyzer
from preflight.policy import Policy

FIELDS = ("brightness", "tone_gamma", "face_highlight_luma", "face_contrast_stops", "face_chroma_rg")


def faces(min_eyes: float) -> list[tuple[dict[str, Any], np.ndarray]]:
    out = []
    with FaceAnalyzer(max_faces=20) as analyzer:
        for rel, path in _corpus.photos():
            try:
                rgb = _corpus.read_rgb(path)
            except Exception:  # a file the corpus reader cannot open is skipped
                continue
            for k, face in enumerate(analyzer.detect(rgb)):
                if float(np.linalg.norm(face.right_iris - face.left_iris)) < min_eyes:
                    continue
                x0, y0, x1, y1 = face.extent
                cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
                a, b = int(max(0, cx - 1.2 * side)), int(max(0, cy - 1.2 * side))
                c, d = int(min(rgb.shape[1], cx + 1.2 * side)), int(min(rgb.shape[0], cy + 1.2 * side))
                crop = np.ascontiguousarray(rgb[b:d, a:c])
                res = pixels.analyse(crop, Policy(), analyzer)
                info = {"image": rel, "face": k, "codes": sorted({i.code for i in res.issues})}
                info.update({f: res.fields.get(f) for f in FIELDS})
                out.append((info, crop))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--min-eyes", type=float, default=30.0, help="smallest eye distance in px (default 30)")
    ap.add_argument("--below", type=float, default=110.0, help="list faces darker than this mean luma")
    ap.add_argument("--sheet", type=Path, help="write the listed faces' crops here (PNG)")
    args = ap.parse_args(argv)
    found = faces(args.min_eyes)
    dark = sorted((f for f in found if f[0]["brightness"] is not None and f[0]["brightness"] < args.below),
                  key=lambda f: f[0]["brightness"])
    print(f"{len(found)} faces with >= {args.min_eyes:g} px between the eyes; {len(dark)} with a face mean "
          f"below {args.below:g}:")
    print(f"{'#':>3} {'mean':>5} {'tone':>5} {'high':>5}  image [face]  codes")
    for i, (info, _) in enumerate(dark):
        tone = "-" if info["tone_gamma"] is None else f"{info['tone_gamma']:.2f}"
        print(f"{i:3d} {info['brightness']:5.0f} {tone:>5} {info['face_highlight_luma']:5.0f}  "
              f"{info['image']} [{info['face']}]  {' '.join(info['codes']) or '-'}")
    if args.sheet and dark:
        cols, cell = 8, 160
        sheet = np.full((((len(dark) + cols - 1) // cols) * (cell + 20), cols * cell, 3), 255, np.uint8)
        for i, (info, crop) in enumerate(dark):
            y, x = (i // cols) * (cell + 20), (i % cols) * cell
            sheet[y : y + cell, x : x + cell] = cv2.resize(crop, (cell, cell), interpolation=cv2.INTER_AREA)
            cv2.putText(sheet, f"{i} mean {info['brightness']:.0f}", (x + 2, y + cell + 14),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.imwrite(str(args.sheet), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
