"""The gate: load safely, apply the file rules, analyse pixels and face, and build one report."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from types import TracebackType
from typing import Any

from . import pixels, rules
from ._native import quiet_stderr
from .errors import GateClosedError
from .face import FaceAnalyzer
from .loading import Source, load
from .policy import Policy
from .report import Measurements, Report


class Gate:
    """A reusable checker: the face model is loaded once (on first use) and shared by every check.

    ``Gate`` is safe to use from several threads. Use it as a context manager, or call
    :meth:`close`, to release the model.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.policy = policy or Policy()
        self.model_path = model_path
        self._analyzer: FaceAnalyzer | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the face model. The gate cannot check faces afterwards."""
        with self._lock:
            if self._analyzer is not None:
                self._analyzer.close()
                self._analyzer = None
            self._closed = True

    @property
    def model_loaded(self) -> bool:
        """Whether the face model is loaded (it is on the first check that needs it, or by ``analyzer``)."""
        return self._analyzer is not None

    def load_model(self, *, quiet: bool = False) -> None:
        """Load the face model now instead of on the first check that needs it (a warm-up).

        ``quiet`` keeps MediaPipe's C++ start-up lines ("Created TensorFlow Lite XNNPACK delegate",
        "W0000 ... feedback tensors") off file descriptor 2 while it loads. That silences the whole
        process for the moment, so it is for processes preflight owns (the command line, screening
        workers, the service's workers). A model that fails to load still raises ModelError.
        """
        with quiet_stderr() if quiet else contextlib.nullcontext():
            _ = self.analyzer

    @property
    def analyzer(self) -> FaceAnalyzer:
        """The shared face analyser, created on first use (this is where the model is loaded)."""
        with self._lock:
            if self._closed:
                raise GateClosedError("this Gate is closed")
            if self._analyzer is None:
                self._analyzer = FaceAnalyzer(
                    self.model_path,
                    min_detection_confidence=self.policy.min_face_detection_confidence,
                )
            return self._analyzer

    # -- checking --------------------------------------------------------------------------
    def check(self, source: Source, *, policy: Policy | None = None, name: str | None = None) -> Report:
        """Check one image. Bad images give a report with issues; only programmer errors raise."""
        policy = policy or self.policy
        started = time.perf_counter()
        image = load(source, policy, name=name)
        issues = list(image.issues)
        not_checked = dict(image.not_checked)
        issues += rules.file_issues(image, policy, not_checked)

        fields: dict[str, Any] = image.measurement_fields()
        if image.rgb is not None:
            needs_face = policy.check_face
            result = pixels.analyse(image.rgb, policy, self.analyzer if needs_face else None)
            fields.update(result.fields)
            issues += result.issues
            not_checked.update(result.not_checked)
        else:
            not_checked.setdefault("pixels", image.not_decoded_reason or "image not decoded")

        return Report(
            issues=tuple(issues),
            measurements=Measurements(**fields),
            not_checked=not_checked,
            source=image.name,
            policy=policy.name,
            elapsed_ms=(time.perf_counter() - started) * 1000.0,
        )


def check(source: Source, policy: Policy | None = None, *, model_path: str | os.PathLike[str] | None = None,
          name: str | None = None) -> Report:
    """One-shot check. Loads the face model for this call: use :class:`Gate` for many images."""
    with Gate(policy, model_path=model_path) as gate:
        return gate.check(source, name=name)
