"""The public API: sources, policy, report shape, errors."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image

import preflight
from preflight import codes as C

from ._images import encode, gradient


def test_public_names():
    for name in ("check", "Gate", "Policy", "Report", "Issue", "Measurements", "PreflightError"):
        assert hasattr(preflight, name)


def test_same_verdict_for_path_bytes_and_file(file_gate, samples):
    path = samples / "rocket.jpg"
    data = path.read_bytes()
    by_path = file_gate.check(path)
    by_str = file_gate.check(str(path))
    by_bytes = file_gate.check(data)
    with open(path, "rb") as fh:
        by_file = file_gate.check(fh)
    by_stream = file_gate.check(io.BytesIO(data))
    for other in (by_str, by_bytes, by_file, by_stream):
        assert other.issues == by_path.issues
        assert other.measurements == by_path.measurements
    assert by_file.source == str(path)


def test_decoded_inputs_report_file_rules_as_not_checked(file_gate, samples):
    rgb = np.asarray(Image.open(samples / "rocket.jpg").convert("RGB"))
    report = file_gate.check(rgb)
    assert report.measurements.file_bytes is None and report.measurements.format is None
    assert {"FILE_TOO_LARGE", "UNSUPPORTED_FORMAT", "JPEG_QUALITY_TOO_LOW"} <= set(report.not_checked)
    assert C.RESOLUTION_TOO_LOW in report.codes  # pixel-level rules still apply
    assert (report.measurements.width, report.measurements.height) == (640, 427)


def test_pil_image_input(file_gate, samples):
    with Image.open(samples / "obama.jpg") as pil:
        report = file_gate.check(pil)
    assert report.measurements.format == "JPEG"
    assert report.measurements.jpeg_quality == 93
    assert "FILE_TOO_LARGE" in report.not_checked


def test_grayscale_and_rgba_arrays(file_gate):
    gray = gradient(600, 600)[:, :, 0]
    assert file_gate.check(gray).measurements.width == 600
    rgba = np.dstack([gradient(600, 600), np.full((600, 600), 255, np.uint8)])
    assert file_gate.check(rgba).measurements.height == 600


@pytest.mark.parametrize("bad", [np.zeros((10, 10, 3), np.float32), np.zeros((10, 10, 5), np.uint8), 42, "x" * 0])
def test_programmer_errors_raise_preflight_errors(file_gate, bad):
    with pytest.raises(preflight.PreflightError):
        file_gate.check(bad)


def test_missing_path_raises(file_gate, tmp_path):
    with pytest.raises(preflight.SourceNotFoundError):
        file_gate.check(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError, for except clauses people write
        file_gate.check(str(tmp_path / "nope.jpg"))


def test_text_stream_is_rejected(file_gate):
    with pytest.raises(preflight.InvalidSourceError):
        file_gate.check(io.StringIO("not bytes"))


def test_policy_defaults_are_the_documented_rules():
    p = preflight.Policy()
    assert p == preflight.Policy.progeny_selfie()
    assert (p.max_file_bytes, p.min_side_px, p.max_side_px, p.recommended_max_height_px) == (
        2_000_000, 480, 4096, 1080)
    assert (p.min_jpeg_quality, p.min_face_size_px, p.min_eye_distance_px) == (70, 224, 85)
    assert (p.max_pitch_deg, p.max_yaw_deg, p.max_roll_deg) == (25, 25, 35)
    assert p.allowed_formats == ("JPEG", "PNG")
    doc = preflight.Policy.progeny_document()
    assert not doc.check_face and doc.check_glare and doc != p
    assert dataclasses.replace(p, min_face_size_px=300).min_face_size_px == 300
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.min_face_size_px = 1  # type: ignore[misc]


def test_policy_from_toml(tmp_path, file_gate):
    path = tmp_path / "strict.toml"
    path.write_text('name = "strict"\nmax_file_bytes = 1000\nmin_jpeg_quality = 80\nmax_yaw_deg = 10\n')
    policy = preflight.Policy.from_toml(path)
    assert (policy.name, policy.max_file_bytes, policy.min_jpeg_quality, policy.max_yaw_deg) == (
        "strict", 1000, 80, 10.0)
    assert isinstance(policy.max_yaw_deg, float)
    report = file_gate.check(encode(gradient(600, 600), "JPEG", quality=75), policy=policy)
    assert {C.FILE_TOO_LARGE, C.JPEG_QUALITY_TOO_LOW} <= report.codes
    assert report.policy == "strict"


def test_policy_toml_base_preset(tmp_path):
    path = tmp_path / "doc.toml"
    path.write_text('base = "progeny_document"\nmax_glare_fraction = 0.05\n')
    policy = preflight.Policy.from_toml(path)
    assert not policy.check_face and policy.max_glare_fraction == 0.05


@pytest.mark.parametrize("text", ["unknown_key = 1", "max_file_bytes = 'big'", "check_face = 1",
                                  "max_file_bytes = 1.5", "this is not toml"])
def test_invalid_policy_files(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(preflight.PolicyError):
        preflight.Policy.from_toml(path)


def test_policy_round_trips_through_to_dict():
    p = preflight.Policy.progeny_document()
    assert preflight.Policy.from_mapping(p.to_dict()) == p


def test_report_shape(file_gate, samples):
    report = file_gate.check(samples / "rocket.jpg")
    d = report.to_dict()
    assert d["passed"] is False
    assert d["issues"] == {"preflight": {C.RESOLUTION_TOO_LOW: report.api_issues()[C.RESOLUTION_TOO_LOW]}}
    detail = d["details"][0]
    assert set(detail) == {"code", "severity", "message", "hint", "measured", "limit"}
    assert d["measurements"]["width"] == 640
    assert json.loads(report.to_json()) == json.loads(json.dumps(d))
    assert report.codes == frozenset({C.RESOLUTION_TOO_LOW})
    assert report.errors and not report.warnings


def test_passing_report_has_no_issue_section(file_gate):
    report = file_gate.check(encode(gradient(800, 800), "PNG"))
    assert report.passed
    assert report.to_dict()["issues"] == {}


def test_warnings_do_not_fail(file_gate, samples):
    report = file_gate.check(samples / "biden.jpg")
    assert report.codes == {C.HEIGHT_ABOVE_RECOMMENDED}
    assert report.passed and report.warnings and not report.errors


def test_issue_values_are_json_plain():
    issue = preflight.Issue.make(C.FACE_TOO_SMALL, "small", measured=np.float32(123.456), limit=224.0)
    d = issue.to_dict()
    assert d["measured"] == pytest.approx(123.456, abs=1e-3) and type(d["measured"]) is float
    assert d["severity"] == "error" and d["hint"] == "Move closer to the camera."


def test_every_code_has_a_hint_in_every_locale():
    from preflight import guidance

    assert {"en", "de"} <= set(guidance.available_locales())
    for locale in guidance.available_locales():
        cat = guidance.catalogue(locale)
        assert set(C.ALL_CODES) <= set(cat), locale
    assert guidance.hint(C.FACE_TOO_SMALL, "de_DE") == "Gehen Sie näher an die Kamera heran."
    assert guidance.hint(C.FACE_TOO_SMALL, "fr") == guidance.hint(C.FACE_TOO_SMALL, "en")


def test_report_dict_in_a_locale():
    issues = (preflight.Issue.make(C.FACE_TOO_SMALL, "small"), preflight.Issue.make(C.IMAGE_BLURRY, "blurry"))
    report = preflight.Report(issues=issues, measurements=preflight.Measurements())
    english = report.to_dict()
    assert "locale" not in english and english["hints"] == report.hints()
    for asked in ("de", "de-AT", "de_DE"):
        german = report.to_dict(asked)
        assert german["locale"] == "de" and german["hints"] == report.hints("de")
        assert [d["hint"] for d in german["details"]] == [preflight.guidance.hint(i.code, "de") for i in issues]
        assert german["details"][0]["hint"] != english["details"][0]["hint"]
    assert report.to_dict("xx")["locale"] == "en"
    assert json.loads(report.to_json(locale="de", indent=1))["locale"] == "de"


def test_hints_are_ordered_by_what_to_fix_first():
    issues = [preflight.Issue.make(c, c) for c in (C.IMAGE_BLURRY, C.EXIF_ROTATED, C.IMAGE_TOO_DARK)]
    report = preflight.Report(issues=tuple(issues), measurements=preflight.Measurements())
    hints = report.hints()
    assert hints[0].startswith("Find better light") and hints[1].startswith("Hold still")
    assert hints[-1] == preflight.guidance.hint(C.EXIF_ROTATED)


def test_closed_gate_refuses_face_checks():
    gate = preflight.Gate()
    gate.close()
    with pytest.raises(RuntimeError):
        _ = gate.analyzer


def test_load_model_warms_up_a_gate_quietly(capfd):
    # the command line, screening workers and the service's workers load the model this way
    with preflight.Gate() as gate:
        assert not gate.model_loaded
        capfd.readouterr()
        gate.load_model(quiet=True)
        assert gate.model_loaded
        assert capfd.readouterr().err == ""  # MediaPipe's start-up lines kept off fd 2
        analyzer = gate.analyzer
        gate.load_model()
        assert gate.analyzer is analyzer  # loaded once
