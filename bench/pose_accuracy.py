"""Head-pose accuracy: AFLW2000-3D ground truth, and exact synthetic truth.

1. AFLW2000-3D (the 16 samples in ``shared/faces/gh-PRNet/TestImages/AFLW2000``): ``Pose_Para[0, :3]``
   is (pitch, yaw, roll) in radians. Mapping to our conventions (checked by eye on 00430 chin up,
   02545 head down, 00081 nose to the image's left): ``pitch = +pitch_aflw``, ``yaw = -yaw_aflw``,
   ``roll = +roll_aflw`` (AFLW's roll is an Euler angle, ours the eye line: they agree for small yaw
   and pitch only). Needs scipy (``scipy.io.loadmat``).
2. In-plane rotation of public-domain photos by a known angle (canvas enlarged so nothing is cut):
   ``roll`` must change by exactly minus the angle (OpenCV rotates counter-clockwise for positive
   angles), yaw and pitch must not change.
3. Mirroring: yaw and roll change sign, pitch does not.
4. Moving the face in the frame (padding the canvas on one side): nothing may change. Shown for our
   weak-perspective fit and for MediaPipe's facial transformation matrix.
5. Resizing by s: face_size_px and eye_distance_px scale by s.

Run::

    .venv/bin/python bench/pose_accuracy.py
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

from _corpus import read_rgb, shared_faces  # noqa: E402

from preflight import measures as M  # noqa: E402
from preflight.face import Face, FaceAnalyzer  # noqa: E402

SAMPLES = ["obama.jpg", "obama2.jpg", "biden.jpg", "obama-1080p.jpg", "grace_hopper_512x512.jpg"]


def ours(face: Face, analyzer: FaceAnalyzer) -> tuple[float, float, float]:
    assert analyzer.canonical is not None
    pose = M.head_pose(face.landmarks, analyzer.canonical)
    return pose.pitch_deg, pose.yaw_deg, M.roll_deg(face.landmarks)


def matrix_angles(face: Face) -> tuple[float, float, float]:
    assert face.matrix is not None
    return M.angles_from_rotation(face.matrix)


def rotate(rgb: np.ndarray, angle: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def wrap(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def aflw(analyzer: FaceAnalyzer) -> None:
    try:
        from scipy.io import loadmat
    except ImportError:
        print("AFLW2000: scipy is not installed (pip install scipy); skipped")
        return
    folder = shared_faces() / "gh-PRNet" / "TestImages" / "AFLW2000"
    print("\n## AFLW2000-3D samples (degrees; GT mapped to our signs)")
    print(f"{'image':16} {'GT pitch':>8} {'yaw':>7} {'roll':>7} | {'ours p':>7} {'y':>7} {'r':>7} | "
          f"{'matrix p':>8} {'y':>7} {'r':>7}")
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    missed = []
    for jpg in sorted(folder.glob("*.jpg")):
        gt_raw = np.degrees(loadmat(str(jpg.with_suffix(".mat")))["Pose_Para"][0, :3])
        gt = np.array([gt_raw[0], -gt_raw[1], gt_raw[2]])
        faces = analyzer.detect(read_rgb(jpg))
        if not faces:
            missed.append(f"{jpg.name} (GT yaw {gt[1]:+.0f})")
            print(f"{jpg.name:16} {gt[0]:8.1f} {gt[1]:7.1f} {gt[2]:7.1f} | no face found")
            continue
        o = np.array(ours(faces[0], analyzer))
        mx = np.array(matrix_angles(faces[0]))
        mx[2] = o[2]  # the gate's roll is the eye line for both
        print(f"{jpg.name:16} {gt[0]:8.1f} {gt[1]:7.1f} {gt[2]:7.1f} | {o[0]:7.1f} {o[1]:7.1f} {o[2]:7.1f} | "
              f"{mx[0]:8.1f} {mx[1]:7.1f} {mx[2]:7.1f}")
        rows.append((gt, o, mx))
    for label, keep in (("all detected", lambda g: True),
                        ("|pitch|,|yaw| <= 40 deg", lambda g: abs(g[0]) <= 40 and abs(g[1]) <= 40)):
        sel = [r for r in rows if keep(r[0])]
        if not sel:
            continue
        gt = np.array([r[0] for r in sel])
        for name, k in (("ours", 1), ("matrix", 2)):
            est = np.array([r[k] for r in sel])
            mae = np.abs(est - gt).mean(axis=0)
            signs = []
            for axis, axis_name in enumerate(("pitch", "yaw", "roll")):
                big = np.abs(gt[:, axis]) > 5
                agree = int((np.sign(gt[big, axis]) == np.sign(est[big, axis])).sum())
                signs.append(f"{axis_name} {agree}/{int(big.sum())}")
            print(f"MAE {label:24} {name:7} n={len(sel):2d}: pitch {mae[0]:5.1f}  yaw {mae[1]:5.1f}  "
                  f"roll {mae[2]:5.1f}   same sign where |GT| > 5 deg: {', '.join(signs)}")
    if missed:
        print("not detected:", ", ".join(missed))


def synthetic(analyzer: FaceAnalyzer) -> None:
    rot_err, rot_yaw, rot_pitch = [], [], []
    mir = {"yaw": [], "roll": [], "pitch": []}
    pad_ours: list[float] = []
    pad_matrix: list[float] = []
    pad_tiles = 0
    scale_err: list[float] = []
    print("\n## in-plane rotation (roll must change by -angle)")
    for name in SAMPLES:
        rgb = read_rgb(ROOT / "sample_images" / name)
        base = analyzer.detect(rgb)[0]
        p0, y0, r0 = ours(base, analyzer)
        row = []
        for angle in (-40, -30, -20, -10, 10, 20, 30, 40):
            faces = analyzer.detect(rotate(rgb, angle))
            if not faces:
                row.append(f"{angle:+d}: none")
                continue
            p, y, r = ours(faces[0], analyzer)
            err = wrap((r - r0) + angle)
            rot_err.append(abs(err))
            rot_yaw.append(abs(y - y0))
            rot_pitch.append(abs(p - p0))
            row.append(f"{angle:+d}:{err:+.2f}")
        print(f"  {name:26} roll error per angle: {' '.join(row)}")
        # mirror
        faces = analyzer.detect(np.ascontiguousarray(rgb[:, ::-1]))
        pm, ym, rm = ours(faces[0], analyzer)
        mir["yaw"].append(abs(ym + y0))
        mir["roll"].append(abs(rm + r0))
        mir["pitch"].append(abs(pm - p0))
        print(f"  {name:26} mirror: yaw {y0:+.1f} -> {ym:+.1f}, roll {r0:+.1f} -> {rm:+.1f}, "
              f"pitch {p0:+.1f} -> {pm:+.1f}")
        # translation (pad the canvas on each side by the image size)
        h, w = rgb.shape[:2]
        m0 = matrix_angles(base)
        for top, bottom, left, right in ((0, 0, w, 0), (0, 0, 0, w), (h, 0, 0, 0), (0, h, 0, 0)):
            padded = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_REPLICATE)
            faces = analyzer.detect(padded)
            if not faces:
                continue
            p, y, _ = ours(faces[0], analyzer)
            pad_ours.append(max(abs(p - p0), abs(y - y0)))
            if faces[0].matrix is None:  # found in tiles (a tall canvas): MediaPipe's matrix is not kept
                pad_tiles += 1
                continue
            mp_, my_, _ = matrix_angles(faces[0])
            pad_matrix.append(max(abs(mp_ - m0[0]), abs(my_ - m0[1])))
        # scale
        f0 = base
        for s in (0.5, 0.75, 1.5):
            img = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
            faces = analyzer.detect(img)
            if not faces:
                continue
            for fn in (M.face_size, M.eye_distance):
                scale_err.append(abs(fn(faces[0].landmarks) / (s * fn(f0.landmarks)) - 1.0))
    print("\n## summary of the synthetic truths")
    print(f"rotation: roll MAE {np.mean(rot_err):.2f} deg (max {np.max(rot_err):.2f}) over {len(rot_err)} rotations;"
          f" yaw changes by {np.mean(rot_yaw):.2f} (max {np.max(rot_yaw):.2f}), pitch by {np.mean(rot_pitch):.2f}"
          f" (max {np.max(rot_pitch):.2f})")
    print(f"mirror: |yaw + yaw_mirrored| mean {np.mean(mir['yaw']):.2f} (max {np.max(mir['yaw']):.2f}); "
          f"|roll + roll_mirrored| mean {np.mean(mir['roll']):.2f} (max {np.max(mir['roll']):.2f}); "
          f"|pitch - pitch_mirrored| mean {np.mean(mir['pitch']):.2f}")
    print(f"face moved in the frame: largest pitch/yaw change, ours mean {np.mean(pad_ours):.2f} "
          f"(max {np.max(pad_ours):.2f}); MediaPipe matrix mean {np.mean(pad_matrix):.2f} "
          f"(max {np.max(pad_matrix):.2f}; {len(pad_matrix)} placements, {pad_tiles} more found in tiles have none)")
    print(f"resize by s in (0.5, 0.75, 1.5): |measured / (s * original) - 1| mean {100 * np.mean(scale_err):.2f}% "
          f"(max {100 * np.max(scale_err):.2f}%) for face_size_px and eye_distance_px")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    with FaceAnalyzer() as analyzer:
        aflw(analyzer)
        synthetic(analyzer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
