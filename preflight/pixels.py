"""Pixel and face analysis of a decoded image (placeholder until the face analyser lands).

Contract used by :mod:`preflight.gate`: :func:`analyse` takes the oriented RGB image, the policy
and the shared :class:`~preflight.face.FaceAnalyzer` (or ``None`` when the policy needs no face),
and returns the measurement fields, the issues and the rules it could not evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .face import FaceAnalyzer
    from .policy import Policy
    from .report import Issue


@dataclass
class PixelResult:
    fields: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)


def analyse(rgb: np.ndarray, policy: Policy, analyzer: FaceAnalyzer | None) -> PixelResult:
    """Measure the face and pixel quality of ``rgb`` and judge them against ``policy``."""
    return PixelResult(not_checked={"FACE_NOT_FOUND": "face analysis not available yet"})
