"""The face and pixel rules through ``pixels.analyse`` and the public ``Gate``, on committed photos and
on degradations of known size made from them in the test."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

import preflight
from preflight import codes as C
from preflight import measures as M
from preflight import pixels
from preflight.face import Face, FaceAnalyzer
from preflight.policy import Policy

from . import _synth as S
from .conftest import read_sample

POLICY = Policy()


def _analyse(rgb: np.ndarray, analyzer: FaceAnalyzer, policy: Policy = POLICY) -> pixels.PixelResult:
    return pixels.analyse(np.ascontiguousarray(rgb), policy, analyzer)


def _codes(result: pixels.PixelResult) -> set[str]:
    return {i.code for i in result.issues}


def _face(analyzer: FaceAnalyzer, rgb: np.ndarray) -> Face:
    return analyzer.detect(rgb)[0]


# -- end to end on the committed samples ---------------------------------------------------------

EXPECTED = {
    # file: (passes, codes that must be present, codes that must be absent)
    "obama.jpg": (True, set(), {C.FACE_TOO_SMALL, C.IMAGE_BLURRY, C.FACE_CUT_OFF, C.MULTIPLE_FACES}),
    "obama2.jpg": (True, set(), {C.YAW_TOO_LARGE, C.IMAGE_BLURRY, C.MULTIPLE_FACES}),
    "obama_rgba.png": (True, set(), {C.IMAGE_BLURRY}),
    "biden.jpg": (True, {C.HEIGHT_ABOVE_RECOMMENDED}, {C.IMAGE_BLURRY, C.ROLL_TOO_LARGE}),
    "obama-1080p.jpg": (True, set(), {C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL}),
    "obama-720p.jpg": (False, {C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL}, {C.IMAGE_BLURRY}),
    "obama-480p.jpg": (False, {C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL}, {C.IMAGE_BLURRY}),
    "obama-240p.jpg": (False, {C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL, C.RESOLUTION_TOO_LOW}, {C.IMAGE_BLURRY}),
    "grace_hopper_512x512.jpg": (False, {C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL}, {C.IMAGE_BLURRY}),
    "astronaut.png": (False, {C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL}, {C.FACE_NOT_FOUND}),
    "obama_partial_face.jpg": (False, {C.FACE_CUT_OFF}, {C.FACE_NOT_FOUND}),
    "rocket.jpg": (False, {C.FACE_NOT_FOUND}, set(pixels.FACE_CODES)),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_committed_samples_end_to_end(face_gate: preflight.Gate, name: str) -> None:
    passes, present, absent = EXPECTED[name]
    report = face_gate.check(read_sample_path(name))
    assert report.passed is passes, report
    assert present <= report.codes, report
    assert not (absent & report.codes), report


def read_sample_path(name: str) -> str:
    from .conftest import SAMPLES

    return str(SAMPLES / name)


def test_one_shot_check_reports_face_measurements() -> None:
    report = preflight.check(read_sample_path("obama.jpg"))
    m = report.measurements
    assert m.face_count == 1
    assert m.face_size_px is not None and 200 < m.face_size_px < 270
    assert m.eye_distance_px is not None and 95 < m.eye_distance_px < 115
    assert m.face_box is not None and len(m.face_box) == 4
    assert all(v is not None for v in (m.pitch_deg, m.yaw_deg, m.roll_deg, m.sharpness, m.brightness,
                                       m.left_eye_closed, m.right_eye_closed))
    assert report.to_json()  # every field is JSON-friendly


def test_no_face_is_reported_once(face_gate: preflight.Gate) -> None:
    flat = np.full((720, 960, 3), (90, 140, 60), np.uint8)
    report = face_gate.check(flat)
    face_codes = report.codes & (set(pixels.FACE_CODES) | {C.FACE_NOT_FOUND})
    assert face_codes == {C.FACE_NOT_FOUND}
    assert report.not_checked.get(C.IMAGE_BLURRY) == "no face found"
    assert report.measurements.face_count == 0 and report.measurements.sharpness is None


def test_grayscale_is_judged_even_without_a_face(face_gate: preflight.Gate) -> None:
    report = face_gate.check(np.full((720, 960, 3), 128, np.uint8))
    assert {C.FACE_NOT_FOUND, C.GRAYSCALE_IMAGE} <= report.codes


# -- blur -----------------------------------------------------------------------------------------

def test_resolution_ladder_gives_comparable_sharpness(analyzer: FaceAnalyzer) -> None:
    values = {}
    for name in ("obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg", "obama-1080p.jpg"):
        values[name] = _analyse(read_sample(name), analyzer).fields["sharpness"]
    lo, hi = min(values.values()), max(values.values())
    assert lo > POLICY.min_sharpness * 1.5, values
    assert hi / lo < 1.15, values


@pytest.mark.parametrize("k", [0.04, 0.06])
def test_a_blurred_small_face_still_reads_blurred(analyzer: FaceAnalyzer, k: float) -> None:
    # the 240p photo (24 px between the eyes) is enlarged to the measuring scale: that must not
    # sharpen a blur back
    small = read_sample("obama-240p.jpg")
    eyes = M.eye_distance(_face(analyzer, small).landmarks)
    blurred = _analyse(cv2.GaussianBlur(small, (0, 0), k * eyes), analyzer)
    assert C.IMAGE_BLURRY in _codes(blurred), blurred.fields["sharpness"]


@pytest.mark.parametrize(("kind", "size"), [("gauss", 0.04), ("gauss", 0.06), ("motion", 0.20), ("motion", 0.30)])
def test_clear_blur_is_caught(analyzer: FaceAnalyzer, obama: np.ndarray, kind: str, size: float) -> None:
    ied = M.eye_distance(_face(analyzer, obama).landmarks)
    sharp = _analyse(obama, analyzer).fields["sharpness"]
    for angle in (0, 60, 90, 135):
        img = cv2.GaussianBlur(obama, (0, 0), size * ied) if kind == "gauss" else S.motion(obama, size * ied, angle)
        result = _analyse(img, analyzer)
        assert C.IMAGE_BLURRY in _codes(result), (kind, size, angle, result.fields["sharpness"])
        assert result.fields["sharpness"] < 0.5 * sharp
        if kind == "gauss":
            break


def test_sharpness_does_not_follow_exposure_or_compression(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    base = _analyse(obama, analyzer).fields["sharpness"]
    for img in (S.exposure(obama, -1.5), S.exposure(obama, 1.0)):
        assert _analyse(img, analyzer).fields["sharpness"] == pytest.approx(base, rel=0.1)
    ok, buf = cv2.imencode(".jpg", obama, [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    recompressed = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert _analyse(recompressed, analyzer).fields["sharpness"] == pytest.approx(base, rel=0.15)


# -- exposure and lighting ------------------------------------------------------------------------

def test_untouched_sample_is_well_exposed(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    result = _analyse(obama, analyzer)
    assert not (_codes(result) & {C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT, C.UNEVEN_LIGHTING})
    assert 100 < result.fields["brightness"] < 200


@pytest.mark.parametrize("ev", [-3.0, -4.0])
def test_underexposure_is_too_dark(analyzer: FaceAnalyzer, obama: np.ndarray, ev: float) -> None:
    assert C.IMAGE_TOO_DARK in _codes(_analyse(S.exposure(obama, ev), analyzer))


@pytest.mark.parametrize("ev", [2.0, 3.0])
def test_overexposure_is_too_bright(analyzer: FaceAnalyzer, obama: np.ndarray, ev: float) -> None:
    assert C.IMAGE_TOO_BRIGHT in _codes(_analyse(S.exposure(obama, ev), analyzer))


def test_tone_does_not_follow_exposure_but_follows_a_tone_curve(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    """Exposure multiplies the light (tone unchanged); a curve v**g multiplies contrast and chroma by g."""
    base = _analyse(obama, analyzer).fields
    assert 0.8 < base["tone_gamma"] < 1.3
    for ev in (-1.5, -1.0, 1.0):
        shifted = _analyse(S.exposure(obama, ev), analyzer).fields
        assert shifted["tone_gamma"] == pytest.approx(base["tone_gamma"], abs=0.06), ev
        assert shifted["face_chroma_rg"] == pytest.approx(base["face_chroma_rg"], abs=0.06), ev
    tones = []
    for g in (0.4, 0.67, 1.5, 2.5):
        curved = _analyse(S.gamma(obama, g), analyzer).fields
        assert curved["face_chroma_rg"] / base["face_chroma_rg"] == pytest.approx(g, rel=0.1), g
        contrast = curved["face_contrast_stops"] / base["face_contrast_stops"]
        if g <= 1.5:
            assert contrast == pytest.approx(g, rel=0.15), g
        else:  # the deepest shadows hit the 8-bit floor: the contrast grows less than g
            assert 1.6 < contrast < g, g
        tones.append(curved["tone_gamma"])
    assert tones == sorted(tones) and tones[0] < 0.5 * base["tone_gamma"] and tones[-1] > 1.8 * base["tone_gamma"]


@pytest.mark.parametrize(("g", "code"), [(2.5, C.IMAGE_TOO_DARK), (0.4, C.IMAGE_TOO_BRIGHT)])
def test_tone_curve_is_caught_by_its_own_reason(analyzer: FaceAnalyzer, obama: np.ndarray, g: float,
                                                 code: str) -> None:
    # with the luma rules out of the way, the tone-curve reason alone must fire
    only_tone = dataclasses.replace(POLICY, min_face_highlight_luma=0.0, min_brightness=0.0,
                                    max_underexposed_fraction=1.0, max_face_shadow_luma=255.0,
                                    max_brightness=255.0, max_overexposed_fraction=1.0)
    result = _analyse(S.gamma(obama, g), analyzer, only_tone)
    issue = next(i for i in result.issues if i.code == code)
    assert "tone curve" in issue.message
    assert issue.measured == pytest.approx(result.fields["tone_gamma"], abs=1e-3)
    assert not (_codes(_analyse(obama, analyzer, only_tone)) & {C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT})


@pytest.mark.parametrize(("name", "red", "blue"), [
    ("obama.jpg", 1.3, 0.7), ("obama.jpg", 1.6, 0.5), ("obama.jpg", 0.8, 1.3), ("obama2.jpg", 1.3, 0.7),
])
def test_colour_of_the_light_is_not_a_tone_curve(analyzer: FaceAnalyzer, name: str, red: float, blue: float) -> None:
    # warm indoor light raises the skin chroma like a crushing curve would; the contrast does not move
    rgb = read_sample(name)
    base = _analyse(rgb, analyzer).fields
    cast = _analyse(S.white_balance(rgb, red, blue), analyzer)
    assert cast.fields["face_contrast_stops"] == pytest.approx(base["face_contrast_stops"], abs=0.3)
    assert not (_codes(cast) & {C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT}), cast.issues


def test_grey_photo_has_no_tone_estimate(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    fields = _analyse(S.desaturate(obama), analyzer).fields
    assert fields["face_chroma_rg"] is None and fields["tone_gamma"] is None
    assert fields["face_contrast_stops"] > 0


def _face_mask(analyzer: FaceAnalyzer, rgb: np.ndarray) -> np.ndarray:
    face = _face(analyzer, rgb)
    outline = face.landmarks[list(M.FACE_OVAL), :2]
    return S.polygon_mask(rgb.shape, outline, feather=0.1 * M.eye_distance(face.landmarks))


def test_dark_background_is_fine_but_a_backlit_face_is_not(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    mask = _face_mask(analyzer, obama)
    dark_background = _analyse(S.relight(obama, mask, 0.0, -3.0), analyzer)
    assert not (_codes(dark_background) & {C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT})
    backlit = _analyse(S.relight(obama, mask, -3.0, 2.0), analyzer)
    assert C.IMAGE_TOO_DARK in _codes(backlit)


def test_one_side_in_shadow_is_uneven_lighting(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    face = _face(analyzer, obama)
    centre = float(face.landmarks[M.NOSE_BRIDGE, 0])
    shaded = _analyse(S.side_light(obama, centre, 0.5 * M.eye_distance(face.landmarks), -3.0), analyzer)
    assert C.UNEVEN_LIGHTING in _codes(shaded)
    issue = next(i for i in shaded.issues if i.code == C.UNEVEN_LIGHTING)
    assert issue.severity == "warning"
    assert shaded.fields["lighting_asymmetry"] > 2 * _analyse(obama, analyzer).fields["lighting_asymmetry"]


# -- colour ---------------------------------------------------------------------------------------

def test_desaturated_photo_is_grayscale(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    assert C.GRAYSCALE_IMAGE not in _codes(_analyse(obama, analyzer))
    gray = _analyse(S.desaturate(obama), analyzer)
    assert C.GRAYSCALE_IMAGE in _codes(gray)
    assert next(i for i in gray.issues if i.code == C.GRAYSCALE_IMAGE).severity == "warning"


# -- geometry rules -------------------------------------------------------------------------------

def test_cut_off_fraction_matches_the_crop(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    face = _face(analyzer, obama)
    x0, _, x1, _ = face.extent
    cut_x = round(x0 + 0.3 * (x1 - x0))  # keep the image from here on: about a quarter of the face is lost
    expected = M.cut_off_fraction(face.landmarks - np.array([cut_x, 0, 0], np.float32),
                                  obama.shape[1] - cut_x, obama.shape[0])
    result = _analyse(obama[:, cut_x:], analyzer)
    assert C.FACE_CUT_OFF in _codes(result)
    assert result.fields["face_cut_off_fraction"] == pytest.approx(expected, abs=0.05)
    assert 0.1 < expected < 0.4


def _collage(main: np.ndarray, other: np.ndarray, scale: float) -> np.ndarray:
    small = S.resize(other, scale)
    h = max(main.shape[0], small.shape[0])
    canvas = np.full((h, main.shape[1] + small.shape[1], 3), 200, np.uint8)
    canvas[: main.shape[0], : main.shape[1]] = main
    canvas[h - small.shape[0]:, main.shape[1]:] = small
    return canvas


def _two_faces(analyzer: FaceAnalyzer, obama: np.ndarray, scale: float) -> np.ndarray:
    """obama.jpg's face, cropped large, beside biden.jpg's face at ``scale`` times its size."""
    # MediaPipe's detector finds faces down to about a tenth of the image's longer side (see
    # docs/accuracy.md), so the main face is cropped large to leave room for a small second one
    x0, y0, x1, y1 = _face(analyzer, obama).extent
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.8 * max(x1 - x0, y1 - y0)
    main = obama[round(cy - half):round(cy + half), round(cx - half):round(cx + half)]
    other = read_sample("biden.jpg")[:1100]
    return _collage(main, other, scale * M.face_size(_face(analyzer, main).landmarks)
                    / M.face_size(_face(analyzer, other).landmarks))


@pytest.mark.parametrize(("scale", "severity"), [(0.9, "error"), (0.4, "warning")])
def test_second_face_by_relative_size(analyzer: FaceAnalyzer, obama: np.ndarray, scale: float,
                                      severity: str) -> None:
    result = _analyse(_two_faces(analyzer, obama, scale), analyzer)
    issues = [i for i in result.issues if i.code == C.MULTIPLE_FACES]
    assert result.fields["face_count"] == 2
    assert result.fields["second_face_ratio"] == pytest.approx(scale, abs=0.1)
    assert [i.severity for i in issues] == [severity]
    assert issues[0].limit == POLICY.multiple_faces_error_ratio  # the limit a photo must stay under


def test_a_second_face_below_the_ignore_ratio_is_not_reported(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    # the same 0.4 collage: seen, measured, but below a raised ignore ratio
    lenient = dataclasses.replace(POLICY, multiple_faces_ignore_ratio=0.5, multiple_faces_error_ratio=0.6)
    result = _analyse(_two_faces(analyzer, obama, 0.4), analyzer, lenient)
    assert result.fields["face_count"] == 2
    assert result.fields["second_face_ratio"] == pytest.approx(0.4, abs=0.1)
    assert C.MULTIPLE_FACES not in _codes(result)


def test_pose_limits_come_from_the_policy(analyzer: FaceAnalyzer) -> None:
    rgb = read_sample("obama2.jpg")  # yaw about -15 degrees
    assert C.YAW_TOO_LARGE not in _codes(_analyse(rgb, analyzer))
    strict = dataclasses.replace(POLICY, max_yaw_deg=10.0)
    result = _analyse(rgb, analyzer, strict)
    issue = next(i for i in result.issues if i.code == C.YAW_TOO_LARGE)
    assert issue.measured is not None and float(issue.measured) < -10 and issue.limit == 10.0


def test_pitch_beyond_the_limit(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    # a flat photo tilted top-away through a pinhole reads chin up (see test_geometry); its pitch is
    # about a third of the tilt, so the limit is lowered to what such a tilt reaches
    face = _face(analyzer, obama)
    cx, cy = face.xy.mean(axis=0)
    tilted = S.tilt(obama, 45.0, cx, cy, 3 * M.eye_distance(face.landmarks))
    strict = dataclasses.replace(POLICY, max_pitch_deg=8.0)
    assert C.PITCH_TOO_LARGE not in _codes(_analyse(obama, analyzer, strict))
    result = _analyse(tilted, analyzer, strict)
    issue = next(i for i in result.issues if i.code == C.PITCH_TOO_LARGE)
    assert issue.measured is not None and float(issue.measured) > 8 and issue.limit == 8.0
    assert issue.measured == pytest.approx(result.fields["pitch_deg"], abs=0.1)
    assert C.PITCH_TOO_LARGE not in _codes(_analyse(tilted, analyzer))  # within the default 25


def test_roll_beyond_the_limit(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    result = _analyse(S.rotate(obama, -45), analyzer)  # clockwise: the image-right eye drops
    assert C.ROLL_TOO_LARGE in _codes(result)
    assert result.fields["roll_deg"] == pytest.approx(45, abs=2)
    assert C.ROLL_TOO_LARGE not in _codes(_analyse(S.rotate(obama, -25), analyzer))


# -- eyes -----------------------------------------------------------------------------------------

class _Blink:
    """An analyser whose faces report the given eye blendshapes (to test the rule's wiring)."""

    def __init__(self, inner: FaceAnalyzer, left: float, right: float) -> None:
        self.inner, self.left, self.right = inner, left, right
        self.canonical = inner.canonical

    def detect(self, rgb: np.ndarray) -> list[Face]:
        faces = self.inner.detect(rgb)
        shapes = dict(faces[0].blendshapes, eyeBlinkLeft=self.left, eyeBlinkRight=self.right)
        return [dataclasses.replace(faces[0], blendshapes=shapes), *faces[1:]]


@pytest.mark.parametrize(("left", "right", "closed"), [(0.1, 0.1, False), (0.9, 0.1, True), (0.1, 0.8, True)])
def test_eyes_closed_rule(analyzer: FaceAnalyzer, obama: np.ndarray, left: float, right: float, closed: bool) -> None:
    result = pixels.analyse(obama, POLICY, _Blink(analyzer, left, right))  # type: ignore[arg-type]
    assert result.fields["left_eye_closed"] == left and result.fields["right_eye_closed"] == right
    assert (C.EYES_CLOSED in _codes(result)) is closed


def _sunglasses(analyzer: FaceAnalyzer, rgb: np.ndarray) -> np.ndarray:
    face = _face(analyzer, rgb)
    out = rgb.copy()
    ied = M.eye_distance(face.landmarks)
    for iris in (face.right_iris, face.left_iris):
        centre = (round(float(iris[0])), round(float(iris[1])))
        cv2.ellipse(out, centre, (round(0.42 * ied), round(0.3 * ied)), 0, 0, 360, (22, 24, 28), -1)
    y = round(float((face.right_iris[1] + face.left_iris[1]) / 2))
    cv2.line(out, (round(float(face.right_iris[0])), y), (round(float(face.left_iris[0])), y), (22, 24, 28),
             max(2, round(0.05 * ied)))
    return out


def test_painted_dark_lenses_are_sunglasses(analyzer: FaceAnalyzer, obama: np.ndarray) -> None:
    plain = _analyse(obama, analyzer)
    assert C.SUNGLASSES not in _codes(plain)
    result = _analyse(_sunglasses(analyzer, obama), analyzer)
    issue = next(i for i in result.issues if i.code == C.SUNGLASSES)
    assert issue.severity == "warning"
    assert C.EYES_CLOSED not in _codes(result)
    assert result.not_checked.get(C.EYES_CLOSED) == "the eyes are hidden behind dark lenses"


# -- documents and missing analyser ----------------------------------------------------------------

def test_document_policy_measures_the_whole_image_and_checks_glare() -> None:
    rng = np.random.default_rng(0)
    card = cv2.GaussianBlur(rng.integers(60, 200, (600, 900, 3), dtype=np.uint8), (0, 0), 1.0)
    card[100:200, 300:500] = 255  # a glare patch: 200x100 of 900x600 = 3.7 %
    result = pixels.analyse(card, Policy.progeny_document(), None)
    assert _codes(result) == {C.GLARE}
    assert result.fields["glare_fraction"] == pytest.approx(20000 / 540000, rel=0.05)
    assert result.fields["sharpness"] is not None and result.fields["brightness"] is not None
    assert C.IMAGE_BLURRY in result.not_checked


def test_face_policy_without_analyser_says_what_was_not_checked(obama: np.ndarray) -> None:
    result = pixels.analyse(obama, POLICY, None)
    assert not result.issues
    assert C.FACE_NOT_FOUND in result.not_checked and C.IMAGE_BLURRY in result.not_checked
