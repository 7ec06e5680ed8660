"""Where the exposure rules' limits come from: a person's verdicts, and a learned rule as a yardstick.

Reads the rows that ``calibrate.py --save`` wrote and answers three questions about the levels whose
catch rate stays under 95 % (gamma 2.5, gamma 0.4, EV +2):

1. **Are they clearly degraded?** ``exposure_judgements.tsv`` holds blind verdicts on face crops of
   the untouched photos and of those three levels (``judge_sheets.py``). Printed: how many crops of
   each level a person calls too dark or too bright; how many of *those* the policy catches; how
   many crops called fine it flags; and how well the person agrees with themself on a repeat.
2. **Is the boundary the rule's fault or the measures'?** A logistic regression over every exposure
   measure of the face (contrast, chroma, mean, highlights, shadows, crushed and clipped shares,
   colourfulness), fitted on one fold of photos and tested on the other, with its threshold set for
   at most 2 % false rejects on the fitting fold's untouched photos. If it cannot beat the policy
   on the held-out fold, the information is not in these measures.
3. **What would the dark clause considered in docs/accuracy.md buy?** ``tone_gamma > 1.4`` on a face
   darker than mean luma 80, on top of the policy: per level, and on the crops judged too dark.

    .venv/bin/python bench/calibrate.py --save rows.json     # about 5.5 minutes
    .venv/bin/python bench/exposure_limits.py rows.json
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from calibrate import CLEAR_BRIGHT, CLEAR_DARK, fold

from preflight import codes as C

JUDGEMENTS = Path(__file__).resolve().parent / "exposure_judgements.tsv"
VERDICTS = ("ok", "too dark", "too bright")
MUST_PASS = ("orig", "warm light (R x1.3, B x0.7)", "tungsten (R x1.6, B x0.5)", "cool light (R x0.8, B x1.3)",
             "dark background (bg -3 EV)", "JPEG q50", "noise sd 6")
FEATURES = ("face_contrast_stops", "face_chroma_rg", "brightness", "face_highlight_luma", "face_shadow_luma",
            "underexposed_fraction", "overexposed_fraction", "colourfulness")
Row = dict[str, Any]


def read_judgements(path: Path = JUDGEMENTS) -> dict[tuple[str, str], tuple[str, str]]:
    """(image, level) -> (verdict, repeat verdict or '')."""
    with open(path, newline="") as fh:
        lines = [ln for ln in fh if not ln.startswith("#")]
    out = {}
    for r in csv.DictReader(lines, delimiter="\t"):
        if r["verdict"] not in VERDICTS or (r["repeat"] and r["repeat"] not in VERDICTS):
            raise ValueError(f"unknown verdict in {path}: {r}")
        out[(r["image"], r["level"])] = (r["verdict"], r["repeat"])
    return out


def _pct(n: int, d: int) -> str:
    return "   -  " if d == 0 else f"{100.0 * n / d:5.1f}%"


def _failed(r: Row, code: str) -> bool:
    """Rejected with ``code``, or no face at all (the photo fails either way)."""
    return r.get("face_count") == 0 or code in r["codes"]


def kappa(pairs: list[tuple[str, str]]) -> float:
    """Cohen's kappa: agreement beyond what the two label frequencies give by chance."""
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(first[v] * second[v] for v in VERDICTS) / (n * n)
    return (observed - chance) / (1.0 - chance)


def judged(rows: list[Row], verdicts: dict[tuple[str, str], tuple[str, str]]) -> None:
    by_key = {(r["image"], r["level"]): r for r in rows}
    missing = [k for k in verdicts if k not in by_key]
    if missing:
        raise SystemExit(f"{len(missing)} judged crops have no row (e.g. {missing[0]}): rows from another corpus?")
    levels = sorted({lv for _, lv in verdicts}, key=lambda lv: (lv != "orig", lv))
    print("\n## 1. a person's verdicts (exposure_judgements.tsv) against the policy")
    print(f"{'level':10} {'n':>4} {'ok':>5} {'dark':>5} {'bright':>6} | {'judged dark: caught':>20} "
          f"{'judged bright: caught':>22} | {'judged ok: flagged':>19}   [fold A | fold B caught]")
    for lv in levels:
        keys = [k for k in verdicts if k[1] == lv]
        count = Counter(verdicts[k][0] for k in keys)
        cells, folds = [], []
        for verdict, code in (("too dark", C.IMAGE_TOO_DARK), ("too bright", C.IMAGE_TOO_BRIGHT)):
            rs = [by_key[k] for k in keys if verdicts[k][0] == verdict]
            hit = sum(_failed(r, code) for r in rs)
            cells.append(f"{hit:3d}/{len(rs):<3d} {_pct(hit, len(rs))}")
            for f in ("A", "B"):
                rf = [r for r in rs if fold(r["image"]) == f]
                if rf:
                    folds.append(f"{verdict.split()[1]} {f} {_pct(sum(_failed(r, code) for r in rf), len(rf)).strip()}")
        ok = [by_key[k] for k in keys if verdicts[k][0] == "ok"]
        flagged = sum(C.IMAGE_TOO_DARK in r["codes"] or C.IMAGE_TOO_BRIGHT in r["codes"] for r in ok)
        print(f"{lv:10} {len(keys):4d} {count['ok']:5d} {count['too dark']:5d} {count['too bright']:6d} | "
              f"{cells[0]:>20} {cells[1]:>22} | {flagged:3d}/{len(ok):<3d} {_pct(flagged, len(ok))}   "
              f"[{'; '.join(folds)}]")
    bad = [(k, v) for k, (v, _) in verdicts.items() if v != "ok"]
    code = {"too dark": C.IMAGE_TOO_DARK, "too bright": C.IMAGE_TOO_BRIGHT}
    caught = sum(_failed(by_key[k], code[v]) for k, v in bad)
    print(f"all crops judged too dark or too bright: {caught}/{len(bad)} caught ({_pct(caught, len(bad)).strip()})")
    pairs = [(v, rep) for v, rep in verdicts.values() if rep]
    if pairs:
        same = sum(a == b for a, b in pairs)
        kept = {v: (sum(a == b == v for a, b in pairs), sum(a == v for a, _ in pairs)) for v in VERDICTS}
        print(f"repeat judgement of {len(pairs)} crops: same verdict {same}/{len(pairs)} "
              f"({_pct(same, len(pairs)).strip()}), Cohen's kappa {kappa(pairs):.2f}; kept on the second look: "
              + ", ".join(f"{v} {k}/{n}" for v, (k, n) in kept.items()))


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 0.1) -> Callable[[np.ndarray], np.ndarray]:
    """L2-regularised logistic regression by Newton's method on standardised features; returns the score."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9

    def design(v: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(v)), (v - mean) / scale])

    z = design(x)
    w = np.zeros(z.shape[1])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        hessian = z.T @ (z * (p * (1 - p))[:, None]) + ridge * np.eye(len(w))
        step = np.linalg.solve(hessian, z.T @ (p - y) + ridge * w)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return lambda v: design(v) @ w


def _features(rs: list[Row]) -> np.ndarray:
    return np.array([[float(r[f]) for f in FEATURES] for r in rs]).reshape(len(rs), len(FEATURES))


def _share(flags: np.ndarray) -> str:
    return _pct(int(flags.sum()), len(flags)).strip() if len(flags) else "-"


def learned(rows: list[Row]) -> None:
    usable = [r for r in rows if r.get("face_count") and all(r.get(f) is not None for f in FEATURES)]
    by_fold: dict[tuple[str, str], list[Row]] = {}
    for r in usable:
        by_fold.setdefault((r["level"], fold(r["image"])), []).append(r)
    print("\n## 2. a learned rule over all the face's exposure measures, fitted on one fold, tested on the other")
    print(f"   features: {', '.join(FEATURES)}; photos without colour are left out "
          f"({len(rows) - len(usable)} rows); threshold: 2 % false rejects on the fitting fold's untouched photos")
    for side, clear, code in (("dark", sorted(CLEAR_DARK), C.IMAGE_TOO_DARK),
                              ("bright", sorted(CLEAR_BRIGHT), C.IMAGE_TOO_BRIGHT)):
        for train, test in (("A", "B"), ("B", "A")):
            neg = [r for lv in MUST_PASS for r in by_fold.get((lv, train), [])]
            pos = [r for lv in clear for r in by_fold.get((lv, train), [])]
            score = fit_logistic(_features(neg + pos), np.r_[np.zeros(len(neg)), np.ones(len(pos))])
            threshold = float(np.quantile(score(_features(by_fold[("orig", train)])), 0.98))
            shown = [(lv, by_fold.get((lv, test), [])) for lv in (*MUST_PASS[:4], *clear)]
            for name in ("learned", "policy"):
                cells = []
                for lv, rs in shown:
                    flags = (score(_features(rs)) > threshold if name == "learned"
                             else np.array([code in r["codes"] for r in rs], dtype=bool))
                    cells.append(f"{lv.split(' (')[0]} {_share(flags)}")
                print(f"  {side:6} fit {train} test {test} {name:8} flags untouched/casts: {' '.join(cells[:4])} | "
                      f"caught: {' '.join(cells[4:])}")


def dark_clause(rows: list[Row], verdicts: dict[tuple[str, str], tuple[str, str]],
                tone: float = 1.4, mean: float = 80.0) -> None:
    """The policy's IMAGE_TOO_DARK, or ``tone_gamma > tone`` on a face darker than ``mean``."""
    def clause(r: Row) -> bool:
        t, b = r.get("tone_gamma"), r.get("brightness")
        return t is not None and b is not None and t > tone and b < mean

    print(f"\n## 3. the dark clause considered, not adopted: policy, or tone_gamma > {tone:g} and face mean < {mean:g}")
    levels = (*sorted(CLEAR_DARK), "gamma 3", "gamma 2", *MUST_PASS)
    for lv in levels:
        rs = [r for r in rows if r["level"] == lv]
        if not rs:
            continue
        policy = sum(_failed(r, C.IMAGE_TOO_DARK) for r in rs)
        more = sum(_failed(r, C.IMAGE_TOO_DARK) or clause(r) for r in rs)
        print(f"  {lv:30} n={len(rs):3d}  policy {_pct(policy, len(rs))}  with the clause {_pct(more, len(rs))}")
    by_key = {(r["image"], r["level"]): r for r in rows}
    dark = [by_key[k] for k, (v, _) in verdicts.items() if v == "too dark"]
    policy = sum(_failed(r, C.IMAGE_TOO_DARK) for r in dark)
    more = sum(_failed(r, C.IMAGE_TOO_DARK) or clause(r) for r in dark)
    print(f"  crops judged too dark: policy {policy}/{len(dark)}, with the clause {more}/{len(dark)}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    rows = json.loads(Path(args[0]).read_text())
    verdicts = read_judgements()
    judged(rows, verdicts)
    learned(rows)
    dark_clause(rows, verdicts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
