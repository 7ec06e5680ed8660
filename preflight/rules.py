"""File and image rules: judged from the header and the file, before any pixel is analysed."""

from __future__ import annotations

from . import codes as C
from .loading import LoadedImage
from .policy import Policy
from .report import Issue


def file_issues(image: LoadedImage, policy: Policy, not_checked: dict[str, str]) -> list[Issue]:
    """Issues of the encoded file and its dimensions. Rules without inputs go to ``not_checked``."""
    issues: list[Issue] = []
    unreadable = any(i.code == C.FAILED_TO_READ_IMAGE for i in image.issues)

    if image.file_bytes is not None and image.file_bytes > policy.max_file_bytes:
        issues.append(Issue.make(
            C.FILE_TOO_LARGE,
            f"file is {image.file_bytes} bytes; the limit is {policy.max_file_bytes}",
            measured=image.file_bytes, limit=policy.max_file_bytes,
        ))

    if image.format is not None and image.format not in policy.allowed_formats and not image.decoded_input:
        issues.append(Issue.make(
            C.UNSUPPORTED_FORMAT,
            f"{image.format} is not accepted; use {' or '.join(policy.allowed_formats)}",
            measured=image.format, limit=tuple(policy.allowed_formats),
        ))

    if image.width is not None and image.height is not None:
        w, h = image.width, image.height
        if min(w, h) < policy.min_side_px:
            issues.append(Issue.make(
                C.RESOLUTION_TOO_LOW,
                f"image is {w}x{h}; each side must be at least {policy.min_side_px} px",
                measured=min(w, h), limit=policy.min_side_px,
            ))
        if max(w, h) > policy.max_side_px:
            issues.append(Issue.make(
                C.RESOLUTION_TOO_HIGH,
                f"image is {w}x{h}; each side must be at most {policy.max_side_px} px",
                measured=max(w, h), limit=policy.max_side_px,
            ))
        elif h > policy.recommended_max_height_px:
            issues.append(Issue.make(
                C.HEIGHT_ABOVE_RECOMMENDED,
                f"image height is {h} px; {policy.recommended_max_height_px} px is recommended",
                measured=h, limit=policy.recommended_max_height_px,
            ))
    elif not unreadable:
        not_checked.setdefault("RESOLUTION_TOO_LOW", "dimensions unknown")

    if image.jpeg_quality is not None:
        if image.jpeg_quality < policy.min_jpeg_quality:
            issues.append(Issue.make(
                C.JPEG_QUALITY_TOO_LOW,
                f"estimated JPEG quality is {image.jpeg_quality}; the minimum is {policy.min_jpeg_quality}",
                measured=image.jpeg_quality, limit=policy.min_jpeg_quality,
            ))
    elif image.format == "JPEG" and not unreadable:
        not_checked.setdefault("JPEG_QUALITY_TOO_LOW", "no quantisation tables found")

    if image.exif_orientation is not None and image.exif_orientation != 1:
        issues.append(Issue.make(
            C.EXIF_ROTATED,
            f"the image relies on EXIF orientation {image.exif_orientation}; services may ignore it",
            measured=image.exif_orientation, limit=1,
        ))
    return issues
