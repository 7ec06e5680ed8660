"""Calibrate the blur, exposure and lighting thresholds on real photos and known degradations.

For every photo of the calibration set (see ``_corpus.py``) and every degradation level, run the
real pipeline (face detection on the *degraded* image, then :func:`preflight.pixels.analyse`) and
print, per level, the share of images each rule flags. Then sweep the thresholds: false rejects
on the untouched photos against the catch rate on the clearly degraded ones.

Run by hand (about 5-10 minutes on 2 cores)::

    .venv/bin/python bench/calibrate.py [--jobs 2] [--limit N] [--save results.json]

Held-out check: the photos are split in two folds by a hash of their path (``fold``). Thresholds
are chosen by looking at fold A only; fold B is reported beside it to show how well they carry
over to photos they were not chosen on (with ~77 photos per fold, 1 photo is 1.3 %).

"Clearly degraded" was fixed before looking at the results: Gaussian blur sigma >= 4 % of the eye
distance, motion blur >= 20 % of the eye distance (random direction), exposure -3 EV or darker or
+2 EV or brighter, gamma 2.5 (dark) or 0.4 (washed out), a backlit face (face -3 EV, background
+2 EV). Smaller degradations are reported to show where the boundary lies, and three stronger ones (EV +2.5,
gamma 3 and 0.33, added later) to show where the exposure rules reach 95 %. Colour casts of the light
(warm, tungsten, cool; added with the tone rules) are nuisances that must pass.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _degrade as D
from _corpus import SOFT_OR_BADLY_LIT, calibration_set, read_rgb

from preflight import codes as C
from preflight import measures as M
from preflight import pixels
from preflight.face import Face, FaceAnalyzer
from preflight.policy import Policy

Level = tuple[str, str, Callable[[np.ndarray, Face, int], np.ndarray]]


def _ied(face: Face) -> float:
    return M.eye_distance(face.landmarks)


def _angle(seed: int) -> float:
    return float(np.random.default_rng(seed).uniform(0.0, 180.0))


def _outline(face: Face) -> np.ndarray:
    return face.landmarks[list(M.FACE_OVAL), :2]


def levels() -> list[Level]:
    out: list[Level] = [("orig", "untouched", lambda im, f, s: im)]
    for k in (0.01, 0.02, 0.03, 0.04, 0.06):
        out.append((f"gauss {k:.0%}", "blur", lambda im, f, s, k=k: D.gaussian(im, k * _ied(f))))
    for k in (0.05, 0.10, 0.15, 0.20, 0.30):
        out.append((f"motion {k:.0%}", "blur", lambda im, f, s, k=k: D.motion(im, k * _ied(f), _angle(s))))
    for ev in (-4.0, -3.0, -2.5, -2.0, -1.5, -1.0, 1.0, 1.5, 2.0, 2.5, 3.0):
        out.append((f"EV {ev:+g}", "exposure", lambda im, f, s, ev=ev: D.exposure(im, ev)))
    for g in (3.0, 2.5, 2.0, 1.5, 0.67, 0.5, 0.4, 0.33):
        out.append((f"gamma {g:g}", "exposure", lambda im, f, s, g=g: D.gamma(im, g)))
    out.append(("backlit (face -3, bg +2 EV)", "exposure",
                lambda im, f, s: D.relight(im, D.face_mask(im.shape, _outline(f), 0.1 * _ied(f)), -3.0, 2.0)))
    out.append(("backlit (face -2, bg +2 EV)", "exposure",
                lambda im, f, s: D.relight(im, D.face_mask(im.shape, _outline(f), 0.1 * _ied(f)), -2.0, 2.0)))
    out.append(("dark background (bg -3 EV)", "exposure",
                lambda im, f, s: D.relight(im, D.face_mask(im.shape, _outline(f), 0.1 * _ied(f)), 0.0, -3.0)))
    for ev in (-1.0, -2.0, -3.0):
        out.append((f"side light {ev:+g} EV", "lighting",
                    lambda im, f, s, ev=ev: D.side_light(im, float(f.landmarks[M.NOSE_BRIDGE, 0]),
                                                         0.5 * _ied(f), ev)))
    out.append(("desaturated", "colour", lambda im, f, s: D.desaturate(im)))
    out.append(("warm light (R x1.3, B x0.7)", "nuisance", lambda im, f, s: D.white_balance(im, 1.3, 0.7)))
    out.append(("tungsten (R x1.6, B x0.5)", "nuisance", lambda im, f, s: D.white_balance(im, 1.6, 0.5)))
    out.append(("cool light (R x0.8, B x1.3)", "nuisance", lambda im, f, s: D.white_balance(im, 0.8, 1.3)))
    out.append(("JPEG q50", "nuisance", lambda im, f, s: D.jpeg(im, 50)))
    out.append(("noise sd 6", "nuisance", lambda im, f, s: np.clip(
        im + np.random.default_rng(s).normal(0, 6, im.shape), 0, 255).astype(np.uint8)))
    return out


CLEAR_BLUR = {"gauss 6%", "gauss 4%", "motion 20%", "motion 30%"}
CLEAR_DARK = {"EV -4", "EV -3", "gamma 2.5", "backlit (face -3, bg +2 EV)"}
CLEAR_BRIGHT = {"EV +2", "EV +3", "gamma 0.4"}

_ANALYZER: FaceAnalyzer | None = None
FIELDS = ("face_count", "sharpness", "brightness", "underexposed_fraction", "overexposed_fraction",
          "face_highlight_luma", "face_shadow_luma", "lighting_asymmetry", "colourfulness", "eye_distance_px",
          "sunglasses_score", "left_eye_closed", "right_eye_closed", "face_contrast_stops", "face_chroma_rg",
          "tone_gamma")


def fold(rel: str) -> str:
    """'A' (thresholds are chosen here) or 'B' (held out), by a hash of the photo's path."""
    return "A" if int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 2 == 0 else "B"


def _init() -> None:
    global _ANALYZER
    _ANALYZER = FaceAnalyzer(max_faces=2)


def _run(task: tuple[int, str, str]) -> list[dict[str, Any]]:
    index, rel, path = task
    assert _ANALYZER is not None
    policy = Policy()
    rgb = read_rgb(path)
    faces = _ANALYZER.detect(rgb)
    rows = []
    if not faces:
        return [{"image": rel, "level": "orig", "family": "untouched", "face_count": 0, "codes": ["FACE_NOT_FOUND"]}]
    face = faces[0]
    for name, family, fn in levels():
        img = np.ascontiguousarray(fn(rgb, face, index))
        res = pixels.analyse(img, policy, _ANALYZER)
        row = {"image": rel, "level": name, "family": family, "codes": sorted({i.code for i in res.issues})}
        row.update({k: res.fields.get(k) for k in FIELDS})
        rows.append(row)
    return rows


def _pct(n: int, d: int) -> str:
    return "   -  " if d == 0 else f"{100.0 * n / d:5.1f}%"


def _med(values: list[float | None]) -> str:
    v = [x for x in values if x is not None]
    return "    -" if not v else f"{float(np.median(v)):7.3f}"


def report(rows: list[dict[str, Any]], policy: Policy) -> None:
    names = [name for name, _, _ in levels()]
    by_level: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in rows:
        by_level.setdefault(r["level"], []).append(r)
    ref = {r["image"] for r in rows if r["image"] not in SOFT_OR_BADLY_LIT}
    print(f"\nimages: {len({r['image'] for r in rows})} (reference, without the {len(SOFT_OR_BADLY_LIT)} "
          f"judged soft or badly lit: {len(ref)})")
    keys = ("min_sharpness", "min_brightness", "min_face_highlight_luma", "max_underexposed_fraction",
            "max_brightness", "max_face_shadow_luma", "max_overexposed_fraction", "max_face_tone_gamma",
            "min_face_tone_gamma", "max_lighting_asymmetry")
    print("policy: " + " ".join(f"{k}={getattr(policy, k)}" for k in keys))
    hdr = (f"{'level':30} {'n':>4} {'no face':>7} {'BLURRY':>7} {'DARK':>7} {'BRIGHT':>7} {'UNEVEN':>7} "
           f"{'GRAY':>7} | {'sharp':>7} {'bright':>7} {'under':>7} {'over':>7} {'asym':>7} {'tone':>7}")
    for subset, keep in (("all images", lambda r: True), ("reference images", lambda r: r["image"] in ref)):
        print(f"\n## share flagged per level ({subset}); medians of the measures")
        print(hdr)
        for name in names:
            rs = [r for r in by_level.get(name, []) if keep(r)]
            n = len(rs)

            def share(code: str, rs: list[dict[str, Any]] = rs, n: int = n) -> str:
                return _pct(sum(code in r["codes"] for r in rs), n)

            print(f"{name:30} {n:4d} {share(C.FACE_NOT_FOUND):>7} {share(C.IMAGE_BLURRY):>7} "
                  f"{share(C.IMAGE_TOO_DARK):>7} {share(C.IMAGE_TOO_BRIGHT):>7} {share(C.UNEVEN_LIGHTING):>7} "
                  f"{share(C.GRAYSCALE_IMAGE):>7} | {_med([r.get('sharpness') for r in rs])} "
                  f"{_med([r.get('brightness') for r in rs])} {_med([r.get('underexposed_fraction') for r in rs])} "
                  f"{_med([r.get('overexposed_fraction') for r in rs])} "
                  f"{_med([r.get('lighting_asymmetry') for r in rs])} {_med([r.get('tone_gamma') for r in rs])}")
    _sweeps(by_level, ref, policy)


def _caught(rs: list[dict[str, Any]], test: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
    """Rejected by the rule, or no face found at all (the image fails either way)."""
    return sum(r.get("face_count") == 0 or test(r) for r in rs), len(rs)


def _sweeps(by_level: dict[str, list[dict[str, Any]]], ref: set[str], policy: Policy) -> None:
    orig_all = by_level["orig"]
    orig_ref = [r for r in orig_all if r["image"] in ref]

    def line(label: str, test: Callable[[dict[str, Any]], bool], clear: set[str], mild: list[str]) -> None:
        fr_all = sum(test(r) for r in orig_all if r.get("face_count"))
        fr_ref = sum(test(r) for r in orig_ref if r.get("face_count"))
        folds = []
        for f in ("A", "B"):
            orig_f = [r for r in orig_all if fold(r["image"]) == f]
            fr_f = sum(test(r) for r in orig_f if r.get("face_count"))
            worst_f = min(_caught([r for r in by_level[lv] if fold(r["image"]) == f], test)[0]
                          / max(1, sum(fold(r["image"]) == f for r in by_level[lv])) for lv in clear)
            folds.append(f"{f}: FR {_pct(fr_f, len(orig_f))} worst {100 * worst_f:5.1f}%")
        clear_rows = [r for n in clear for r in by_level[n]]
        c, n = _caught(clear_rows, test)
        worst = min((_caught(by_level[lv], test)[0] / max(1, len(by_level[lv])), lv) for lv in clear)
        mild_txt = " ".join(f"{lv}:{_pct(*_caught(by_level[lv], test)).strip()}" for lv in mild)
        print(f"{label:34} FR all {_pct(fr_all, len(orig_all))}  FR ref {_pct(fr_ref, len(orig_ref))}  "
              f"caught {_pct(c, n)} (worst level {worst[1]}: {100 * worst[0]:.1f}%)  [{'; '.join(folds)}]  "
              f"| {mild_txt}")

    print("\n## sweep: min_sharpness (IMAGE_BLURRY when sharpness < t)")
    for t in (0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13):
        line(f"t={t:.2f}", lambda r, t=t: r.get("sharpness") is not None and r["sharpness"] < t,
             CLEAR_BLUR, ["gauss 2%", "gauss 3%", "motion 10%", "motion 15%"])

    print("\n## sweep: too dark (face_highlight_luma < h, or brightness < b; the policy adds the crushed share)")
    for h in (100.0, 110.0, 120.0, 130.0):
        for b in (40.0, 50.0, 60.0):
            line(f"h={h:g} b={b:g}",
                 lambda r, h=h, b=b: r.get("brightness") is not None
                 and (r["face_highlight_luma"] < h or r["brightness"] < b),
                 CLEAR_DARK, ["EV -2", "EV -2.5", "gamma 2", "backlit (face -2, bg +2 EV)",
                              "dark background (bg -3 EV)"])

    print("\n## sweep: too bright (overexposed_fraction > o, or face_shadow_luma > s, or brightness > 210)")
    for o in (0.02, 0.05, 0.1, 0.25):
        for sh in (120.0, 140.0, 160.0):
            line(f"o={o:g} s={sh:g}",
                 lambda r, o=o, sh=sh: r.get("brightness") is not None
                 and (r["overexposed_fraction"] > o or r["face_shadow_luma"] > sh or r["brightness"] > 210),
                 CLEAR_BRIGHT, ["EV +1", "EV +1.5", "gamma 0.5", "gamma 0.67"])

    p = policy
    split = pixels.TONE_SPLIT_LUMA

    def luma_dark(r: dict[str, Any]) -> bool:
        """The policy's luma rules for IMAGE_TOO_DARK (as in ``pixels._exposure_rules``)."""
        return bool(r["face_highlight_luma"] < p.min_face_highlight_luma or r["brightness"] < p.min_brightness
                    or r["underexposed_fraction"] > p.max_underexposed_fraction)

    def luma_bright(r: dict[str, Any]) -> bool:
        return bool(r["overexposed_fraction"] > p.max_overexposed_fraction
                    or r["face_shadow_luma"] > p.max_face_shadow_luma or r["brightness"] > p.max_brightness)

    def too_dark(r: dict[str, Any], g: float, tone: float | None) -> bool:
        return r.get("brightness") is not None and (
            luma_dark(r) or (g > 0 and tone is not None and tone > g and r["brightness"] < split))

    def too_bright(r: dict[str, Any], g: float, tone: float | None) -> bool:
        return r.get("brightness") is not None and (
            luma_bright(r) or (g > 0 and tone is not None and tone < g and r["brightness"] > split))

    def toned(r: dict[str, Any]) -> bool:
        return r.get("brightness") is not None and r.get("tone_gamma") is not None

    print("\n## sweep: too dark by tone curve (the luma rules above, or tone_gamma > g on a face darker than "
          f"{split:g})")
    for g in (0.0, 1.5, 1.6, 1.7, 1.8, 2.0):
        line("luma rules only" if g == 0 else f"g={g:g}", lambda r, g=g: too_dark(r, g, r.get("tone_gamma")),
             CLEAR_DARK, ["EV -2", "gamma 2", "gamma 3", "dark background (bg -3 EV)", "EV +1",
                          "warm light (R x1.3, B x0.7)", "tungsten (R x1.6, B x0.5)"])

    print("\n## sweep: too bright by tone curve (the luma rules above, or tone_gamma < g on a face brighter than "
          f"{split:g})")
    for g in (0.0, 0.5, 0.55, 0.6, 0.65, 0.7):
        line("luma rules only" if g == 0 else f"g={g:g}", lambda r, g=g: too_bright(r, g, r.get("tone_gamma")),
             CLEAR_BRIGHT, ["EV +1", "EV +1.5", "gamma 0.5", "gamma 0.33", "EV -1", "cool light (R x0.8, B x1.3)"])

    print("\n## sweep: weight of the contrast in tone_gamma (recomputed from the rows' contrast and chroma)")
    print("   w  dark>g bright<g | untouched  warm  tungsten  cool | gamma 2.5  gamma 3  gamma 0.4  gamma 0.33")
    casts = ("warm light (R x1.3, B x0.7)", "tungsten (R x1.6, B x0.5)", "cool light (R x0.8, B x1.3)")

    def reweighted(r: dict[str, Any], w: float) -> float | None:
        if r.get("face_chroma_rg") is None or r.get("face_contrast_stops") is None:
            return None
        return M.tone_gamma(r["face_contrast_stops"], r["face_chroma_rg"], w)

    def flagged(level: str, test: Callable[[dict[str, Any]], bool]) -> str:
        rs = by_level.get(level, [])
        return _pct(sum(test(r) for r in rs), len(rs))

    for w in (0.5, 0.6, 0.7, 0.8):
        for g_dark, g_bright in ((1.6, 0.6), (1.7, 0.55), (1.8, 0.5)):
            def dark(r: dict[str, Any], w: float = w, g: float = g_dark) -> bool:
                return too_dark(r, g, reweighted(r, w))

            def bright(r: dict[str, Any], w: float = w, g: float = g_bright) -> bool:
                return too_bright(r, g, reweighted(r, w))

            def either(r: dict[str, Any], dark: Callable[[dict[str, Any]], bool] = dark,
                       bright: Callable[[dict[str, Any]], bool] = bright) -> bool:
                return dark(r) or bright(r)

            caught = [_pct(*_caught(by_level.get(lv, []), t)) for lv, t in
                      (("gamma 2.5", dark), ("gamma 3", dark), ("gamma 0.4", bright), ("gamma 0.33", bright))]
            print(f"  {w:.1f}  {g_dark:5.2f}  {g_bright:6.2f}  | {flagged('orig', either):>8} "
                  + " ".join(f"{flagged(c, either):>7}" for c in casts) + " | " + "  ".join(f"{c:>8}" for c in caught))

    print("\n## tone_gamma of untouched photos nearest the limits (skin tone is the main cause; fold in [])")
    dark_side = [r for r in orig_all if toned(r) and r["brightness"] < split]
    bright_side = [r for r in orig_all if toned(r) and r["brightness"] > split]
    for r in sorted(dark_side, key=lambda r: -r["tone_gamma"])[:8]:
        print(f"  high {r['tone_gamma']:.3f} [{fold(r['image'])}] brightness {r['brightness']:5.1f} "
              f"contrast {r['face_contrast_stops']:.2f} chroma {r['face_chroma_rg']:.2f}  {r['image']}")
    for r in sorted(bright_side, key=lambda r: r["tone_gamma"])[:5]:
        print(f"  low  {r['tone_gamma']:.3f} [{fold(r['image'])}] brightness {r['brightness']:5.1f} "
              f"contrast {r['face_contrast_stops']:.2f} chroma {r['face_chroma_rg']:.2f}  {r['image']}")
    grey = sum(r.get("brightness") is not None and r.get("tone_gamma") is None for r in orig_all)
    print(f"  untouched photos without colour (no tone_gamma, luma rules only): {grey}")

    print("\n## clearly degraded photos the policy misses (the original's face brightness and highlights)")
    orig_by = {r["image"]: r for r in orig_all}
    for lv, code in (("gamma 2.5", C.IMAGE_TOO_DARK), ("EV +2", C.IMAGE_TOO_BRIGHT), ("gamma 0.4", C.IMAGE_TOO_BRIGHT)):
        missed = [r for r in by_level[lv] if r.get("face_count") and code not in r["codes"]]
        print(f"  {lv}: {len(missed)} missed")
        for r in missed:
            o = orig_by.get(r["image"], {})
            tg = "  -  " if r.get("tone_gamma") is None else f"{r['tone_gamma']:.2f}"
            print(f"    now brightness {r['brightness']:5.1f} tone {tg} | original brightness "
                  f"{o.get('brightness') or 0:5.1f} highlights {o.get('face_highlight_luma') or 0:5.1f}  {r['image']}")

    print("\n## sweep: uneven lighting (lighting_asymmetry > a)")
    for a in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55):
        line(f"a={a:g}", lambda r, a=a: r.get("lighting_asymmetry") is not None and r["lighting_asymmetry"] > a,
             {"side light -3 EV"}, ["side light -1 EV", "side light -2 EV"])

    print("\n## lowest sharpness among untouched photos")
    for r in sorted((r for r in orig_all if r.get("sharpness") is not None), key=lambda r: r["sharpness"])[:8]:
        tag = " (judged soft/badly lit)" if r["image"] in SOFT_OR_BADLY_LIT else ""
        print(f"  {r['sharpness']:.4f}  {r['image']}{tag}")
    print("\n## darkest / brightest untouched faces")
    good = [r for r in orig_all if r.get("brightness") is not None]
    for r in sorted(good, key=lambda r: r["brightness"])[:5] + sorted(good, key=lambda r: -r["brightness"])[:3]:
        print(f"  brightness {r['brightness']:6.1f} highlights {r['face_highlight_luma']:5.0f} shadows "
              f"{r['face_shadow_luma']:5.0f} under {r['underexposed_fraction']:.3f} "
              f"over {r['overexposed_fraction']:.3f}  {r['image']}")


SUNGLASSES = {  # path under shared/faces: what a person sees
    "gh-glasses-detector/assets/sunglasses.jpg": "sunglasses",
    "gh-glasses-detector/data/demo/0.jpg": "sunglasses",
    "gh-glasses-detector/data/demo/3.jpg": "sunglasses",
    "gh-PRNet/TestImages/2.jpg": "sunglasses",
    "gh-glasses-detector/assets/eyeglasses.jpg": "eyeglasses",
    "gh-glasses-detector/data/demo/1.jpg": "eyeglasses",
    "gh-glasses-detector/data/demo/4.jpg": "eyeglasses",
    "gh-glasses-detector/data/demo/5.jpg": "eyeglasses",
    "gh-glasses-detector/assets/no_glasses.jpg": "none",
    "gh-glasses-detector/data/demo/2.jpg": "none",
}
CLOSED_EYES = {  # judged by eye on the contact sheet
    "gh-vladmandic-human/samples/in/stock-emotions-b-1.jpg": "both eyes squeezed shut",
    "gh-vladmandic-human/samples/in/stock-emotions-b-4.jpg": "both eyes closed (grimace)",
    "gh-vladmandic-human/samples/in/stock-emotions-b-8.jpg": "wink: the subject's right eye closed",
}


def extras(policy: Policy) -> None:
    """Sunglasses score on eyewear photos, eye closure on closed-eye photos and on all the others."""
    from _corpus import shared_faces

    root = shared_faces()
    with FaceAnalyzer() as analyzer:
        print(f"\n## sunglasses score (SUNGLASSES when > {policy.max_sunglasses_score:g})")
        for rel, label in SUNGLASSES.items():
            res = pixels.analyse(read_rgb(root / rel), policy, analyzer)
            score = res.fields.get("sunglasses_score")
            flagged = C.SUNGLASSES in {i.code for i in res.issues}
            shown = "no face" if score is None else f"{score:.3f}"
            print(f"  {label:11} {shown:>8} {'FLAGGED' if flagged else '':8} {rel}")
        print(f"\n## eye closure (blendshapes; EYES_CLOSED when either eye > {policy.max_eye_closed_score:g})")
        for rel, label in CLOSED_EYES.items():
            faces = analyzer.detect(read_rgb(root / rel))
            left, right = M.eye_closed_scores(faces[0].blendshapes)
            geo_left, geo_right = M.eye_openness(faces[0].landmarks)
            print(f"  left {left:.2f} right {right:.2f} (eyelid gap/width left {geo_left:.2f} right "
                  f"{geo_right:.2f})  {label}: {rel}")
        scores, sun = [], []
        for rel, path in calibration_set(root):
            if rel in CLOSED_EYES:
                continue
            res = pixels.analyse(read_rgb(path), policy, analyzer)
            vals = [v for v in (res.fields.get("left_eye_closed"), res.fields.get("right_eye_closed")) if v is not None]
            if vals:
                scores.append((max(vals), rel))
            if res.fields.get("sunglasses_score") is not None:
                sun.append((res.fields["sunglasses_score"], rel))
        values = np.array([v for v, _ in scores])
        print(f"  other calibration photos (eyes open, n={len(values)}): max-eye closure median "
              f"{np.median(values):.2f}, p95 {np.percentile(values, 95):.2f}, max {values.max():.2f}; "
              f"flagged {np.mean(values > policy.max_eye_closed_score):.1%}")
        for v, rel in sorted(scores, reverse=True)[:4]:
            print(f"    {v:.2f}  {rel}")
        sv = np.array([v for v, _ in sun])
        print(f"  sunglasses score on the calibration photos (none wear sunglasses, n={len(sv)}): median "
              f"{np.median(sv):.2f}, p98 {np.percentile(sv, 98):.2f}, max {sv.max():.2f}; "
              f"flagged {np.mean(sv > policy.max_sunglasses_score):.1%}")
        for v, rel in sorted(sun, reverse=True)[:3]:
            print(f"    {v:.2f}  {rel}")


def sheet(out: Path) -> None:
    """A contact sheet of public-domain samples at the exposure boundary, labelled with the verdict."""
    import cv2

    import preflight

    samples = Path(__file__).resolve().parent.parent / "sample_images"
    panels = [("biden.jpg", "as taken", lambda im: im), ("biden.jpg", "+2 EV", lambda im: D.exposure(im, 2.0)),
              ("obama2.jpg", "as taken", lambda im: im), ("obama.jpg", "gamma 2.5", lambda im: D.gamma(im, 2.5)),
              ("obama.jpg", "gamma 0.4", lambda im: D.gamma(im, 0.4))]
    tiles = []
    with preflight.Gate() as gate:
        for name, label, fn in panels:
            rgb = fn(read_rgb(samples / name))
            report = gate.check(np.ascontiguousarray(rgb))
            m = report.measurements
            x, y, w, h = m.face_box or (0, 0, rgb.shape[1], rgb.shape[0])
            side = int(1.3 * max(w, h))
            cx, cy = x + w // 2, y + h // 2
            x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
            tile = cv2.resize(np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side]), (260, 260),
                              interpolation=cv2.INTER_AREA)
            codes = {c for c in report.codes if c in (C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT)}
            verdict = ", ".join(sorted(codes)) or "passes"
            caption = np.full((54, 260, 3), 255, np.uint8)
            for i, text in enumerate((f"{name} {label}", f"tone {m.tone_gamma:.2f}  mean {m.brightness:.0f}", verdict)):
                cv2.putText(caption, text, (4, 15 + 17 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(np.vstack([tile, caption]))
    cv2.imwrite(str(out), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos (for a quick look)")
    ap.add_argument("--save", type=Path, help="write the raw rows as JSON")
    ap.add_argument("--load", type=Path, help="re-print the tables from rows saved with --save")
    ap.add_argument("--extras", action="store_true", help="only the sunglasses and closed-eye tables")
    ap.add_argument("--sheet", type=Path, help="only write the exposure contact sheet (public-domain samples)")
    args = ap.parse_args(argv)
    policy = Policy()
    if args.sheet:
        sheet(args.sheet)
        return 0
    if args.extras:
        extras(policy)
        return 0
    if args.load:
        rows = json.loads(args.load.read_text())
        report(rows, policy)
        return 0
    photos = calibration_set()
    if args.limit:
        photos = photos[: args.limit]
    tasks = [(i, rel, str(path)) for i, (rel, path) in enumerate(photos)]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init) as pool:
        for chunk in pool.map(_run, tasks, chunksize=1):
            rows.extend(chunk)
    print(f"{len(photos)} photos x {len(levels())} levels in {time.perf_counter() - started:.0f} s")
    if args.save:
        args.save.write_text(json.dumps(rows, default=float))
    report(rows, policy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
