"""Pixel and face analysis of a decoded image: measure, then judge against the policy.

Contract used by :mod:`preflight.gate`: :func:`analyse` takes the oriented RGB image, the policy
and the shared :class:`~preflight.face.FaceAnalyzer` (or ``None`` when the policy needs no face),
and returns the measurement fields, the issues and the rules it could not evaluate.

The measurements themselves are the pure functions of :mod:`preflight.measures`; this module
decides *where* they are measured (the primary face, the face region, the whole image) and turns
them into :class:`~preflight.report.Issue` objects. Thresholds and their calibration:
``docs/accuracy.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import codes as C
from . import measures as M
from .codes import Severity
from .report import Issue

if TYPE_CHECKING:
    from .face import Face, FaceAnalyzer
    from .policy import Policy

#: Codes that need a face; reported as not checked when there is none.
FACE_CODES: tuple[str, ...] = (
    C.MULTIPLE_FACES, C.FACE_TOO_SMALL, C.FACE_CUT_OFF, C.EYE_DISTANCE_TOO_SMALL,
    C.PITCH_TOO_LARGE, C.YAW_TOO_LARGE, C.ROLL_TOO_LARGE, C.IMAGE_TURNED, C.EYES_CLOSED, C.SUNGLASSES,
    C.IMAGE_BLURRY, C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT, C.UNEVEN_LIGHTING,
)
#: Two detections whose boxes overlap more than this are the same face seen twice.
DUPLICATE_IOU = 0.3
#: Documents: whole-image measurements are taken on a copy whose longer side is this long.
DOCUMENT_MAX_SIDE_PX = 1024


@dataclass
class PixelResult:
    fields: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)


def analyse(rgb: np.ndarray, policy: Policy, analyzer: FaceAnalyzer | None) -> PixelResult:
    """Measure the face and pixel quality of ``rgb`` and judge them against ``policy``."""
    out = PixelResult()
    _grayscale(rgb, policy, out)
    if analyzer is None:
        if policy.check_face:
            for code in (C.FACE_NOT_FOUND, *FACE_CODES):
                out.not_checked[code] = "no face analyser was given"
        else:
            _whole_image(rgb, policy, out)
        return out

    faces = distinct_faces(analyzer.detect(rgb))
    out.fields["face_count"] = len(faces)
    if not faces:
        out.issues.append(Issue.make(C.FACE_NOT_FOUND, "no face was found in the image"))
        for code in FACE_CODES:
            out.not_checked[code] = "no face found"
        return out
    _face(rgb, faces, policy, analyzer, out)
    return out


def distinct_faces(faces: list[Face]) -> list[Face]:
    """Drop detections that overlap a larger face (MediaPipe occasionally reports a face twice)."""
    kept: list[Face] = []
    for face in faces:  # largest first
        box = M.landmark_extent(face.landmarks)
        if all(M.box_iou(box, M.landmark_extent(k.landmarks)) <= DUPLICATE_IOU for k in kept):
            kept.append(face)
    return kept


# -- whole image ---------------------------------------------------------------------------------

def _grayscale(rgb: np.ndarray, policy: Policy, out: PixelResult) -> None:
    colour = M.colourfulness(rgb)
    out.fields["colourfulness"] = colour
    if colour < policy.max_colourfulness_for_grayscale:
        out.issues.append(Issue.make(
            C.GRAYSCALE_IMAGE,
            f"the image has no colour (colourfulness {colour:.2f}; a colour photo has at least "
            f"{policy.max_colourfulness_for_grayscale:g})",
            measured=round(colour, 3), limit=policy.max_colourfulness_for_grayscale,
        ))


def _whole_image(rgb: np.ndarray, policy: Policy, out: PixelResult) -> None:
    """No face (documents): measure sharpness and exposure on the whole image, and glare."""
    gray = M.downsample_gray(rgb, DOCUMENT_MAX_SIDE_PX)
    reason = "thresholds are calibrated on faces only; measured, not judged, without a face"
    if policy.check_sharpness:
        out.fields["sharpness"] = M.sharpness(gray.astype(np.float32))
        out.not_checked[C.IMAGE_BLURRY] = reason
    if policy.check_exposure:
        exp = M.exposure(gray)
        if exp is not None:
            out.fields.update(brightness=exp.brightness, underexposed_fraction=exp.underexposed_fraction,
                              overexposed_fraction=exp.overexposed_fraction)
        out.not_checked[C.IMAGE_TOO_DARK] = reason
        out.not_checked[C.IMAGE_TOO_BRIGHT] = reason
    if policy.check_glare:
        glare = M.glare_fraction(gray)
        out.fields["glare_fraction"] = glare
        if glare > policy.max_glare_fraction:
            out.issues.append(Issue.make(
                C.GLARE,
                f"{glare:.1%} of the image is clipped to white in patches; at most "
                f"{policy.max_glare_fraction:.1%} is acceptable",
                measured=round(glare, 4), limit=policy.max_glare_fraction,
            ))


# -- the face ------------------------------------------------------------------------------------

def _face(rgb: np.ndarray, faces: list[Face], policy: Policy, analyzer: FaceAnalyzer,
          out: PixelResult) -> None:
    primary = faces[0]
    lm = primary.landmarks
    height, width = rgb.shape[:2]
    f = out.fields
    issues = out.issues

    size = M.face_size(lm)
    eyes = M.eye_distance(lm)
    cut = M.cut_off_fraction(lm, width, height)
    roll = M.roll_deg(lm)
    f.update(face_box=M.face_box(lm), face_size_px=size, eye_distance_px=eyes,
             face_cut_off_fraction=cut, roll_deg=roll)

    canonical = analyzer.canonical
    pitch: float | None
    yaw: float | None
    if canonical is not None:
        pose = M.head_pose(lm, canonical)
        pitch, yaw = pose.pitch_deg, pose.yaw_deg
        # frontal-equivalent eye distance: the fitted scale times the model's eye distance
        scale_px = pose.scale * canonical.eye_distance
    elif primary.matrix is not None:
        pitch, yaw, _ = M.angles_from_rotation(primary.matrix)
        scale_px = eyes
    else:
        pitch, yaw = None, None
        scale_px = eyes
        out.not_checked[C.PITCH_TOO_LARGE] = out.not_checked[C.YAW_TOO_LARGE] = "the model gives no head pose"
    f.update(pitch_deg=pitch, yaw_deg=yaw)

    # -- several faces
    if len(faces) > 1 and size > 0:
        ratio = M.face_size(faces[1].landmarks) / size
        f["second_face_ratio"] = ratio
        if ratio >= policy.multiple_faces_ignore_ratio:
            severity: Severity = "error" if ratio >= policy.multiple_faces_error_ratio else "warning"
            issues.append(Issue.make(
                C.MULTIPLE_FACES,
                f"{len(faces)} faces found; the second is {ratio:.0%} the size of the main face "
                f"(an error from {policy.multiple_faces_error_ratio:.0%}, ignored below "
                f"{policy.multiple_faces_ignore_ratio:.0%})",
                measured=round(ratio, 3), limit=policy.multiple_faces_error_ratio, severity=severity,
            ))

    # -- geometry
    if size < policy.min_face_size_px:
        issues.append(Issue.make(
            C.FACE_TOO_SMALL, f"the face is {size:.0f} px; at least {policy.min_face_size_px:g} px is needed",
            measured=round(size, 1), limit=policy.min_face_size_px,
        ))
    if cut > policy.max_face_cut_off_fraction:
        issues.append(Issue.make(
            C.FACE_CUT_OFF, f"{cut:.0%} of the face is outside the image",
            measured=round(cut, 3), limit=policy.max_face_cut_off_fraction,
        ))
    if eyes < policy.min_eye_distance_px:
        issues.append(Issue.make(
            C.EYE_DISTANCE_TOO_SMALL,
            f"the eyes are {eyes:.0f} px apart; at least {policy.min_eye_distance_px:g} px is needed",
            measured=round(eyes, 1), limit=policy.min_eye_distance_px,
        ))
    turned = abs(roll) > policy.min_turned_roll_deg
    if turned:
        how = "upside down" if abs(roll) > 135 else "on its side"
        issues.append(Issue.make(
            C.IMAGE_TURNED, f"the face is turned by {roll:+.0f} degrees: the photo is {how} (beyond "
            f"+-{policy.min_turned_roll_deg:g} degrees it is the photo that is turned, not the head)",
            measured=round(roll, 1), limit=policy.min_turned_roll_deg,
        ))
    for code, value, limit, what in (
        (C.PITCH_TOO_LARGE, pitch, policy.max_pitch_deg, "tilted up or down (pitch)"),
        (C.YAW_TOO_LARGE, yaw, policy.max_yaw_deg, "turned sideways (yaw)"),
        (C.ROLL_TOO_LARGE, None if turned else roll, policy.max_roll_deg, "tilted to the side (roll)"),
    ):
        if value is not None and abs(value) > limit:
            issues.append(Issue.make(
                code, f"the head is {what} by {value:+.0f} degrees; at most +-{limit:g} is accepted",
                measured=round(value, 1), limit=limit,
            ))

    # -- pixels of the face region
    crop = M.face_crop(rgb, lm, scale_px)
    if crop is None or int(crop.mask.sum()) < 64:
        for code in (C.IMAGE_BLURRY, C.IMAGE_TOO_DARK, C.IMAGE_TOO_BRIGHT, C.UNEVEN_LIGHTING, C.SUNGLASSES):
            out.not_checked[code] = "too little of the face is inside the image"
    else:
        _face_pixels(crop, lm, policy, out)

    # -- eyes
    left, right = M.eye_closed_scores(primary.blendshapes)
    f.update(left_eye_closed=left, right_eye_closed=right)
    hidden = any(i.code == C.SUNGLASSES for i in issues)
    scores = [s for s in (left, right) if s is not None]
    if hidden:
        out.not_checked[C.EYES_CLOSED] = "the eyes are hidden behind dark lenses"
    elif not scores:
        out.not_checked[C.EYES_CLOSED] = "the model gives no eye blendshapes"
    elif max(scores) > policy.max_eye_closed_score:
        which = "both eyes look" if min(scores) > policy.max_eye_closed_score else "an eye looks"
        issues.append(Issue.make(
            C.EYES_CLOSED, f"{which} closed (closure score {max(scores):.2f}, limit {policy.max_eye_closed_score:g})",
            measured=round(max(scores), 3), limit=policy.max_eye_closed_score,
        ))


def _face_pixels(crop: M.FaceCrop, lm: np.ndarray, policy: Policy, out: PixelResult) -> None:
    f = out.fields
    issues = out.issues
    if policy.check_sharpness:
        sharp = M.sharpness(crop.gray, crop.mask)
        f["sharpness"] = sharp
        if sharp is None:
            out.not_checked[C.IMAGE_BLURRY] = "the face region is too small or flat to judge"
        elif sharp < policy.min_sharpness:
            issues.append(Issue.make(
                C.IMAGE_BLURRY, f"the face is blurred (sharpness {sharp:.3f}; at least {policy.min_sharpness:g})",
                measured=round(sharp, 4), limit=policy.min_sharpness,
            ))
    if policy.check_exposure:
        inner = M.inner_face_mask(crop, lm)
        exp = M.exposure(crop.gray, inner)
        if exp is not None:
            f.update(brightness=exp.brightness, underexposed_fraction=exp.underexposed_fraction,
                     overexposed_fraction=exp.overexposed_fraction, face_highlight_luma=exp.highlight_luma,
                     face_shadow_luma=exp.shadow_luma)
            tone = M.tone(crop.gray, crop.rgb, inner)
            if tone is not None:
                f.update(face_contrast_stops=tone.contrast_stops, face_chroma_rg=tone.chroma_rg,
                         tone_gamma=tone.gamma)
            _exposure_rules(exp, tone, policy, out)
        else:
            out.not_checked[C.IMAGE_TOO_DARK] = out.not_checked[C.IMAGE_TOO_BRIGHT] = "no inner face region"
        asym = M.lighting_asymmetry(crop, lm)
        f["lighting_asymmetry"] = asym
        if asym is not None and asym > policy.max_lighting_asymmetry:
            issues.append(Issue.make(
                C.UNEVEN_LIGHTING,
                f"one side of the face is {asym:.0%} darker than the other (limit {policy.max_lighting_asymmetry:.0%})",
                measured=round(asym, 3), limit=policy.max_lighting_asymmetry,
            ))
    glasses = M.sunglasses_score(crop, lm)
    f["sunglasses_score"] = glasses
    if glasses is not None and glasses > policy.max_sunglasses_score:
        issues.append(Issue.make(
            C.SUNGLASSES,
            f"the eyes look hidden behind dark lenses (score {glasses:.2f}, limit {policy.max_sunglasses_score:g})",
            measured=round(glasses, 3), limit=policy.max_sunglasses_score,
            severity="error" if policy.sunglasses_is_error else "warning",
        ))


#: The tone-curve rules split at this mean face luma: a crushed tone curve only makes a face "too
#: dark" below it, a washed-out one only makes it "too bright" above it.
TONE_SPLIT_LUMA = 140.0


def _exposure_rules(exp: M.Exposure, tone: M.Tone | None, policy: Policy, out: PixelResult) -> None:
    # each reason carries (text, measured, limit); the first one found is the issue's value
    dark: list[tuple[str, float, float]] = []
    if exp.highlight_luma < policy.min_face_highlight_luma:
        dark.append((f"the brightest parts of the face reach only {exp.highlight_luma:.0f} "
                     f"(at least {policy.min_face_highlight_luma:g})",
                     exp.highlight_luma, policy.min_face_highlight_luma))
    if exp.brightness < policy.min_brightness:
        dark.append((f"mean face brightness {exp.brightness:.0f} (at least {policy.min_brightness:g})",
                     exp.brightness, policy.min_brightness))
    if exp.underexposed_fraction > policy.max_underexposed_fraction:
        dark.append((f"{exp.underexposed_fraction:.0%} of the face is black "
                     f"(at most {policy.max_underexposed_fraction:.0%})",
                     exp.underexposed_fraction, policy.max_underexposed_fraction))
    gamma = tone.gamma if tone is not None else None
    if gamma is not None and gamma > policy.max_face_tone_gamma and exp.brightness < TONE_SPLIT_LUMA:
        dark.append((f"the mid-tones are crushed: harsh contrast and deepened colour, as from a darkening "
                     f"tone curve or filter (tone gamma {gamma:.2f}, at most {policy.max_face_tone_gamma:g})",
                     gamma, policy.max_face_tone_gamma))
    if dark:
        out.issues.append(Issue.make(
            C.IMAGE_TOO_DARK, "the face is too dark: " + "; ".join(t for t, _, _ in dark),
            measured=round(dark[0][1], 3), limit=dark[0][2],
        ))
    bright: list[tuple[str, float, float]] = []
    if exp.overexposed_fraction > policy.max_overexposed_fraction:
        bright.append((f"{exp.overexposed_fraction:.0%} of the face is clipped to white "
                       f"(at most {policy.max_overexposed_fraction:.0%})",
                       exp.overexposed_fraction, policy.max_overexposed_fraction))
    if exp.shadow_luma > policy.max_face_shadow_luma:
        bright.append((f"even the darkest parts of the face are at {exp.shadow_luma:.0f} "
                       f"(at most {policy.max_face_shadow_luma:g})", exp.shadow_luma, policy.max_face_shadow_luma))
    if exp.brightness > policy.max_brightness:
        bright.append((f"mean face brightness {exp.brightness:.0f} (at most {policy.max_brightness:g})",
                       exp.brightness, policy.max_brightness))
    if gamma is not None and gamma < policy.min_face_tone_gamma and exp.brightness > TONE_SPLIT_LUMA:
        bright.append((f"the face looks washed out: flat contrast and faded colour, as from a brightening "
                       f"tone curve or filter (tone gamma {gamma:.2f}, at least {policy.min_face_tone_gamma:g})",
                       gamma, policy.min_face_tone_gamma))
    if bright:
        out.issues.append(Issue.make(
            C.IMAGE_TOO_BRIGHT, "the face is too bright: " + "; ".join(t for t, _, _ in bright),
            measured=round(bright[0][1], 3), limit=bright[0][2],
        ))
