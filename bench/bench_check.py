"""Performance of ``Gate.check``: against the floor, cold start, and memory over 1,000 images.

1. Speed: on a 1080x1440 JPEG selfie (made from ``sample_images/obama.jpg`` by ``make_derived.py``), in one
   process, alternate ``Gate.check(bytes)`` with the floor "decode with OpenCV + run the bare
   FaceLandmarker" and compare medians. The floor's landmarker is configured like ours
   (``num_faces=4``, blendshapes and matrices on); a minimal one (``num_faces=1``, no extras) is
   timed too, for reference. Budget: gate <= 1.3 x floor.
2. Cold start: a fresh ``python -c "import preflight; preflight.check(path)"``, wall clock of the
   whole process (interpreter start to exit) and, inside it, import + model load + first check.
   Budget: < 1.5 s.
3. Memory: a fresh process checks 1,000 images (the committed samples and variants made from them,
   cycled) with one Gate, printing the RSS every 100 images. Budget: peak < 400 MB, not growing.

Run::

    .venv/bin/python bench/bench_check.py [--runs 200] [--skip-memory]
    .venv/bin/python bench/bench_check.py --png --runs 60   # the speed table for a PNG upload
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
SELFIE = Path("/tmp/preflight-derived/obama_selfie_1080x1440.jpg")


def speed(runs: int, png: bool = False) -> None:
    import cv2
    import numpy as np
    from mediapipe.tasks.python.core.base_options import BaseOptions
    from mediapipe.tasks.python.vision.core.image import Image, ImageFormat
    from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarker, FaceLandmarkerOptions

    import preflight
    from preflight.face import default_model_path

    data = SELFIE.read_bytes()
    if png:  # the same selfie as a PNG: the floor decodes it with OpenCV too
        data = cv2.imencode(".png", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))[1].tobytes()

    def landmarker(full: bool) -> FaceLandmarker:
        return FaceLandmarker.create_from_options(FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=default_model_path()),
            num_faces=4 if full else 1,
            output_face_blendshapes=full,
            output_facial_transformation_matrixes=full,
        ))

    bare, minimal = landmarker(True), landmarker(False)

    def floor(lm: FaceLandmarker) -> float:
        t = time.perf_counter()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        result = lm.detect(Image(image_format=ImageFormat.SRGB, data=rgb))
        assert result.face_landmarks
        return (time.perf_counter() - t) * 1000

    with preflight.Gate() as gate:

        def check() -> float:
            t = time.perf_counter()
            report = gate.check(data)
            elapsed = (time.perf_counter() - t) * 1000
            assert report.measurements.face_count == 1, report
            return elapsed

        for _ in range(10):  # warm-up
            floor(bare), floor(minimal), check()
        f_full, f_min, g = [], [], []
        for _ in range(runs):
            f_full.append(floor(bare))
            g.append(check())
            f_min.append(floor(minimal))
        report = gate.check(data)
    bare.close()
    minimal.close()
    med = statistics.median
    name = SELFIE.with_suffix(".png").name if png else SELFIE.name
    print(f"## speed: {name} ({len(data)} bytes), {runs} alternating runs, one process")
    print(f"floor (decode + FaceLandmarker, our options): median {med(f_full):6.1f} ms  "
          f"p90 {sorted(f_full)[int(0.9 * runs)]:6.1f}")
    print(f"floor (decode + FaceLandmarker, minimal)    : median {med(f_min):6.1f} ms")
    print(f"Gate.check(bytes)                           : median {med(g):6.1f} ms  "
          f"p90 {sorted(g)[int(0.9 * runs)]:6.1f}")
    print(f"ratio gate / floor: {med(g) / med(f_full):.2f} (budget 1.30); vs minimal floor "
          f"{med(g) / med(f_min):.2f}")
    print(f"report: passed={report.passed} codes={sorted(report.codes)}")


COLD = """
import time, resource
t0 = time.perf_counter()
import preflight
t1 = time.perf_counter()
r = preflight.check({path!r})
t2 = time.perf_counter()
print("INPROC", t1 - t0, t2 - t1, r.measurements.face_count)
"""


def cold_start(repeats: int) -> None:
    walls, imports, firsts = [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD.format(path=str(SELFIE))], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - t)
        line = next(x for x in out.stdout.splitlines() if x.startswith("INPROC"))
        _, imp, first, faces = line.split()
        assert faces == "1"
        imports.append(float(imp))
        firsts.append(float(first))
    med = statistics.median
    print(f"\n## cold start: fresh `python -c 'import preflight; preflight.check(...)'`, {repeats} runs")
    print(f"whole process (start to exit): median {med(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f})")
    print(f"inside: import preflight {med(imports):.2f} s + check incl. model load {med(firsts):.2f} s "
          f"= {med(imports) + med(firsts):.2f} s (budget 1.5 s)")


MEMORY = """
import os, sys, resource, itertools
import numpy as np, cv2
sys.path.insert(0, {root!r})
import preflight
from pathlib import Path
def rss_mb():
    with open('/proc/self/statm') as fh:
        return int(fh.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
names = [p for p in sorted(Path({samples!r}).glob('*')) if p.suffix in ('.jpg', '.png')]
names.append(Path({selfie!r}))
sources = [p.read_bytes() for p in names]
# variants made in memory: rotated, resized, blurred arrays
base = cv2.cvtColor(cv2.imread(str(names[0])), cv2.COLOR_BGR2RGB)
for k in (0.6, 0.8, 1.2):
    sources.append(np.ascontiguousarray(cv2.resize(base, None, fx=k, fy=k)))
sources.append(np.ascontiguousarray(np.rot90(base)))
sources.append(cv2.GaussianBlur(base, (0, 0), 3))
print('START', rss_mb(), flush=True)
with preflight.Gate() as gate:
    for i, src in zip(range(1, {n} + 1), itertools.cycle(sources)):
        gate.check(src)
        if i % 100 == 0:
            print('RSS', i, round(rss_mb(), 1), flush=True)
print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory(n: int) -> None:
    code = MEMORY.format(root=str(ROOT), samples=str(ROOT / "sample_images"), selfie=str(SELFIE), n=n)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    rss = [(int(x.split()[1]), float(x.split()[2])) for x in lines if x.startswith("RSS")]
    peak = float(next(x for x in lines if x.startswith("PEAK")).split()[1])
    start = float(next(x for x in lines if x.startswith("START")).split()[1])
    print(f"\n## memory: one process, one Gate, {n} checks ({time.perf_counter() - t:.0f} s)")
    print(f"RSS before the first check {start:.0f} MB; every 100 checks: "
          + json.dumps([r for _, r in rss]))
    print(f"peak RSS {peak:.0f} MB (budget 400); growth from check 200 to {n}: "
          f"{rss[-1][1] - rss[1][1]:+.1f} MB")


def main() -> int:
    from make_derived import selfie_1080x1440

    selfie_1080x1440(SELFIE.parent)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--cold", type=int, default=5)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--png", action="store_true", help="only the speed table, on the selfie re-encoded as PNG")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if args.png:
        speed(args.runs, png=True)
        return 0
    speed(args.runs)
    cold_start(args.cold)
    if not args.skip_memory:
        memory(args.images)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
