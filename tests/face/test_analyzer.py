"""FaceAnalyzer: model loading and hash check, output format, threads, pickling, processes."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from preflight import ModelError
from preflight import measures as M
from preflight.face import DEFAULT_MODEL_SHA256, FaceAnalyzer, default_model_path, file_sha256


def test_bundled_model_is_the_documented_one() -> None:
    assert file_sha256(default_model_path()) == DEFAULT_MODEL_SHA256


def test_detect_returns_pixel_landmarks_blendshapes_and_matrix(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    faces = analyzer.detect(obama)
    assert len(faces) == 1
    face = faces[0]
    h, w = obama.shape[:2]
    assert face.landmarks.shape == (478, 3)
    assert face.image_size == (w, h)
    x0, y0, x1, y1 = face.extent
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    # pixels, not normalised coordinates: a face of a couple of hundred pixels
    assert 150 < x1 - x0 < 400
    assert {"eyeBlinkLeft", "eyeBlinkRight"} <= set(face.blendshapes)
    assert face.matrix is not None and face.matrix.shape == (4, 4)
    # the subject's right iris is the image-left eye of this unmirrored portrait
    assert face.right_iris[0] < face.left_iris[0]


def test_the_primary_face_is_the_largest_by_face_size(analyzer: FaceAnalyzer, samples: Path) -> None:
    """A smaller face tilted by 40 deg has the larger axis-aligned box: it used to become the primary face,
    and the real one's ratio to it read above 1 ("the second is 104 % the size of the main face")."""
    from PIL import Image

    photo = Image.open(samples / "obama.jpg").convert("RGB")
    w, h = photo.size
    crop = photo.crop((int(w * 0.2), int(h * 0.1), int(w * 0.8), int(h * 0.7)))
    canvas = Image.new("RGB", (1600, 900), (200, 200, 200))
    canvas.paste(crop.resize((500, 500 * crop.height // crop.width)), (50, 150))
    tilted = crop.resize((450, 450 * crop.height // crop.width)).rotate(40, expand=True, fillcolor=(200, 200, 200))
    canvas.paste(tilted, (800, 60))
    faces = analyzer.detect(np.asarray(canvas))
    assert len(faces) == 2
    sizes = [M.face_size(f.landmarks) for f in faces]
    extents = [min(f.extent[2] - f.extent[0], f.extent[3] - f.extent[1]) for f in faces]
    assert sizes[0] > sizes[1] and extents[1] > extents[0]  # the case: ranked by size, not by box
    assert abs(M.roll_deg(faces[0].landmarks)) < 5 and faces[0].extent[0] < 800


def test_no_face_in_a_flat_image(analyzer: FaceAnalyzer) -> None:
    assert analyzer.detect(np.full((480, 640, 3), 127, np.uint8)) == []


def test_detect_rejects_wrong_arrays(analyzer: FaceAnalyzer) -> None:
    with pytest.raises(ValueError):
        analyzer.detect(np.zeros((100, 100), np.uint8))
    with pytest.raises(ValueError):
        analyzer.detect(np.zeros((100, 100, 3), np.float32))


def test_canonical_face_is_read_from_the_bundle(analyzer: FaceAnalyzer) -> None:
    canonical = analyzer.canonical
    assert canonical is not None
    assert canonical.vertices.shape == (468, 3)
    assert len(canonical.indices) == len(canonical.weights) > 10
    assert canonical.vertices[1, 2] > canonical.vertices[M.CHIN, 2]  # the nose tip points at the viewer
    assert canonical.eye_distance == pytest.approx(6.3, abs=0.1)  # centimetres


def test_wrong_hash_missing_file_and_broken_bundle_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="SHA-256"):
        FaceAnalyzer(sha256="0" * 64)
    with pytest.raises(ModelError, match="cannot read"):
        FaceAnalyzer(tmp_path / "missing.task")
    broken = tmp_path / "broken.task"
    broken.write_bytes(b"not a model bundle")
    with pytest.raises(ModelError, match="SHA-256"):
        FaceAnalyzer(broken)  # the default expectation is the bundled hash
    with pytest.raises(ModelError, match="cannot load"):
        FaceAnalyzer(broken, sha256=None)


def test_custom_model_path_with_and_without_hash(tmp_path: Path, obama: np.ndarray) -> None:
    copy = tmp_path / "copy.task"
    shutil.copyfile(default_model_path(), copy)
    with FaceAnalyzer(copy) as a, FaceAnalyzer(copy, sha256=None) as b:
        assert len(a.detect(obama)) == len(b.detect(obama)) == 1


def test_close_is_idempotent_and_final(obama: np.ndarray) -> None:
    fa = FaceAnalyzer()
    fa.close()
    fa.close()
    assert fa.closed
    with pytest.raises(RuntimeError):
        fa.detect(obama)


def test_shared_between_threads(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    expected = analyzer.detect(obama)[0].landmarks
    images = [obama, np.ascontiguousarray(obama[:, ::-1])]
    expected_mirror = analyzer.detect(images[1])[0].landmarks
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(3):
            img = images[(k + i) % 2]
            got = analyzer.detect(img)[0].landmarks
            want = expected if (k + i) % 2 == 0 else expected_mirror
            if not np.allclose(got, want, atol=1e-3):
                errors.append(f"thread {k} run {i} differs")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors


def test_pickles_as_its_settings_and_reloads(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    clone = pickle.loads(pickle.dumps(analyzer))
    try:
        assert clone is not analyzer and clone.max_faces == analyzer.max_faces
        assert np.allclose(clone.detect(obama)[0].landmarks, analyzer.detect(obama)[0].landmarks, atol=1e-3)
    finally:
        clone.close()


def _eye_distance_in_worker(fa: FaceAnalyzer, rgb: np.ndarray) -> float:
    return M.eye_distance(fa.detect(rgb)[0].landmarks)


@pytest.mark.slow
def test_usable_in_a_spawned_worker_process(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(_eye_distance_in_worker, (analyzer, obama))
    assert got == pytest.approx(M.eye_distance(analyzer.detect(obama)[0].landmarks), abs=0.05)


_MATPLOTLIB_AFTERWARDS = """
import sys
from preflight.face import FaceAnalyzer
with FaceAnalyzer() as fa:
    pass
assert "matplotlib" not in sys.modules, "the stand-in must not stay behind"
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from mediapipe.tasks.python.vision import drawing_utils
assert hasattr(plt, "figure") and plt.__file__.endswith("pyplot.py")
assert drawing_utils.plt.figure is plt.figure  # MediaPipe's own drawing helpers reach the real module
print("ok")
"""


@pytest.mark.slow
def test_matplotlib_stays_usable_after_the_lean_import() -> None:
    """MediaPipe is imported without loading matplotlib (cold start); matplotlib works afterwards."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _MATPLOTLIB_AFTERWARDS], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")

