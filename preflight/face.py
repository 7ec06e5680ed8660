"""Face landmarks with MediaPipe FaceLandmarker (placeholder until the face analyser lands)."""

from __future__ import annotations

import os


class FaceAnalyzer:
    """One reusable FaceLandmarker. Thread-safe; create one per process."""

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *,
                 min_detection_confidence: float = 0.5, max_faces: int = 4) -> None:
        self.model_path = model_path

    def close(self) -> None:
        """Release the landmarker."""
