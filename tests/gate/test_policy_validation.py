"""Policy values are validated when a policy is made: out-of-range values raise PolicyError naming
the field and the allowed range, and the command line turns that into exit 2."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

import preflight
from preflight.cli import main
from preflight.policy import FIELD_RANGES, ORDERED_PAIRS, Policy, policy_problems

NUMERIC = [f.name for f in dataclasses.fields(Policy)
           if isinstance(f.default, (int, float)) and not isinstance(f.default, bool)]


def test_every_numeric_field_has_a_range_and_the_presets_are_valid() -> None:
    assert sorted(NUMERIC) == sorted(FIELD_RANGES)
    for low, high in ORDERED_PAIRS:
        assert low in FIELD_RANGES and high in FIELD_RANGES
    for preset in ("progeny_selfie", "selfie", "progeny_document", "document"):
        policy = Policy.named(preset)
        assert policy_problems(policy) == []
        assert Policy.from_mapping(policy.to_dict()) == policy


def test_the_policies_the_test_suite_builds_are_valid() -> None:
    base = Policy()
    dataclasses.replace(base, check_face=False, check_sharpness=False, check_exposure=False)
    dataclasses.replace(base, min_face_highlight_luma=0.0, min_brightness=0.0, max_underexposed_fraction=1.0,
                        max_face_shadow_luma=255.0, max_brightness=255.0, max_overexposed_fraction=1.0)
    dataclasses.replace(base, max_yaw_deg=10.0)
    dataclasses.replace(base, max_file_bytes=60_000)
    dataclasses.replace(base, max_file_bytes=10_000_000)
    assert dataclasses.replace(base, min_face_size_px=300).min_face_size_px == 300  # an int for a float field


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"min_side_px": -5}, "'min_side_px' must be >= 1, got -5"),
        ({"max_side_px": 0}, "'max_side_px' must be >= 1, got 0"),
        ({"min_jpeg_quality": 500}, "'min_jpeg_quality' must be 0..100, got 500"),
        ({"min_jpeg_quality": -1}, "'min_jpeg_quality' must be 0..100"),
        ({"max_file_bytes": 0}, "'max_file_bytes' must be >= 1"),
        ({"recommended_max_height_px": 0}, "'recommended_max_height_px' must be >= 1"),
        ({"max_decode_pixels": 0}, "'max_decode_pixels' must be >= 1"),
        ({"min_face_size_px": 0.0}, "'min_face_size_px' must be > 0"),
        ({"min_eye_distance_px": -85.0}, "'min_eye_distance_px' must be > 0"),
        ({"max_yaw_deg": 181.0}, "'max_yaw_deg' must be 0..180"),
        ({"max_pitch_deg": -1.0}, "'max_pitch_deg' must be 0..180"),
        ({"max_roll_deg": math.nan}, "'max_roll_deg' must be a finite number (0..180)"),
        ({"min_face_detection_confidence": 1.5}, "'min_face_detection_confidence' must be 0..1"),
        ({"multiple_faces_error_ratio": 2.0}, "'multiple_faces_error_ratio' must be 0..1"),
        ({"max_face_cut_off_fraction": -0.1}, "'max_face_cut_off_fraction' must be 0..1"),
        ({"min_sharpness": -0.1}, "'min_sharpness' must be >= 0"),
        ({"min_brightness": 300.0}, "'min_brightness' must be 0..255"),
        ({"max_face_shadow_luma": -1.0}, "'max_face_shadow_luma' must be 0..255"),
        ({"max_overexposed_fraction": 1.01}, "'max_overexposed_fraction' must be 0..1"),
        ({"max_face_tone_gamma": math.inf}, "'max_face_tone_gamma' must be a finite number (>= 0)"),
        ({"max_lighting_asymmetry": 1.5}, "'max_lighting_asymmetry' must be 0..1"),
        ({"max_eye_closed_score": 2.0}, "'max_eye_closed_score' must be 0..1"),
        ({"max_sunglasses_score": -0.5}, "'max_sunglasses_score' must be 0..1"),
        ({"max_colourfulness_for_grayscale": -2.0}, "'max_colourfulness_for_grayscale' must be >= 0"),
        ({"max_glare_fraction": 5.0}, "'max_glare_fraction' must be 0..1"),
        # pairs the wrong way round
        ({"min_side_px": 5000}, "'min_side_px' (5000) must not be above 'max_side_px' (4096)"),
        ({"min_side_px": 2000, "max_side_px": 1000, "recommended_max_height_px": 3000},
         "'min_side_px' (2000) must not be above 'max_side_px' (1000)"),
        ({"multiple_faces_ignore_ratio": 0.8}, "'multiple_faces_ignore_ratio' (0.8) must not be above "
                                               "'multiple_faces_error_ratio' (0.5)"),
        ({"min_brightness": 220.0}, "'min_brightness' (220.0) must not be above 'max_brightness' (210.0)"),
        ({"min_face_tone_gamma": 2.0}, "'min_face_tone_gamma' (2.0) must not be above 'max_face_tone_gamma'"),
        ({"max_decode_pixels": 1000}, "'max_decode_pixels' (1000) must be at least min_side_px squared (230400)"),
        # types
        ({"check_face": 1}, "'check_face' must be true or false"),
        ({"max_file_bytes": 1.5}, "'max_file_bytes' must be a whole number (>= 1), got 1.5"),
        ({"max_file_bytes": True}, "'max_file_bytes' must be a whole number"),
        ({"min_face_size_px": "3"}, "'min_face_size_px' must be a finite number (> 0), got '3'"),
        ({"allowed_formats": ()}, "'allowed_formats' must be a non-empty list"),
        ({"name": ""}, "'name' must be a non-empty string"),
    ],
)
def test_invalid_values_raise_a_policy_error_naming_field_and_range(changes: dict[str, Any], expected: str) -> None:
    with pytest.raises(preflight.PolicyError) as exc:
        dataclasses.replace(Policy(), **changes)
    assert expected in str(exc.value)
    with pytest.raises(preflight.PolicyError):
        Policy(**changes)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(preflight.PolicyError) as exc:
        Policy(min_side_px=-5, max_side_px=0, min_jpeg_quality=500)
    message = str(exc.value)
    for name in ("min_side_px", "max_side_px", "min_jpeg_quality"):
        assert name in message


@pytest.mark.parametrize(
    "changes",
    [
        {"min_jpeg_quality": 0}, {"min_jpeg_quality": 100},
        {"max_yaw_deg": 0.0, "max_pitch_deg": 180.0, "max_roll_deg": 180},
        {"max_glare_fraction": 0.0, "max_face_cut_off_fraction": 1.0, "min_face_detection_confidence": 1.0},
        {"min_side_px": 4096, "recommended_max_height_px": 4096},  # min == max is fine
        {"multiple_faces_ignore_ratio": 0.5},
        {"min_face_tone_gamma": 0.0, "min_sharpness": 0.0, "max_colourfulness_for_grayscale": 0.0},
        {"min_side_px": 1, "max_side_px": 1, "max_decode_pixels": 1},
        {"min_side_px": 1200},  # above the recommended height: that one only warns
    ],
)
def test_boundary_values_are_accepted(changes: dict[str, Any]) -> None:
    policy = dataclasses.replace(Policy(), **changes)
    assert policy_problems(policy) == []


def test_whole_numbers_written_as_floats_are_accepted_as_ints() -> None:
    policy = dataclasses.replace(Policy(), max_file_bytes=2e6, max_side_px=4096.0)
    assert policy.max_file_bytes == 2_000_000 and type(policy.max_file_bytes) is int
    assert type(policy.max_side_px) is int


def test_policy_files_take_whole_floats_and_format_aliases(tmp_path: Path) -> None:
    # the constructor took 2e6 but a policy file did not ("must be a whole number")
    path = tmp_path / "p.toml"
    path.write_text('max_file_bytes = 2e6\nmin_side_px = 480.0\nallowed_formats = ["jpg", " png ", "heic"]\n')
    policy = Policy.from_toml(path)
    assert (policy.max_file_bytes, policy.min_side_px) == (2_000_000, 480) and type(policy.min_side_px) is int
    assert policy.allowed_formats == ("JPEG", "PNG", "HEIF")
    path.write_text("min_side_px = 480.5\n")
    with pytest.raises(preflight.PolicyError, match="must be a whole number"):
        Policy.from_toml(path)


def test_an_unknown_format_name_is_refused() -> None:
    # a typo used to fail every photo as UNSUPPORTED_FORMAT, with the hint "Save the photo as JPEG or PNG"
    with pytest.raises(preflight.PolicyError, match=r"unknown format.*'BANANA'.*known: JPEG, PNG"):
        Policy.from_mapping({"allowed_formats": ["JPEG", "banana"]})


def test_every_format_the_loader_names_is_known() -> None:
    import io

    from PIL import Image

    from preflight.conform import SUFFIXES
    from preflight.loading import sniff_format
    from preflight.policy import KNOWN_FORMATS

    for fmt in ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM", "ICO"):
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buffer, fmt)
        assert sniff_format(buffer.getvalue()) == fmt and fmt in KNOWN_FORMATS
        assert SUFFIXES[fmt][0].startswith(".")  # and conform can name such a file


def test_a_jpeg_xl_file_is_named_as_such() -> None:
    # JPEG XL (bare codestream and ISO-BMFF container): a format conform knew by its suffix but the
    # loader called "unknown"; now one table serves both
    from preflight.loading import sniff_format

    codestream = b"\xff\x0a\xfa\x7f\x01\x90\x08\x06\x01\x00" + bytes(22)
    container = b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(20)
    assert sniff_format(codestream) == sniff_format(container) == "JXL"
    report = preflight.check(codestream)
    assert not report.passed
    issue = next(i for i in report.issues if i.code == "UNSUPPORTED_FORMAT")
    assert issue.measured == "JXL"
    assert Policy.from_mapping({"allowed_formats": ["JPEG", "JXL"]}).allowed_formats == ("JPEG", "JXL")


def test_from_toml_rejects_nonsensical_values_with_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "nonsense.toml"
    path.write_text("min_side_px = -5\nmax_side_px = 0\nmin_jpeg_quality = 500\n")
    with pytest.raises(preflight.PolicyError) as exc:
        Policy.from_toml(path)
    message = str(exc.value)
    assert str(path) in message
    assert "'min_side_px' must be >= 1" in message and "'min_jpeg_quality' must be 0..100" in message
    huge = tmp_path / "huge.toml"
    huge.write_text("min_face_size_px = 1" + "0" * 400 + "\nmin_side_px = 1" + "0" * 400 + "\n")
    with pytest.raises(preflight.PolicyError, match="min_face_size_px"):
        Policy.from_toml(huge)


def test_from_toml_base_must_be_a_preset_name(tmp_path: Path) -> None:
    path = tmp_path / "base.toml"
    path.write_text('base = ["progeny_document"]\n')
    with pytest.raises(preflight.PolicyError, match="base must be a preset name"):
        Policy.from_toml(path)


def test_from_toml_turns_unreadable_files_into_policy_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_utf8 = tmp_path / "latin1.toml"
    not_utf8.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(preflight.PolicyError, match="not UTF-8"):
        Policy.from_toml(not_utf8)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(preflight.PolicyError, match="is a directory"):
        Policy.from_toml(folder)

    def no_permission(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(args[0]))

    readable = tmp_path / "ok.toml"
    readable.write_text("max_yaw_deg = 10\n")
    monkeypatch.setattr("preflight.policy.open", no_permission, raising=False)  # the tests run as root
    with pytest.raises(preflight.PolicyError, match=r"cannot read policy file .*Permission denied"):
        Policy.from_toml(readable)


def test_cli_exits_2_on_nonsensical_policy_values(tmp_path: Path, samples: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nonsense.toml"
    path.write_text("min_side_px = -5\nmax_side_px = 0\nmin_jpeg_quality = 500\n")
    for command in (["check", str(samples / "biden.jpg")],
                    ["fix", str(samples / "biden.jpg"), "-o", str(tmp_path / "fixed.jpg")],
                    ["annotate", str(samples / "biden.jpg"), "-o", str(tmp_path / "a.png")],
                    ["screen", str(samples / "biden.jpg"), "--out", str(tmp_path / "r.csv"), "--workers", "1"]):
        assert main([*command, "--policy", str(path)]) == 2, command
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("preflight: policy file ")
        assert "'min_jpeg_quality' must be 0..100, got 500" in lines[0]
    assert not list(tmp_path.glob("fixed.jpg")) and not list(tmp_path.glob("a.png"))
    assert not list(tmp_path.glob("r.csv"))
