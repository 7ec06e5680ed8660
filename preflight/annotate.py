"""Draw what the gate measured on the photo, so a person can see the problem.

The picture shows the face box, the iris centres and the eye-distance line with its length, the
head direction from the nose, a face-size bar against the policy minimum, and every issue code.
Line widths and text scale with the image, and the canvas is resized to 640..1600 px on its long
side, so the drawing stays readable on a 480 px thumbnail and on a 4000 px phone photo alike.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .gate import Gate
from .loading import Source, load, read_source
from .policy import Policy
from .report import Report

if TYPE_CHECKING:
    from .face import Face

#: Long side of the annotated picture is kept within these bounds (pixels).
MIN_CANVAS, MAX_CANVAS = 640, 1600
NOSE_TIP = 1

GREEN, RED, AMBER, WHITE, BLACK = (46, 204, 64), (230, 40, 40), (255, 160, 0), (255, 255, 255), (0, 0, 0)


def annotate(source: Source, report: Report | None = None, *, gate: Gate | None = None,
             policy: Policy | None = None) -> Image.Image:
    """An RGB picture of ``source`` with the measurements and issues of ``report`` drawn on it.

    ``report`` is computed when not given. The face landmarks are detected again for drawing
    (the report keeps numbers, not the 478 landmarks).
    """
    own_gate = gate is None
    gate = gate or Gate(policy)
    try:
        policy = policy or gate.policy
        data, decoded, name = read_source(source)  # read once: a stream cannot be read twice
        src = data if data is not None else decoded
        image = load(src, policy, name=name)
        if report is None:
            report = gate.check(src, policy=policy, name=name)
        if image.rgb is None:
            return _placeholder(report)
        faces: list[Face] = gate.analyzer.detect(image.rgb) if policy.check_face else []
        return _draw(image.rgb, faces, report, policy)
    finally:
        if own_gate:
            gate.close()


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _draw(rgb: np.ndarray, faces: list[Face], report: Report, policy: Policy) -> Image.Image:
    height, width = rgb.shape[:2]
    longest = max(width, height)
    scale = min(max(1.0, MIN_CANVAS / longest), MAX_CANVAS / longest)
    canvas = Image.fromarray(rgb)
    if scale != 1.0:
        canvas = canvas.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                               Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(canvas, "RGBA")
    unit = max(canvas.width, canvas.height) / 800.0
    line = max(2, round(2 * unit))
    font = _font(max(12, round(16 * unit)))
    small = _font(max(11, round(13 * unit)))
    m = report.measurements
    face_codes = {"FACE_TOO_SMALL", "FACE_CUT_OFF", "EYE_DISTANCE_TOO_SMALL", "PITCH_TOO_LARGE", "YAW_TOO_LARGE",
                  "ROLL_TOO_LARGE", "IMAGE_TURNED", "MULTIPLE_FACES"}

    for index, face in enumerate(faces):
        x0, y0, x1, y1 = (v * scale for v in face.extent)
        if index > 0:  # other faces: thin, dashed-looking outline
            draw.rectangle((x0, y0, x1, y1), outline=AMBER, width=max(1, line // 2))
            continue
        colour = RED if report.codes & face_codes else GREEN
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)

        # eyes and the eye-distance line
        a = face.right_iris * scale
        b = face.left_iris * scale
        r = max(3.0, 3 * unit)
        for p in (a, b):
            draw.ellipse((p[0] - r, p[1] - r, p[0] + r, p[1] + r), outline=WHITE, fill=colour, width=1)
        eye_ok = m.eye_distance_px is None or m.eye_distance_px >= policy.min_eye_distance_px
        draw.line((a[0], a[1], b[0], b[1]), fill=GREEN if eye_ok else RED, width=max(1, line // 2))
        if m.eye_distance_px is not None:
            mid = ((a[0] + b[0]) / 2, min(a[1], b[1]) - 4 * r)
            _label(draw, mid, f"{m.eye_distance_px:.0f} px (min {policy.min_eye_distance_px:.0f})", small,
                   GREEN if eye_ok else RED, anchor="ms")

        # head direction from the nose tip: where the face points, by yaw and pitch
        nose = face.xy[NOSE_TIP] * scale
        if m.yaw_deg is not None and m.pitch_deg is not None:
            length = (x1 - x0) * 0.45
            tip = (nose[0] + length * math.sin(math.radians(m.yaw_deg)),
                   nose[1] - length * math.sin(math.radians(m.pitch_deg)))
            pose_ok = not report.codes & {"PITCH_TOO_LARGE", "YAW_TOO_LARGE", "ROLL_TOO_LARGE", "IMAGE_TURNED"}
            draw.line((nose[0], nose[1], tip[0], tip[1]), fill=(60, 140, 255), width=line)
            draw.ellipse((tip[0] - r, tip[1] - r, tip[0] + r, tip[1] + r), fill=(60, 140, 255))
            text = f"pitch {m.pitch_deg:+.0f}  yaw {m.yaw_deg:+.0f}  roll {(m.roll_deg or 0):+.0f} deg"
            _label(draw, (x0, y1 + 4 * unit), text, small, GREEN if pose_ok else RED, anchor="la")

        # face-size bar against the minimum, under the box
        if m.face_size_px is not None:
            bar_y = y1 + 26 * unit
            size_px = m.face_size_px * scale
            limit_px = policy.min_face_size_px * scale
            ok = m.face_size_px >= policy.min_face_size_px
            draw.rectangle((x0, bar_y, x0 + size_px, bar_y + 6 * unit), fill=GREEN if ok else RED)
            draw.line((x0 + limit_px, bar_y - 4 * unit, x0 + limit_px, bar_y + 10 * unit), fill=WHITE, width=line)
            _label(draw, (x0, bar_y + 10 * unit),
                   f"face {m.face_size_px:.0f} px (min {policy.min_face_size_px:.0f})", small,
                   GREEN if ok else RED, anchor="la")

    # the verdict and the issue codes, top left
    lines = [("PASS" if report.passed else "FAIL", GREEN if report.passed else RED)]
    for issue in sorted(report.issues, key=lambda i: i.severity != "error"):
        lines.append((f"{issue.code}", RED if issue.severity == "error" else AMBER))
    y = 6 * unit
    for text, colour in lines:
        box = draw.textbbox((8 * unit, y), text, font=font)
        draw.rectangle((box[0] - 4 * unit, box[1] - 2 * unit, box[2] + 4 * unit, box[3] + 2 * unit),
                       fill=(0, 0, 0, 170))
        draw.text((8 * unit, y), text, font=font, fill=colour)
        y = box[3] + 6 * unit
    return canvas


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
           font: ImageFont.FreeTypeFont | ImageFont.ImageFont, colour: tuple[int, int, int], *, anchor: str) -> None:
    box = draw.textbbox(xy, text, font=font, anchor=anchor)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0, 160))
    draw.text(xy, text, font=font, fill=colour, anchor=anchor)


def _placeholder(report: Report) -> Image.Image:
    """A card for images that cannot be decoded: the codes, no picture."""
    canvas = Image.new("RGB", (MIN_CANVAS, MIN_CANVAS // 2), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    font = _font(22)
    y = 20
    for text in ["FAIL" if not report.passed else "PASS", *sorted(report.codes)]:
        draw.text((20, y), text, font=font, fill=RED if text == "FAIL" else WHITE)
        y += 32
    return canvas
