"""Loading hostile and odd files: corrupt pixel data, bytes after the end, unreadable files,
bombs in formats we do not decode. Each must end in a truthful report or a typed error."""

from __future__ import annotations

import io
import pathlib
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import preflight
from preflight import codes as C

from ._images import encode, gradient

SAMPLE = Path(__file__).resolve().parents[2] / "sample_images" / "obama.jpg"


def _sample_png(mode: str = "RGB") -> bytes:
    return encode(Image.open(SAMPLE).convert(mode), "PNG")


def _corrupt_middle(data: bytes, length: int = 2000) -> bytes:
    """Overwrite compressed pixel data in the middle; the chunk chain and IEND stay intact."""
    out = bytearray(data)
    mid = len(out) // 2
    out[mid : mid + length] = np.random.default_rng(1).bytes(length)
    return bytes(out)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])  # OpenCV decodes RGB; RGBA goes through Pillow
def test_png_with_corrupt_pixel_data_is_unreadable_not_half_black(file_gate: preflight.Gate, mode: str) -> None:
    clean = _sample_png(mode)
    assert file_gate.check(clean).passed  # the intact photo passes: the corruption is what fails it
    report = file_gate.check(_corrupt_middle(clean))
    assert C.FAILED_TO_READ_IMAGE in report.codes
    assert not report.passed


def test_png_with_bytes_after_iend_decodes(file_gate: preflight.Gate) -> None:
    png = encode(gradient(640, 480), "PNG")
    for padding in (b"", b"\0" * 40, b"trailing metadata" * 10):
        report = file_gate.check(png + padding)
        assert C.FAILED_TO_READ_IMAGE not in report.codes, padding
        assert (report.measurements.width, report.measurements.height) == (640, 480)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_png_with_a_broken_colour_profile_decodes_silently(capfd: pytest.CaptureFixture[str], mode: str) -> None:
    # OpenCV's libpng printed "libpng warning: iCCP: too short" on the process's stderr for such files
    from preflight.loading import load

    picture = Image.open(SAMPLE).convert(mode)
    plain, profiled = encode(picture, "PNG"), encode(picture, "PNG", icc_profile=b"\0" * 200)
    capfd.readouterr()
    with_profile = load(profiled, preflight.Policy())
    assert capfd.readouterr().err == ""
    assert with_profile.rgb is not None
    assert np.array_equal(with_profile.rgb, load(plain, preflight.Policy()).rgb)  # the same pixels, either way


@pytest.mark.parametrize("damage", ["zeros", "random"])
@pytest.mark.parametrize("where", [0.3, 0.6])
def test_a_jpeg_with_damaged_data_is_unreadable_not_passed(file_gate: preflight.Gate, capfd: pytest.CaptureFixture[str],
                                                           damage: str, where: float) -> None:
    # restart markers let the decoder resynchronise: OpenCV handed back a photo with a garbled stripe
    # (and "Corrupt JPEG data: ..." on the process's stderr), and the gate passed it
    intact = SAMPLE.read_bytes()
    assert file_gate.check(intact).passed
    damaged = bytearray(intact)
    start = int(len(intact) * where)
    fill = bytes(400) if damage == "zeros" else np.random.default_rng(7).bytes(400)
    damaged[start : start + 400] = fill
    capfd.readouterr()
    report = file_gate.check(bytes(damaged))
    assert C.FAILED_TO_READ_IMAGE in report.codes and not report.passed
    assert "damaged" in report.to_dict()["issues"]["preflight"][C.FAILED_TO_READ_IMAGE]
    assert capfd.readouterr().err == ""


def test_bytes_before_the_jpeg_end_marker_are_harmless(file_gate: preflight.Gate) -> None:
    # libjpeg complains ("93 extraneous bytes before marker 0xd9") but every pixel was decoded
    clean = encode(Image.open(SAMPLE), "JPEG", quality=90)
    padded = clean[:-2] + bytes(100) + clean[-2:]
    report = file_gate.check(padded)
    assert C.FAILED_TO_READ_IMAGE not in report.codes and report.passed


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "grace_hopper_512x512.jpg", "rocket.jpg"])
def test_jpeg_pixels_are_the_ones_opencv_decodes(name: str) -> None:
    # the JPEG decoder changed (libjpeg-turbo through simplejpeg, strict); every calibrated threshold
    # was measured on OpenCV's pixels, so the two must agree exactly
    import cv2

    from preflight.loading import load

    data = (SAMPLE.parent / name).read_bytes()
    ours = load(data, preflight.Policy()).rgb
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert ours is not None and np.array_equal(ours, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


@pytest.mark.parametrize("mode", ["CMYK", "L"])
def test_jpegs_of_other_colour_models_still_decode(file_gate: preflight.Gate, mode: str) -> None:
    data = encode(Image.open(SAMPLE).convert(mode), "JPEG", quality=90)
    report = file_gate.check(data)
    assert C.FAILED_TO_READ_IMAGE not in report.codes
    assert (report.measurements.width, report.measurements.height) == Image.open(SAMPLE).size


def test_truncated_png_is_still_reported_truncated(file_gate: preflight.Gate) -> None:
    png = encode(gradient(640, 480), "PNG")
    report = file_gate.check(png[: len(png) // 2])
    assert C.FAILED_TO_READ_IMAGE in report.codes
    assert "truncated" in report.issues[0].message


def test_png_exif_orientation_after_the_pixels_is_read(file_gate: preflight.Gate) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    png = encode(gradient(640, 480), "PNG")
    iend = png.rindex(b"IEND") - 4
    late_exif = png[:iend] + _chunk(b"eXIf", exif.tobytes()) + png[iend:]  # eXIf after IDAT
    report = file_gate.check(late_exif)
    assert report.measurements.exif_orientation == 6
    assert (report.measurements.width, report.measurements.height) == (480, 640)
    assert C.FAILED_TO_READ_IMAGE not in report.codes


def test_png_orientation_in_xmp_is_read_like_pillow_does(file_gate: preflight.Gate) -> None:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    png = encode(gradient(640, 480), "PNG")
    iend = png.rindex(b"IEND") - 4
    with_xmp = png[:iend] + _chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp) + png[iend:]
    assert Image.open(io.BytesIO(with_xmp)).getexif().get(0x0112) == 6  # what Pillow reads
    report = file_gate.check(with_xmp)
    assert report.measurements.exif_orientation == 6
    assert (report.measurements.width, report.measurements.height) == (480, 640)


def test_gif_bomb_reports_its_declared_size(file_gate: preflight.Gate) -> None:
    gif = bytearray(encode(Image.new("P", (10, 10)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen size
    report = file_gate.check(bytes(gif))
    assert (report.measurements.width, report.measurements.height) == (65535, 65535)
    assert C.UNSUPPORTED_FORMAT in report.codes


def test_unreadable_file_is_a_report_and_the_batch_goes_on(
    file_gate: preflight.Gate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked.jpg"
    locked.write_bytes(encode(gradient(640, 480)))
    real_open = pathlib.Path.open

    def open_(self: Path, *args: object, **kwargs: object) -> object:
        if self.name == "locked.jpg":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(pathlib.Path, "open", open_)
    report = file_gate.check(locked)
    assert report.codes == {C.FAILED_TO_READ_IMAGE}
    assert "Permission denied" in report.issues[0].message
    with pytest.raises(preflight.SourceReadError):  # functions that need the bytes raise, typed
        preflight.conform(locked)


def test_stream_that_fails_to_read_is_a_report(file_gate: preflight.Gate) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    report = file_gate.check(Broken())
    assert report.codes == {C.FAILED_TO_READ_IMAGE}
    assert "Input/output error" in report.issues[0].message


def test_a_name_too_long_is_source_not_found(file_gate: preflight.Gate, tmp_path: Path) -> None:
    with pytest.raises(preflight.SourceNotFoundError):
        file_gate.check(tmp_path / ("a" * 5000))


def test_a_closed_gate_raises_a_typed_error() -> None:
    gate = preflight.Gate()
    gate.close()
    with pytest.raises(preflight.GateClosedError) as info:
        gate.check(gradient(640, 480))
    assert isinstance(info.value, preflight.PreflightError) and isinstance(info.value, RuntimeError)


def test_a_folder_is_not_found_as_a_file_and_says_it_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(preflight.SourceNotFoundError, match="is a folder, not an image file"):
        preflight.check(tmp_path)
    with pytest.raises(preflight.SourceNotFoundError, match="no such file"):
        preflight.check(tmp_path / "missing.jpg")
