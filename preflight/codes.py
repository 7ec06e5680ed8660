"""Issue codes: stable, UPPER_SNAKE, part of the public API.

Codes shared with the Progeny API (``FAILED_TO_READ_IMAGE``, ``FACE_NOT_FOUND``, ``FACE_TOO_SMALL``)
use the API's own spelling so local and remote reports read alike.
"""

from __future__ import annotations

from typing import Final, Literal

Severity = Literal["error", "warning"]

# file and image rules
FAILED_TO_READ_IMAGE: Final = "FAILED_TO_READ_IMAGE"
UNSUPPORTED_FORMAT: Final = "UNSUPPORTED_FORMAT"
FILE_TOO_LARGE: Final = "FILE_TOO_LARGE"
RESOLUTION_TOO_LOW: Final = "RESOLUTION_TOO_LOW"
RESOLUTION_TOO_HIGH: Final = "RESOLUTION_TOO_HIGH"
HEIGHT_ABOVE_RECOMMENDED: Final = "HEIGHT_ABOVE_RECOMMENDED"
JPEG_QUALITY_TOO_LOW: Final = "JPEG_QUALITY_TOO_LOW"
EXIF_ROTATED: Final = "EXIF_ROTATED"

# face rules
FACE_NOT_FOUND: Final = "FACE_NOT_FOUND"
MULTIPLE_FACES: Final = "MULTIPLE_FACES"
FACE_TOO_SMALL: Final = "FACE_TOO_SMALL"
FACE_CUT_OFF: Final = "FACE_CUT_OFF"
EYE_DISTANCE_TOO_SMALL: Final = "EYE_DISTANCE_TOO_SMALL"
PITCH_TOO_LARGE: Final = "PITCH_TOO_LARGE"
YAW_TOO_LARGE: Final = "YAW_TOO_LARGE"
ROLL_TOO_LARGE: Final = "ROLL_TOO_LARGE"
#: The face is turned by far more than a head tilts (upside down, on its side): the photo is turned.
IMAGE_TURNED: Final = "IMAGE_TURNED"
EYES_CLOSED: Final = "EYES_CLOSED"
SUNGLASSES: Final = "SUNGLASSES"

# pixel quality
IMAGE_BLURRY: Final = "IMAGE_BLURRY"
IMAGE_TOO_DARK: Final = "IMAGE_TOO_DARK"
IMAGE_TOO_BRIGHT: Final = "IMAGE_TOO_BRIGHT"
UNEVEN_LIGHTING: Final = "UNEVEN_LIGHTING"
GRAYSCALE_IMAGE: Final = "GRAYSCALE_IMAGE"
GLARE: Final = "GLARE"

#: Default severity of every code (a rule may still choose per case, e.g. MULTIPLE_FACES).
DEFAULT_SEVERITY: Final[dict[str, Severity]] = {
    FAILED_TO_READ_IMAGE: "error",
    UNSUPPORTED_FORMAT: "error",
    FILE_TOO_LARGE: "error",
    RESOLUTION_TOO_LOW: "error",
    RESOLUTION_TOO_HIGH: "error",
    HEIGHT_ABOVE_RECOMMENDED: "warning",
    JPEG_QUALITY_TOO_LOW: "error",
    EXIF_ROTATED: "warning",
    FACE_NOT_FOUND: "error",
    MULTIPLE_FACES: "error",
    FACE_TOO_SMALL: "error",
    FACE_CUT_OFF: "error",
    EYE_DISTANCE_TOO_SMALL: "error",
    PITCH_TOO_LARGE: "error",
    YAW_TOO_LARGE: "error",
    ROLL_TOO_LARGE: "error",
    IMAGE_TURNED: "error",
    EYES_CLOSED: "warning",
    SUNGLASSES: "warning",
    IMAGE_BLURRY: "error",
    IMAGE_TOO_DARK: "error",
    IMAGE_TOO_BRIGHT: "error",
    UNEVEN_LIGHTING: "warning",
    GRAYSCALE_IMAGE: "warning",
    GLARE: "warning",
}

ALL_CODES: Final[tuple[str, ...]] = tuple(DEFAULT_SEVERITY)
