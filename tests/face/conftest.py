"""Fixtures for the face and pixel tests: one FaceAnalyzer and one Gate for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import preflight
from preflight.face import FaceAnalyzer

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


def read_sample(name: str) -> np.ndarray:
    """A committed sample image as an RGB uint8 array (decoded with OpenCV, like the gate)."""
    bgr = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
    assert bgr is not None, name
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def analyzer() -> Iterator[FaceAnalyzer]:
    with FaceAnalyzer() as fa:
        yield fa


@pytest.fixture(scope="session")
def face_gate() -> Iterator[preflight.Gate]:
    with preflight.Gate() as gate:
        yield gate


@pytest.fixture(scope="session")
def obama() -> np.ndarray:
    return read_sample("obama.jpg")
