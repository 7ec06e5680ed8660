"""annotate: the picture for every sample, readable at any size, drawn where the face is."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from preflight.annotate import MAX_CANVAS, MIN_CANVAS, annotate

SAMPLES = ["obama.jpg", "obama2.jpg", "biden.jpg", "obama-480p.jpg", "obama-1080p.jpg", "grace_hopper_512x512.jpg",
           "astronaut.png", "rocket.jpg", "obama_partial_face.jpg", "obama_rgba.png"]


@pytest.mark.parametrize("name", SAMPLES)
def test_annotated_sample(samples, gate, tmp_path, name):
    report = gate.check(samples / name)
    picture = annotate(samples / name, report, gate=gate)
    assert MIN_CANVAS <= max(picture.size) <= MAX_CANVAS
    picture.save(tmp_path / f"{name}.png")
    original = Image.open(samples / name).convert("RGB").resize(picture.size)
    diff = np.abs(np.asarray(picture, dtype=int) - np.asarray(original, dtype=int)).sum(axis=2) > 60
    assert diff[:, :].any()  # something was drawn
    m = report.measurements
    if m.face_box is not None:
        scale = picture.width / report.measurements.width
        x, y, w, h = (int(v * scale) for v in m.face_box)
        band = diff[max(0, y - 8): y + h + 8, max(0, x - 8): x + w + 8]
        assert band.mean() > 0.01  # the face box, eyes and labels are drawn around the face


def test_undecodable_input_gives_a_card(gate):
    picture = annotate(b"not an image", gate=gate)
    assert picture.size[0] == MIN_CANVAS


def test_annotate_cli(samples, tmp_path):
    from preflight.cli import main

    out = tmp_path / "a.png"
    assert main(["annotate", str(samples / "rocket.jpg"), "-o", str(out)]) == 1
    assert Image.open(out).format == "PNG"
