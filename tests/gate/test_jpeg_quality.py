from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from preflight.jpeg_quality import estimate_quality


@pytest.fixture(scope="module")
def photo(samples) -> np.ndarray:
    return np.asarray(Image.open(samples / "obama-480p.jpg").convert("RGB"))


def _quality_of(data: bytes) -> int:
    est = estimate_quality(Image.open(io.BytesIO(data)).quantization)
    assert est is not None
    return est.quality


@pytest.mark.parametrize("quality", range(10, 101))
def test_pillow_and_opencv_qualities_are_exact(photo, quality):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=quality)
    assert abs(_quality_of(buf.getvalue()) - quality) <= 1
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    assert abs(_quality_of(enc.tobytes()) - quality) <= 1


def test_exact_tables_report_a_perfect_fit(photo):
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=83)
    est = estimate_quality(Image.open(buf).quantization)
    assert est is not None and est.exact and est.fit == 1.0 and est.quality == 83


def test_custom_tables_fit_less_well():
    tables = {0: [3 + (i % 7) * 9 for i in range(64)], 1: [40] * 64}
    est = estimate_quality(tables)
    assert est is not None and not est.exact and est.fit < 0.99


def test_no_tables():
    assert estimate_quality({}) is None
