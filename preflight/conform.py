"""Repair what is purely technical, and nothing else.

``conform`` bakes the EXIF orientation into the pixels, turns a photo stored on its side or upside down
without a tag upright (``IMAGE_TURNED``: the face's roll says by how much), downscales towards the recommended height
(stopping where the face or the shorter side would fall below its minimum: those are errors, the height
only a warning), converts unsupported-but-decodable formats and unusual modes (16-bit, CMYK, RGBA, palette) to 8-bit
RGB JPEG, re-encodes at the highest JPEG quality (up to 95) that fits the byte limit, and strips EXIF/XMP/GPS
metadata (keeping the ICC profile). It never upscales, sharpens or brightens: those would hide a real
problem from the verification service. A low JPEG quality is not repairable either (re-encoding a
damaged image at a higher setting only fools the estimator), so it is reported, not "fixed".

A photo larger than the gate will decode (``RESOLUTION_TOO_HIGH``) has no face measurements; it is
looked at in a copy at the largest accepted size before deciding how far to shrink and whether to turn.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from . import codes as C
from ._files import write_atomically
from .errors import OutputFileError
from .gate import Gate
from .loading import Source, pil_to_rgb, read_source
from .metadata import strip_jpeg, strip_png
from .policy import FORMAT_SUFFIXES, Policy
from .report import Report

#: The highest JPEG quality :func:`conform` writes. Above 95 libjpeg turns off parts of the compression
#: (Pillow's docs advise against it): quality 100 doubles or triples the file for no visible gain, and
#: every byte is uploaded.
MAX_JPEG_QUALITY = 95
#: Margin kept above the face-size and eye-distance limits when downscaling.
FACE_MARGIN = 1.05

#: The file name extensions of each image format (the policy's table). :func:`conform` writes JPEG,
#: or keeps a photo that needs no new pixels in its own (accepted) format.
SUFFIXES = FORMAT_SUFFIXES
_FORMAT_OF_SUFFIX = {suffix: fmt for fmt, suffixes in SUFFIXES.items() for suffix in suffixes}


def output_formats(source_format: str | None, policy: Policy | None = None) -> tuple[str, ...]:
    """The formats :func:`conform` can write for a photo in ``source_format`` (``None``: not known).

    Always JPEG (whatever needs new pixels is encoded as JPEG); also the photo's own format when the
    policy accepts it, since a photo that needs no new pixels keeps it. For an unknown format, every
    accepted one. Known before any work, so a contradicting output name can be refused up front.
    """
    accepted = (policy or Policy()).allowed_formats
    kept = accepted if source_format is None else (source_format,) if source_format in accepted else ()
    return ("JPEG", *(f for f in kept if f != "JPEG"))


def suffix_conflict(
    path: str | os.PathLike[str],
    fmt: str | None,
    *,
    possible: Sequence[str] = ("JPEG", "PNG"),
    source_format: str | None = None,
) -> str | None:
    """Why an output named ``path`` cannot hold an image in ``fmt`` (``None`` when it can).

    A name without an image extension (or with one that names no image format) is accepted: the
    bytes say what they are. An image extension (case-insensitive) must name ``fmt``, or the next
    program to open the file is misled. With ``fmt=None`` (not known yet, before the work) only
    extensions naming none of the ``possible`` formats (see :func:`output_formats`) are refused.
    ``source_format``, the input's format, only makes the message more precise.
    """
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    named = _FORMAT_OF_SUFFIX.get(ext)
    if named is None or named == fmt or (fmt is None and named in possible):
        return None
    if fmt is None:
        source = f" (from a {source_format} photo)" if source_format else ""
        good = " or ".join(SUFFIXES[f][0] for f in possible if f in SUFFIXES) or "a name without an extension"
        written = " or ".join(possible)
        return f"{name} names a {ext} file, but the repaired image will be {written}{source}; name it {good}"
    why = f" (the {source_format} photo had to be re-encoded)" if source_format and source_format != fmt else ""
    good = SUFFIXES[fmt][0] if fmt in SUFFIXES else "a name without an image extension"
    return f"{name} names a {ext} file, but the repaired image is {fmt}{why}; name it {good}"


@dataclass(frozen=True)
class Conformed:
    """The result of :func:`conform`: new bytes (or ``None``), what changed, and the new report."""

    data: bytes | None
    format: str | None
    report: Report
    original: Report
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    jpeg_quality: int | None = None
    size: tuple[int, int] | None = field(default=None)

    def __repr__(self) -> str:  # the image bytes would fill a terminal
        data = "None" if self.data is None else f"<{len(self.data)} bytes>"
        return (f"Conformed(data={data}, format={self.format!r}, size={self.size!r}, changes={self.changes!r}, "
                f"problems={self.problems!r}, passed={self.report.passed!r})")

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def ok(self) -> bool:
        """True when there is output and it passes the gate."""
        return self.data is not None and self.report.passed

    @property
    def suffix(self) -> str | None:
        """The file name extension for :attr:`data` (usually ``".jpg"`` or ``".png"``), ``None`` without data."""
        return SUFFIXES[self.format][0] if self.data is not None and self.format in SUFFIXES else None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :attr:`data` to ``path`` atomically (a temporary file in the same folder, then a rename).

        Raises :class:`ValueError` when there is nothing to save, and
        :class:`~preflight.errors.OutputFileError` when ``path``'s extension names another format
        than :attr:`format` (a PNG that had to be re-encoded is a JPEG: see :attr:`suffix`), before
        writing anything; a name without an image extension is accepted.
        An interrupted write never leaves a truncated file at ``path``.
        """
        if self.data is None:
            raise ValueError("nothing to save: " + "; ".join(self.problems))
        conflict = suffix_conflict(path, self.format, source_format=self.original.measurements.format)
        if conflict:
            raise OutputFileError(conflict)
        write_atomically(path, self.data)

    def to_dict(self, locale: str | None = None) -> dict[str, Any]:
        """A JSON-ready dict; ``locale`` as in :meth:`Report.to_dict`."""
        return {
            "format": self.format,
            "bytes": None if self.data is None else len(self.data),
            "size": list(self.size) if self.size else None,
            "jpeg_quality": self.jpeg_quality,
            "changes": list(self.changes),
            "problems": list(self.problems),
            "report": self.report.to_dict(locale),
            "original": self.original.to_dict(locale),
        }


def conform(
    source: Source,
    policy: Policy | None = None,
    *,
    gate: Gate | None = None,
    strip_metadata: bool = True,
    name: str | None = None,
) -> Conformed:
    """Repair the technical problems of ``source`` that can be repaired without touching the face."""
    policy = policy or (gate.policy if gate else Policy())
    own_gate = gate is None
    gate = gate or Gate(policy)
    try:
        return _conform(source, policy, gate, strip_metadata, name)
    finally:
        if own_gate:
            gate.close()


def _conform(source: Source, policy: Policy, gate: Gate, strip_metadata: bool, name: str | None) -> Conformed:
    data, decoded, name = read_source(source, name)
    original = gate.check(data if data is not None else decoded, policy=policy, name=name)
    m = original.measurements

    if C.FAILED_TO_READ_IMAGE in original.codes or m.width is None or m.height is None:
        return Conformed(None, None, original, original, problems=("the image cannot be read",))
    if max(m.width, m.height) > policy.max_side_px * 4 or m.width * m.height > policy.max_decode_pixels * 4:
        return Conformed(None, None, original, original,
                         problems=(f"the image is {m.width}x{m.height}: too large to decode safely",))

    problems: list[str] = []
    if C.JPEG_QUALITY_TOO_LOW in original.codes:
        problems.append(
            f"JPEG quality {m.jpeg_quality} is below {policy.min_jpeg_quality} and cannot be repaired: "
            "re-encoding would hide the compression damage; use the original photo"
        )

    pil = _open(data, decoded)
    if pil is None:
        return Conformed(None, None, original, original, problems=("the image cannot be decoded",))

    changes: list[str] = []
    orientation = m.exif_orientation or 1
    turn = _upright_turn(original)
    width, height = (m.height, m.width) if turn in _QUARTER_TURNS else (m.width, m.height)
    target = _target_size(width, height, m.face_size_px, m.eye_distance_px, policy)
    needs_pixels = (
        decoded is not None
        or orientation != 1
        or turn is not None
        or m.format not in policy.allowed_formats
        or pil.mode not in ("RGB", "L")
        or target != (width, height)
        or (m.file_bytes or 0) > policy.max_file_bytes
    )
    if not needs_pixels:
        assert data is not None
        if not strip_metadata:
            return Conformed(data, m.format, original, original, problems=tuple(problems), size=(m.width, m.height),
                             jpeg_quality=m.jpeg_quality)
        stripped = strip_jpeg(data) if m.format == "JPEG" else strip_png(data)
        if stripped is not None:
            if len(stripped) < len(data):
                changes.append(f"removed {len(data) - len(stripped)} bytes of metadata (EXIF/XMP/comments); "
                               "pixels untouched")
                report = gate.check(stripped, policy=policy, name=name)
            else:
                report = original
            return Conformed(stripped, m.format, report, original, tuple(changes), tuple(problems),
                             jpeg_quality=m.jpeg_quality, size=(m.width, m.height))
        # an odd container: fall through and re-encode

    if problems and m.format == "JPEG":
        # re-encoding would launder the low quality: report instead of degrading silently
        return Conformed(None, None, original, original, problems=tuple(problems))

    icc = pil.info.get("icc_profile")
    oriented: list[str] = []
    if orientation != 1:
        pil = ImageOps.exif_transpose(pil)
        oriented.append(f"applied EXIF orientation {orientation} to the pixels")
    converted: list[str] = []
    if decoded is not None:
        converted.append("encoded the given image as JPEG")
    elif m.format not in policy.allowed_formats:
        converted.append(f"converted {m.format} to JPEG")
    if pil.mode not in ("RGB", "L"):
        converted.append(f"converted {pil.mode} to 8-bit RGB")
        pil = Image.fromarray(pil_to_rgb(pil))  # transparency on white, 16-bit scaled, CMYK converted
    elif pil.mode == "L":
        pil = pil.convert("RGB")
    full = pil
    roll, face = m.roll_deg, (m.face_size_px, m.eye_distance_px)
    missed, checked = "", "the full-size photo"
    if C.RESOLUTION_TOO_HIGH in original.codes and m.face_size_px is None:
        # Too large for the gate to decode: nothing is known of the face. Look at a copy at the
        # largest size it accepts before deciding how far to shrink (and whether to turn).
        probe_scale = policy.max_side_px / max(full.size)
        probe = full.resize((max(1, round(full.width * probe_scale)), max(1, round(full.height * probe_scale))),
                            Image.Resampling.LANCZOS, reducing_gap=3.0)
        probed = gate.check(np.asarray(probe), policy=policy, name=name)
        seen = probed.measurements
        checked = f"the copy at {probe.width}x{probe.height}"
        face = (None if seen.face_size_px is None else seen.face_size_px / probe_scale,
                None if seen.eye_distance_px is None else seen.eye_distance_px / probe_scale)
        if (probe_turn := _upright_turn(probed)) is not None:
            turn, roll = probe_turn, seen.roll_deg
            missed = f"; seen on a copy at {probe.width}x{probe.height}: the photo is too large to check whole"
    for _attempt in range(2):
        changes = list(oriented)
        pil = full
        if turn is not None:
            pil = pil.transpose(turn)
            changes.append(f"turned the photo upright {_TURN_NAMES[turn]} (the face was turned by {roll:+.0f} "
                           f"degrees{missed})")
        changes += converted
        target = _target_size(pil.width, pil.height, *face, policy)
        if target != pil.size:
            changes.append(f"downscaled {pil.width}x{pil.height} to {target[0]}x{target[1]}")
            pil = pil.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)

        encoded = _encode_to_fit(pil, policy, icc)
        if encoded is None:
            smallest = _encode(pil, policy.min_jpeg_quality, icc)
            problems.append(
                f"cannot fit in {policy.max_file_bytes} bytes even at JPEG quality {policy.min_jpeg_quality} "
                f"({len(smallest)} bytes)"
            )
            return Conformed(None, None, original, original, (), tuple(problems))  # no output: nothing changed
        out, quality = encoded
        changes.append(f"encoded as JPEG at quality {quality} ({len(out)} bytes)")
        if strip_metadata:
            changes.append("metadata removed (EXIF, GPS, XMP); ICC profile kept" if icc else
                           "metadata removed (EXIF, GPS, XMP)")
        else:
            changes.append("metadata not kept: the pixels had to be encoded anew"
                           + ("; ICC profile kept" if icc else ""))
        report = gate.check(out, policy=policy, name=name)
        again = None if turn is not None else _upright_turn(report)
        if again is None:
            break
        # The full-size photo was read as upright (MediaPipe fitted an upright mesh onto the inverted
        # face at that size) but the repaired copy shows it turned: turn the full-size pixels, and
        # size the face from the copy's fit (the forced fit's face size was wrong too).
        shrink = full.height / pil.height  # this attempt did not turn: same orientation
        r = report.measurements
        turn, roll = again, r.roll_deg
        face = (None if r.face_size_px is None else r.face_size_px * shrink,
                None if r.eye_distance_px is None else r.eye_distance_px * shrink)
        missed = f"; seen on the repaired copy, {checked} was read as upright"
    return Conformed(out, "JPEG", report, original, tuple(changes), tuple(problems), quality, pil.size)


def _open(data: bytes | None, decoded: Any) -> Image.Image | None:
    try:
        if data is not None:
            pil = Image.open(io.BytesIO(data))
            pil.load()
            return pil
        if isinstance(decoded, Image.Image):
            return decoded
        arr = decoded
        if arr.ndim == 3 and arr.shape[2] == 1:  # one channel, as (H, W, 1)
            arr = arr[:, :, 0]
        return Image.fromarray(arr[:, :, :3] if arr.ndim == 3 and arr.shape[2] == 4 else arr)
    except Exception:
        return None


_QUARTER_TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)
_TURN_NAMES = {
    Image.Transpose.ROTATE_90: "by 90 degrees counter-clockwise",
    Image.Transpose.ROTATE_180: "by 180 degrees",
    Image.Transpose.ROTATE_270: "by 90 degrees clockwise",
}


def _upright_turn(original: Report) -> Image.Transpose | None:
    """The quarter turns that bring a turned face (IMAGE_TURNED) upright, or None.

    A roll of +90 (the image-right eye lower: the face turned clockwise as seen) is undone by a
    counter-clockwise quarter turn; +-180 by a half turn.
    """
    roll = original.measurements.roll_deg
    if C.IMAGE_TURNED not in original.codes or roll is None:
        return None
    quarters = round(roll / 90.0) % 4
    return {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}.get(quarters)


def _target_size(width: int, height: int, face_size_px: float | None, eye_distance_px: float | None,
                 policy: Policy) -> tuple[int, int]:
    """Downscale to the recommended height, but never so far that a passing face would fail."""
    scale = 1.0
    if height > policy.recommended_max_height_px:
        scale = policy.recommended_max_height_px / height
        # the recommended height is a warning; a face that becomes too small is an error
        if face_size_px:
            scale = max(scale, min(1.0, policy.min_face_size_px * FACE_MARGIN / face_size_px))
        if eye_distance_px:
            scale = max(scale, min(1.0, policy.min_eye_distance_px * FACE_MARGIN / eye_distance_px))
        # a tall, narrow photo: the shorter side must stay at the minimum resolution (an error too)
        scale = max(scale, min(1.0, policy.min_side_px / min(width, height)))
    longest = max(width, height)
    if longest * scale > policy.max_side_px:  # a hard limit: wins over the face guard
        scale = policy.max_side_px / longest
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode(pil: Image.Image, quality: int, icc: bytes | None) -> bytes:
    buf = io.BytesIO()
    params: dict[str, Any] = {"quality": quality, "optimize": True}
    if icc:
        params["icc_profile"] = icc
    pil.save(buf, "JPEG", **params)
    return buf.getvalue()


def _encode_to_fit(pil: Image.Image, policy: Policy, icc: bytes | None) -> tuple[bytes, int] | None:
    """The highest quality in [policy minimum, MAX_JPEG_QUALITY] whose file fits the byte limit (binary search)."""
    lo, hi = policy.min_jpeg_quality, max(policy.min_jpeg_quality, MAX_JPEG_QUALITY)
    best: tuple[bytes, int] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        out = _encode(pil, mid, icc)
        if len(out) <= policy.max_file_bytes:
            best = (out, mid)
            lo = mid + 1
        else:
            hi = mid - 1
    return best
