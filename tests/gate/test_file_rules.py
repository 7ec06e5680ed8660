"""File and image rules on real files: every code of the foundation, and hostile input."""

from __future__ import annotations

import io
import os
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

import preflight
from preflight import codes as C

from ._images import encode, gradient


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def test_sample_file_facts(file_gate, samples):
    report = file_gate.check(samples / "obama.jpg")
    m = report.measurements
    assert (m.format, m.width, m.height) == ("JPEG", 910, 1137)
    assert m.file_bytes == os.path.getsize(samples / "obama.jpg")
    assert m.jpeg_quality == 93
    assert m.exif_orientation == 1
    assert C.HEIGHT_ABOVE_RECOMMENDED in report.codes  # 1137 > 1080 is only a warning
    assert report.passed


_rng = np.random.default_rng(1234)


@pytest.mark.parametrize("data", [b"", _rng.bytes(4096), b"\xff\xd8\xff\xe0" + _rng.bytes(2000),
                                  b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a"], ids=[
                                      "zero-bytes", "random-bytes", "jpeg-magic-then-noise",
                                      "png-magic-then-zeros", "gif-magic-only"])
def test_unreadable_data(file_gate, data):
    report = file_gate.check(data)
    assert C.FAILED_TO_READ_IMAGE in report.codes
    assert not report.passed
    assert report.measurements.width is None or data.startswith(b"GIF")


def test_truncated_jpeg(file_gate, samples):
    data = (samples / "obama.jpg").read_bytes()
    report = file_gate.check(data[: len(data) // 2])
    assert C.FAILED_TO_READ_IMAGE in report.codes and "pixels" in report.not_checked
    # the header was intact, so the file facts are still reported
    assert (report.measurements.width, report.measurements.height) == (910, 1137)


def test_truncated_png(file_gate):
    data = encode(gradient(600, 600), "PNG")
    report = file_gate.check(data[: len(data) - 100])
    assert C.FAILED_TO_READ_IMAGE in report.codes


def test_every_truncation_of_a_jpeg_is_a_report_not_a_crash(file_gate, samples):
    data = encode(gradient(500, 500), "JPEG", quality=90)
    for cut in range(0, len(data), max(1, len(data) // 60)):
        report = file_gate.check(data[:cut])
        assert isinstance(report, preflight.Report)
        assert C.FAILED_TO_READ_IMAGE in report.codes


def test_bit_flips_never_raise(file_gate):
    rng = np.random.default_rng(7)
    data = bytearray(encode(gradient(500, 500), "JPEG", quality=90))
    for _ in range(40):
        mutated = bytearray(data)
        for pos in rng.integers(0, len(mutated), size=8):
            mutated[pos] = int(rng.integers(0, 256))
        assert isinstance(file_gate.check(bytes(mutated)), preflight.Report)


def test_png_bomb_is_judged_from_the_header_and_never_decoded(file_gate):
    data = bomb_png(100_000, 100_000)
    tracemalloc.start()
    report = file_gate.check(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert C.RESOLUTION_TOO_HIGH in report.codes
    assert (report.measurements.width, report.measurements.height) == (100_000, 100_000)
    assert "pixels" in report.not_checked
    assert peak < 20 * 1024 * 1024  # decoding would need 30 GB


def test_resolution_too_high_from_a_real_file(file_gate):
    report = file_gate.check(encode(gradient(4100, 480), "JPEG", quality=90))
    assert C.RESOLUTION_TOO_HIGH in report.codes
    assert report.issues[[i.code for i in report.issues].index(C.RESOLUTION_TOO_HIGH)].measured == 4100


def test_resolution_limits_are_inclusive(file_gate):
    ok = file_gate.check(encode(gradient(480, 480), "PNG"))
    assert not ({C.RESOLUTION_TOO_LOW, C.RESOLUTION_TOO_HIGH} & ok.codes)
    low = file_gate.check(encode(gradient(479, 600), "PNG"))
    assert C.RESOLUTION_TOO_LOW in low.codes


def test_resolution_too_low_sample(file_gate, samples):
    report = file_gate.check(samples / "rocket.jpg")  # 640 x 427
    issue = next(i for i in report.issues if i.code == C.RESOLUTION_TOO_LOW)
    assert (issue.measured, issue.limit, issue.severity) == (427, 480, "error")
    assert issue.hint


def test_height_above_recommended_is_a_warning(file_gate, samples):
    report = file_gate.check(samples / "biden.jpg")  # 970 x 2204
    issue = next(i for i in report.issues if i.code == C.HEIGHT_ABOVE_RECOMMENDED)
    assert issue.severity == "warning" and issue.measured == 2204 and issue.limit == 1080


def test_file_too_large(file_gate):
    noise = np.random.default_rng(1).integers(0, 256, size=(1000, 1000, 3), dtype=np.uint8)
    data = encode(noise, "PNG")
    assert len(data) > 2_000_000
    report = file_gate.check(data)
    issue = next(i for i in report.issues if i.code == C.FILE_TOO_LARGE)
    assert issue.measured == len(data) and issue.limit == 2_000_000
    # the byte limit is configurable
    import dataclasses

    relaxed = dataclasses.replace(file_gate.policy, max_file_bytes=10_000_000)
    assert C.FILE_TOO_LARGE not in file_gate.check(data, policy=relaxed).codes


@pytest.mark.parametrize("fmt,name", [("GIF", "GIF"), ("WEBP", "WEBP"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_unsupported_formats_are_judged_by_bytes(file_gate, tmp_path, fmt, name):
    path = tmp_path / "photo.jpg"  # the name lies; the bytes decide
    path.write_bytes(encode(gradient(600, 600), fmt))
    report = file_gate.check(path)
    assert report.measurements.format == name
    assert C.UNSUPPORTED_FORMAT in report.codes
    issue = next(i for i in report.issues if i.code == C.UNSUPPORTED_FORMAT)
    assert issue.measured == name
    # still decoded: the other rules are judged too
    assert (report.measurements.width, report.measurements.height) == (600, 600)
    assert "pixels" not in report.not_checked


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "GIF"])
def test_a_format_the_policy_allows_is_read(file_gate, fmt):
    # a policy for another API may accept WebP: such files used to fail as FAILED_TO_READ_IMAGE
    import dataclasses

    policy = dataclasses.replace(file_gate.policy, allowed_formats=("JPEG", "PNG", fmt))
    report = file_gate.check(encode(gradient(600, 600), fmt), policy=policy)
    assert report.measurements.format == fmt and report.passed, report.issues
    assert "pixels" not in report.not_checked


def test_jpg_that_is_a_png_is_fine(file_gate, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(encode(gradient(600, 600), "PNG"))
    report = file_gate.check(path)
    assert report.measurements.format == "PNG"
    assert C.UNSUPPORTED_FORMAT not in report.codes and C.FAILED_TO_READ_IMAGE not in report.codes


def test_jpeg_quality_too_low(file_gate, samples):
    original = Image.open(samples / "obama.jpg")
    report = file_gate.check(encode(original, "JPEG", quality=50))
    issue = next(i for i in report.issues if i.code == C.JPEG_QUALITY_TOO_LOW)
    assert (issue.measured, issue.limit) == (50, 70)
    assert C.JPEG_QUALITY_TOO_LOW not in file_gate.check(encode(original, "JPEG", quality=70)).codes


def test_cmyk_jpeg(file_gate):
    rgb = gradient(600, 600)
    data = encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    report = file_gate.check(data)
    assert report.measurements.mode == "CMYK"
    assert C.FAILED_TO_READ_IMAGE not in report.codes
    decoded = preflight.loading.load(data, file_gate.policy).rgb
    assert decoded is not None and decoded.shape == (600, 600, 3)
    assert np.abs(decoded.astype(int) - rgb.astype(int)).mean() < 12


def test_16_bit_png(file_gate):
    y = np.linspace(0, 65535, 600, dtype=np.uint16)
    arr = np.tile(y[:, None], (1, 600))
    data = encode(Image.fromarray(arr), "PNG")
    report = file_gate.check(data)
    assert report.measurements.mode in ("I;16", "I")
    assert C.FAILED_TO_READ_IMAGE not in report.codes
    decoded = preflight.loading.load(data, file_gate.policy).rgb
    assert decoded is not None and decoded.dtype == np.uint8
    assert decoded[0, 0, 0] < 5 and decoded[-1, 0, 0] > 250  # full range kept, scaled to 8 bits


def test_rgba_png_is_composited(file_gate, samples):
    report = file_gate.check(samples / "obama_rgba.png")
    assert report.measurements.mode == "RGBA"
    assert C.FAILED_TO_READ_IMAGE not in report.codes
    rgba = np.zeros((600, 600, 4), np.uint8)  # fully transparent black
    decoded = preflight.loading.load(encode(rgba, "PNG"), file_gate.policy).rgb
    assert decoded is not None and int(decoded.min()) == 255  # shown on white, as viewers do


def test_grayscale_jpeg(file_gate):
    gray = gradient(600, 600)[:, :, 1]
    data = encode(Image.fromarray(gray, mode="L"), "JPEG", quality=90)
    report = file_gate.check(data)
    assert report.measurements.mode == "L"
    assert report.measurements.jpeg_quality == 90
    decoded = preflight.loading.load(data, file_gate.policy).rgb
    assert decoded is not None and decoded.shape == (600, 600, 3)


def _with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation(file_gate, orientation):
    from PIL import ImageOps

    stored = gradient(640, 500)  # landscape as stored
    data = _with_orientation(stored, orientation)
    report = file_gate.check(data)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    loaded = preflight.loading.load(data, file_gate.policy).rgb
    assert loaded is not None and loaded.shape == expected.shape
    assert np.abs(loaded.astype(int) - expected.astype(int)).mean() < 2
    m = report.measurements
    assert m.exif_orientation == orientation
    assert (m.width, m.height) == ((500, 640) if orientation >= 5 else (640, 500))
    assert (C.EXIF_ROTATED in report.codes) == (orientation != 1)
    if orientation != 1:
        assert next(i for i in report.issues if i.code == C.EXIF_ROTATED).severity == "warning"


def test_width_and_height_follow_orientation_for_the_resolution_rules(file_gate):
    # stored 1000 x 470: too low as stored; rotated it is 470 wide: still too low, on the other side
    data = _with_orientation(gradient(1000, 470), 6)
    report = file_gate.check(data)
    assert (report.measurements.width, report.measurements.height) == (470, 1000)
    assert C.RESOLUTION_TOO_LOW in report.codes


def test_report_collects_independent_issues(file_gate):
    noise = np.random.default_rng(2).integers(0, 256, size=(1200, 400, 3), dtype=np.uint8)
    report = file_gate.check(encode(noise, "JPEG", quality=40))
    assert {C.JPEG_QUALITY_TOO_LOW, C.RESOLUTION_TOO_LOW, C.HEIGHT_ABOVE_RECOMMENDED} <= report.codes
