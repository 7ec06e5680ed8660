"""Screening in the calling process (one image, or ``--workers 1``) keeps MediaPipe's C++ log off stderr."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from preflight.table import read_rows

ROOT = Path(__file__).resolve().parents[2]
NATIVE_LOG = ("XNNPACK", "InitGoogle", "W0000", "I0000", "inference_feedback_manager")


@pytest.mark.parametrize("images, workers", [(1, []), (2, ["--workers", "1"])], ids=["one image", "workers 1"])
def test_no_native_log_lines_on_stderr(tmp_path: Path, samples: Path, images: int, workers: list[str]) -> None:
    names = []
    for i in range(images):
        shutil.copy(samples / "biden.jpg", tmp_path / f"p{i}.jpg")
        names.append(str(tmp_path / f"p{i}.jpg"))
    out = tmp_path / "x.csv"
    done = subprocess.run([sys.executable, "-m", "preflight", "screen", *names, "--out", str(out), "--no-progress",
                           *workers], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    assert [r["face_count"] for r in read_rows(out)] == [1] * images  # the model did run
    assert not [word for word in NATIVE_LOG if word in done.stderr], done.stderr
    assert done.stderr == ""
