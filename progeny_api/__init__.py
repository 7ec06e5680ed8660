"""A thin, robust client for the Progeny identity-verification API (v3), and a local sandbox server.

Depends on ``requests`` only: importing this package never imports numpy, OpenCV or MediaPipe.

    from progeny_api import ProgenyClient

    with ProgenyClient() as client:  # PROGENY_USERNAME / PROGENY_PASSWORD / PROGENY_BASE_URL
        result = client.face_liveness("selfie.jpg")
        if not result.passed:
            print(result.error_codes)

See docs/api-client.md.
"""

from ._multipart import ImageInput, sniff_content_type
from ._redact import RedactingFilter, redact_text
from ._retry import backoff_delay, parse_retry_after
from ._version import __version__
from .client import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_NOT_FOUND_GRACE,
    DEFAULT_POLL_DEADLINE,
    DEFAULT_TIMEOUT,
    ProgenyClient,
)
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    ProgenyError,
    RateLimitError,
    RedirectError,
    ResponseFormatError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from .models import (
    FACE_FIELDS,
    FAILED_STATES,
    IMAGE_FIELDS,
    NOT_FOUND,
    PENDING_STATES,
    SERVICES,
    SUCCESS,
    ServiceSpec,
    Task,
    TaskResult,
    parse_date,
    to_float,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_RETRY_AFTER",
    "DEFAULT_NOT_FOUND_GRACE",
    "DEFAULT_POLL_DEADLINE",
    "DEFAULT_TIMEOUT",
    "FACE_FIELDS",
    "FAILED_STATES",
    "IMAGE_FIELDS",
    "NOT_FOUND",
    "PENDING_STATES",
    "SERVICES",
    "SUCCESS",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ImageInput",
    "NotFoundError",
    "PermissionDeniedError",
    "ProgenyClient",
    "ProgenyError",
    "RateLimitError",
    "RedactingFilter",
    "RedirectError",
    "ResponseFormatError",
    "ServerError",
    "ServiceSpec",
    "Task",
    "TaskFailedError",
    "TaskResult",
    "TaskTimeoutError",
    "TransportError",
    "__version__",
    "backoff_delay",
    "parse_date",
    "parse_retry_after",
    "redact_text",
    "sniff_content_type",
    "to_float",
]
