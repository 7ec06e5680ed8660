"""A local Progeny API for tests and offline development (standard library only).

    from progeny_api import ProgenyClient
    from progeny_api.sandbox import Sandbox

    with Sandbox(access_lifetime=2) as sb, ProgenyClient(sb.username, sb.password, base_url=sb.base_url) as c:
        sb.inject("face_liveness", "429", retry_after=0.1)
        result = c.face_liveness(open("selfie.jpg", "rb"))

Or from a shell: ``python -m progeny_api.sandbox --port 8765``.
"""

from ._imageinfo import ImageInfo, image_info
from ._results import (
    MESSAGES,
    NESTED_CODES,
    FaceChecker,
    Judge,
    UploadedFile,
    envelope,
    face_failure,
    failed_check,
    header_face_checker,
    liveness_passed,
)
from .server import (
    DEFAULT_LIFECYCLE,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    FAULT_KINDS,
    PREFIX,
    Fault,
    RequestRecord,
    Sandbox,
    SandboxTask,
    html_page,
    parse_form,
)

__all__ = [
    "DEFAULT_LIFECYCLE",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "FAULT_KINDS",
    "MESSAGES",
    "NESTED_CODES",
    "PREFIX",
    "FaceChecker",
    "Fault",
    "ImageInfo",
    "Judge",
    "RequestRecord",
    "Sandbox",
    "SandboxTask",
    "UploadedFile",
    "envelope",
    "face_failure",
    "failed_check",
    "header_face_checker",
    "html_page",
    "image_info",
    "liveness_passed",
    "parse_form",
]
