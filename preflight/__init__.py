"""preflight: check face photos locally before they are uploaded to an identity-verification API.

>>> import preflight
>>> report = preflight.check("selfie.jpg")          # doctest: +SKIP
>>> report.passed, sorted(report.codes)               # doctest: +SKIP
"""

from __future__ import annotations

from . import codes, guidance
from .annotate import annotate
from .conform import Conformed, conform
from .errors import (
    GateClosedError,
    InvalidSourceError,
    ModelError,
    OutputFileError,
    PolicyError,
    PreflightError,
    SourceNotFoundError,
    SourceReadError,
    WorkerStartError,
)
from .gate import Gate, check
from .policy import Policy
from .report import Issue, Measurements, Report
from .screening import screen
from .submit import CombinedReport, submit
from .table import to_table

__version__ = "0.1.0"

__all__ = [
    "CombinedReport",
    "Conformed",
    "Gate",
    "GateClosedError",
    "InvalidSourceError",
    "Issue",
    "Measurements",
    "ModelError",
    "OutputFileError",
    "Policy",
    "PolicyError",
    "PreflightError",
    "Report",
    "SourceNotFoundError",
    "SourceReadError",
    "WorkerStartError",
    "__version__",
    "annotate",
    "check",
    "codes",
    "conform",
    "guidance",
    "screen",
    "submit",
    "to_table",
]
