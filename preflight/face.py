"""Face landmarks with MediaPipe's FaceLandmarker (Tasks API).

:class:`FaceAnalyzer` wraps one FaceLandmarker: it loads the model bundle once (checking its
SHA-256), and :meth:`FaceAnalyzer.detect` returns every face as a :class:`Face` with its 478
landmarks in *pixels* of the image it was given, its 52 blendshape scores and its 4x4 facial
transformation matrix. The numbers the gate reports are computed from these by the pure
functions in :mod:`preflight.measures`.

Small faces in large photos: MediaPipe's face detector sees the whole image at 128 px, so it misses
faces below about a tenth of the image's longer side (a valid 300 px face in a 4000 px photo). When
the whole image gives no face, :meth:`FaceAnalyzer.detect` looks again in overlapping tiles (see
:func:`tile_grid`); a photo with a face found the ordinary way costs nothing extra.

Upside-down photos without an EXIF tag: MediaPipe finds no face in many, and fits an upright mesh
onto the inverted face in others. :meth:`FaceAnalyzer.detect` then looks at the image turned by 180
degrees (and, when no face is found at all, by a quarter turn each way) and returns that fit in the
given image's pixels (see ``turn_search``).

Threads: :meth:`~FaceAnalyzer.detect` holds a lock, so one analyser can be shared by many threads
(MediaPipe runs one graph at a time anyway). Processes: an analyser pickles as its settings and
loads its own landmarker in the process that unpickles it, so it can be handed to ``spawn`` or
``forkserver`` workers (the supported way). A ``fork`` child that inherits one loads a fresh
landmarker on first use (a MediaPipe graph does not survive ``fork``); this is best effort only:
forking a process whose MediaPipe threads are busy can deadlock the child, as with any threaded
native library.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import math
import os
import struct
import sys
import threading
import types
import weakref
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import TracebackType
from typing import Any, Final

import numpy as np

from .errors import ModelError
from .measures import CanonicalFace, box_iou, eye_shading, face_size, landmark_extent, lip_redness

#: SHA-256 of the bundled ``face_landmarker.task`` (float16, version 1); see ``models/NOTICE``.
DEFAULT_MODEL_SHA256: Final = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
DEFAULT_MODEL_NAME: Final = "face_landmarker.task"

#: Landmark indices used across the package (MediaPipe face mesh numbering). "Right"/"left" are
#: the *subject's*: the subject's right eye is on the image's left in an ordinary (unmirrored) photo.
RIGHT_IRIS_CENTRE: Final = 468
LEFT_IRIS_CENTRE: Final = 473
N_LANDMARKS: Final = 478

#: Faces of at least this fraction of the longer side of the image the detector is given are found
#: reliably (measured with bench/small_faces.py: misses begin below ~12 %, nothing below ~8 %).
DETECTOR_REACH: Final = 0.12
#: Smallest face the tile pass looks for: two-thirds of the API's 224 px minimum, so that a near miss
#: reads FACE_TOO_SMALL rather than FACE_NOT_FOUND.
TILE_MIN_FACE_PX: Final = 150
#: Tile side that reaches TILE_MIN_FACE_PX (1250 px); images with a longer side above it get tiles.
TILE_SIDE_PX: Final = round(TILE_MIN_FACE_PX / DETECTOR_REACH)
#: Tiles are at least this fraction of the longer side, so at most 4 x 4 of them (1250 px tiles would
#: take 5 x 4 at 4000x3000, and a tile costs about 4 ms whatever its size). Above 3125 px they
#: reach faces of 0.4 * 0.12 = 4.8 % of it: 197 px at the API's 4096 px maximum, still under its
#: 224 px minimum face.
TILE_MIN_FRACTION: Final = 0.4
#: Least overlap of neighbouring tiles, as a fraction of the longer side: it holds the whole landmark
#: box (about 1.3 face sizes tall) of the largest face the full frame may miss (1.3 * 0.12 < 0.2),
#: so such a face lies uncut in at least one tile.
TILE_OVERLAP: Final = 0.2
#: Detections of one face in several tiles overlap by far more than this (IoU of landmark boxes).
TILE_DUPLICATE_IOU: Final = 0.3

#: Upside-down photos without an EXIF tag (``bench/upside_down.py``, docs/accuracy.md). How much a
#: fit looks like a mesh forced onto an inverted face: ``eye_shading - TURN_REDNESS_WEIGHT *
#: lip_redness`` (:func:`turn_doubt`; real eyes are shaded, real lips red). When the main face's
#: eye shading reads above TURN_DOUBT, the image turned by 180 degrees is searched too, and its
#: face is kept when its eye shading is below TURN_CONFIRM, its doubt at least TURN_MARGIN lower
#: than the upright fit's, on the same face (landmark boxes overlapping by more than
#: TURN_SAME_FACE_IOU). When no face is found at all, a turned face is kept when its eye shading is
#: below TURN_CONFIRM (or, with its brows cut off by the border, its lips are redder than its eyes
#: by TURN_LIPS_REDDER); after a quarter turn, only when its doubt is at most TURN_DOUBT as well.
TURN_DOUBT: Final = 0.6
TURN_CONFIRM: Final = 0.9
TURN_MARGIN: Final = 0.25
TURN_REDNESS_WEIGHT: Final = 2.0
TURN_SAME_FACE_IOU: Final = 0.3
TURN_LIPS_REDDER: Final = 0.05


class _Default:
    def __repr__(self) -> str:
        return "<bundled model hash>"


#: Sentinel for ``sha256``: check against :data:`DEFAULT_MODEL_SHA256`.
BUNDLED_HASH: Final = _Default()


def default_model_path() -> str:
    """Filesystem path of the model bundle shipped inside the package."""
    ref = resources.files("preflight") / "models" / DEFAULT_MODEL_NAME
    return str(ref)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in pixel coordinates of the analysed image.

    ``landmarks`` is a float32 array of shape (478, 3): x and y in pixels (x right, y down; they may
    lie outside the image when the face is cut off, MediaPipe extrapolates them), z in the same
    pixel scale as x (MediaPipe's relative depth, smaller is closer to the camera).
    """

    landmarks: np.ndarray
    blendshapes: Mapping[str, float]
    #: 4x4 facial transformation matrix (canonical face model -> camera space, OpenGL axes:
    #: x right, y up, z toward the viewer), or None if MediaPipe did not return one or the face was
    #: found in a tile (MediaPipe's matrix would then place it before a virtual camera that sees
    #: only that tile: wrong translation, and yaw and pitch biased by the face's place in the tile),
    #: or in a copy turned by a quarter (see :func:`turn_face`).
    matrix: np.ndarray | None
    #: (width, height) of the image the landmarks refer to.
    image_size: tuple[int, int]

    @property
    def xy(self) -> np.ndarray:
        """The (478, 2) pixel coordinates."""
        return self.landmarks[:, :2]

    @property
    def right_iris(self) -> np.ndarray:
        """Centre of the subject's right iris (the image-left eye of an unmirrored frontal face)."""
        return self.landmarks[RIGHT_IRIS_CENTRE, :2]

    @property
    def left_iris(self) -> np.ndarray:
        """Centre of the subject's left iris."""
        return self.landmarks[LEFT_IRIS_CENTRE, :2]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the axis-aligned extent of all landmarks, in pixels (may exceed the image)."""
        xy = self.xy
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


class FaceAnalyzer:
    """One reusable FaceLandmarker. Thread-safe (a lock around :meth:`detect`); picklable.

    Args:
        model_path: a ``.task`` bundle; ``None`` for the one shipped in the package.
        sha256: the expected hex SHA-256 of the bundle. By default the bundled model's hash is
            expected (also for a custom path: a copy of the same model passes, a different one
            must state its own hash). ``None`` skips the check.
        min_detection_confidence: minimum BlazeFace detection score.
        max_faces: most faces returned (MediaPipe's ``num_faces``).
        tile_search: when the whole image gives no face and its longer side is above
            :data:`TILE_SIDE_PX` (1250), look again in overlapping tiles (:func:`tile_grid`), which
            find faces down to 150 px (4.8 % of the longer side above 3125 px) instead of 10-12 %
            of the longer side. Costs nothing when the whole image gives a face; an image without
            one pays for 2-16 tile runs of 4-10 ms each (bench/small_faces.py).
        turn_search: recognise photos stored upside down without an EXIF tag. MediaPipe finds no
            face in many of them, and in the others fits an upright mesh onto the inverted face
            (eyes on the mouth), so they would read as upright. When no face is found, or the main
            face's eyes do not look like eyes (:func:`~preflight.measures.eye_shading`), the image
            turned by 180 degrees is searched as well; a face found there whose eyes and lips look
            right is returned in this image's pixels (its roll reads about 180). When no face is
            found at all, the image turned by a quarter each way is searched last (a photo on its
            side that MediaPipe missed; roll about +-90). Costs one more landmarker run on the
            doubted images (1 in 6 of the corpus' untouched photos, more of the blurred or washed-out
            ones; see docs/accuracy.md) and up to three on images without a face.

    Raises:
        ModelError: the bundle is missing, unreadable, has the wrong hash or cannot be loaded.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        sha256: str | _Default | None = BUNDLED_HASH,
        min_detection_confidence: float = 0.5,
        max_faces: int = 4,
        tile_search: bool = True,
        turn_search: bool = True,
    ) -> None:
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        if not 0.0 <= min_detection_confidence <= 1.0:
            raise ValueError("min_detection_confidence must be between 0 and 1")
        self.model_path = os.fspath(model_path) if model_path is not None else None
        self.sha256 = DEFAULT_MODEL_SHA256 if isinstance(sha256, _Default) else sha256
        self.min_detection_confidence = float(min_detection_confidence)
        self.max_faces = int(max_faces)
        self.tile_search = bool(tile_search)
        self.turn_search = bool(turn_search)
        self._lock = threading.Lock()
        self._landmarker: Any = None
        #: The canonical face model of the bundle (for head pose), or None if it has none.
        self.canonical: CanonicalFace | None = None
        self._pid = -1
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._closed = False
        self._open()

    # -- lifecycle -------------------------------------------------------------------------
    def _read_model(self) -> bytes:
        path = self.model_path or default_model_path()
        try:
            if self.model_path is None:  # works for any package layout, a zip included
                data = (resources.files("preflight") / "models" / DEFAULT_MODEL_NAME).read_bytes()
            else:
                with open(path, "rb") as fh:
                    data = fh.read()
        except OSError as exc:
            raise ModelError(f"cannot read the face model {path}: {exc}") from exc
        if self.sha256 is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != self.sha256.lower():
                raise ModelError(
                    f"face model {path} has SHA-256 {actual}; expected {self.sha256}"
                    " (pass sha256=None to skip the check for a model of your own)"
                )
        return data

    def _open(self) -> None:
        data = self._read_model()
        try:
            base_options, running_mode, landmarker_cls, options_cls = _import_mediapipe()
            options = options_cls(
                base_options=base_options(model_asset_buffer=data),
                running_mode=running_mode.IMAGE,
                num_faces=self.max_faces,
                min_face_detection_confidence=self.min_detection_confidence,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            )
            landmarker = landmarker_cls.create_from_options(options)
        except Exception as exc:  # MediaPipe raises RuntimeError/ValueError for a bad bundle
            raise ModelError(f"cannot load the face model: {type(exc).__name__}: {exc}") from exc
        self._landmarker = landmarker
        self.canonical = canonical_face_from_bundle(data)
        self._pid = os.getpid()
        # Close at garbage collection or interpreter exit, while modules are still intact
        # (MediaPipe's own __del__ fails noisily during interpreter shutdown).
        self._finalizer = weakref.finalize(self, _close_landmarker, landmarker)

    def close(self) -> None:
        """Release the landmarker. :meth:`detect` raises afterwards."""
        with self._lock:
            self._closed = True
            self._release()

    def _release(self) -> None:
        if self._finalizer is not None:
            if self._pid == os.getpid():
                self._finalizer()
            else:  # inherited through fork: the parent owns that graph, do not touch it
                self._finalizer.detach()
            self._finalizer = None
        self._landmarker = None

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "model_path": self.model_path,
            "sha256": self.sha256,
            "min_detection_confidence": self.min_detection_confidence,
            "max_faces": self.max_faces,
            "tile_search": self.tile_search,
            "turn_search": self.turn_search,
            "closed": self._closed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.model_path = state["model_path"]
        self.sha256 = state["sha256"]
        self.min_detection_confidence = state["min_detection_confidence"]
        self.max_faces = state["max_faces"]
        self.tile_search = bool(state.get("tile_search", True))
        self.turn_search = bool(state.get("turn_search", True))
        self._lock = threading.Lock()
        self._landmarker = None
        self.canonical = None
        self._pid = -1
        self._finalizer = None
        self._closed = bool(state.get("closed", False))
        if not self._closed:
            self._open()

    def __repr__(self) -> str:
        model = self.model_path or "<bundled>"
        return (f"FaceAnalyzer(model={model!r}, max_faces={self.max_faces}, tile_search={self.tile_search}, "
                f"turn_search={self.turn_search}, "
                f"closed={self._closed})")

    # -- detection -------------------------------------------------------------------------
    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 image (H, W, 3), largest first (by :func:`~preflight.measures.face_size`).

        If the whole image gives none, overlapping tiles are searched (see ``tile_search``); a
        photo stored upside down is recognised and its faces returned turned back into this image's
        pixels (see ``turn_search``).
        """
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 array of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
        faces = self._run(rgb, tiles=self.tile_search)
        if self.turn_search:
            faces = self._upside_down(rgb, faces)
        return faces

    def _run(self, rgb: np.ndarray, *, tiles: bool) -> list[Face]:
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        image = _mp_image(rgb)
        with self._lock:
            if self._closed:
                raise RuntimeError("this FaceAnalyzer is closed")
            if self._pid != os.getpid():  # forked child: the inherited graph is unusable here
                self._release()
                self._open()
            faces = faces_from_result(self._landmarker.detect(image), width, height)
            if not faces and tiles and max(width, height) > TILE_SIDE_PX:
                faces = self._detect_in_tiles(rgb)
        return faces

    def _upside_down(self, rgb: np.ndarray, faces: list[Face]) -> list[Face]:
        """``faces``, or the faces of the image turned by 180 degrees (in this image's pixels) when
        those are the better fit: see ``turn_search`` and the ``TURN_*`` constants. When no face is
        found either way, the image turned by a quarter each way is searched too."""
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        if faces:
            upright = eye_shading(rgb, faces[0].landmarks)
            if upright is None or upright <= TURN_DOUBT:
                return faces
            turned, found, shading = self._found_turned(rgb, 2, tiles=False, alone=False)
            if not found or shading is None:
                return faces
            back = [turn_face(face, 2, width, height) for face in found]
            same = box_iou(landmark_extent(faces[0].landmarks), landmark_extent(back[0].landmarks))
            doubt_upright = turn_doubt(upright, lip_redness(rgb, faces[0].landmarks))
            doubt_turned = turn_doubt(shading, lip_redness(turned, found[0].landmarks))
            return back if same > TURN_SAME_FACE_IOU and doubt_turned <= doubt_upright - TURN_MARGIN else faces
        # no face at all: the half turn searched as thoroughly as the upright image (tiles included),
        # then a quarter turn each way, whole image only and stricter: a face MediaPipe missed upright
        # may be blurred or dark, and a quarter turn of it can give a tilted, forced fit
        for quarters, tiles, strict in ((2, self.tile_search, False), (1, False, True), (3, False, True)):
            turned, found, shading = self._found_turned(rgb, quarters, tiles=tiles, alone=True)
            if found and not (strict and shading is not None
                              and turn_doubt(shading, lip_redness(turned, found[0].landmarks)) > TURN_DOUBT):
                return [turn_face(face, quarters, width, height) for face in found]
        return faces

    def _found_turned(self, rgb: np.ndarray, quarters: int, *, tiles: bool,
                      alone: bool) -> tuple[np.ndarray, list[Face], float | None]:
        """The image turned counter-clockwise by ``quarters`` quarter turns, its faces (in its own
        pixels) if the main one's eyes look like eyes (or, when it is the only face found at all and
        its brows are cut off, its lips look like lips), else none, and that eye shading."""
        turned = np.ascontiguousarray(np.rot90(rgb, quarters))
        found = self._run(turned, tiles=tiles)
        if not found:
            return turned, [], None
        shading = eye_shading(turned, found[0].landmarks)
        if shading is None:  # brows or cheeks outside the image: only a face found nowhere else
            redness = lip_redness(turned, found[0].landmarks)
            kept = alone and redness is not None and redness > TURN_LIPS_REDDER
            return turned, found if kept else [], None
        return turned, found if shading < TURN_CONFIRM else [], shading

    def _detect_in_tiles(self, rgb: np.ndarray) -> list[Face]:
        """Faces found in the tiles of :func:`tile_grid`, in full-image pixels. Call with the lock held."""
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        found: list[tuple[tuple[int, int, int, int], Face]] = []
        for tile in tile_grid(width, height):
            x, y, w, h = tile
            # z comes out scaled by the tile's width: the same pixels as x and y
            faces = faces_from_result(self._landmarker.detect(_mp_image(rgb[y : y + h, x : x + w])), w, h)
            found += [(tile, face) for face in faces]
        return merge_tile_faces(found, width, height)[: self.max_faces]


def merge_tile_faces(found: list[tuple[tuple[int, int, int, int], Face]], width: int, height: int) -> list[Face]:
    """One :class:`Face` per face from tile detections ((x, y, w, h) of the tile, face in the tile's
    pixels), moved into the pixels of the (width, height) image, largest first.

    A detection crossing a tile edge that is inside the image is dropped: its landmarks are
    extrapolated from part of the face (eye distance off by 5-15 %). Of the copies of a face found in
    several tiles the one farthest from such an edge is kept. A face cut by every tile is therefore
    not reported; the overlap of :func:`tile_grid` makes that a face the full frame finds anyway.
    The matrix is dropped (see :attr:`Face.matrix`).
    """
    ranked: list[tuple[float, Face]] = []
    for (x, y, w, h), face in found:
        x0, y0, x1, y1 = face.extent
        inner_gaps = [gap for gap, on_image_edge in (
            (x0, x == 0), (y0, y == 0), (w - x1, x + w >= width), (h - y1, y + h >= height),
        ) if not on_image_edge]
        margin = min(inner_gaps, default=math.inf)
        if margin >= 0:
            landmarks = face.landmarks + np.array([x, y, 0], dtype=np.float32)
            ranked.append((margin, Face(landmarks=landmarks, blendshapes=face.blendshapes, matrix=None,
                                        image_size=(width, height))))
    kept: list[Face] = []
    for _, face in sorted(ranked, key=lambda item: item[0], reverse=True):
        if all(box_iou(face.extent, k.extent) <= TILE_DUPLICATE_IOU for k in kept):
            kept.append(face)
    kept.sort(key=_extent_size, reverse=True)
    return kept


def turn_doubt(eye_shading: float, lip_redness: float | None) -> float:
    """How much a fit looks forced onto an inverted face (higher: more); see the ``TURN_*`` constants."""
    return eye_shading - TURN_REDNESS_WEIGHT * (lip_redness or 0.0)


def turn_face(face: Face, quarters: int, width: int, height: int) -> Face:
    """A face found in ``np.rot90(image, quarters)`` (turned counter-clockwise), in the pixels of the
    (width, height) original. A half turn keeps MediaPipe's matrix (turned about the camera's z
    axis with the image); after a quarter turn the matrix is dropped, as for faces found in tiles
    (the gate's head pose comes from its own fit of the landmarks)."""
    marks = face.landmarks.copy()
    x, y = face.landmarks[:, 0], face.landmarks[:, 1]
    quarters %= 4
    if quarters == 1:
        marks[:, 0], marks[:, 1] = width - y, x
    elif quarters == 2:
        marks[:, 0], marks[:, 1] = width - x, height - y
    elif quarters == 3:
        marks[:, 0], marks[:, 1] = y, height - x
    matrix = face.matrix
    if matrix is not None and quarters:
        matrix = np.diag([-1.0, -1.0, 1.0, 1.0]) @ matrix if quarters == 2 else None
    return Face(landmarks=marks, blendshapes=face.blendshapes, matrix=matrix, image_size=(width, height))


def tile_grid(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of the overlapping tiles the second detection pass searches.

    Square tiles (the detector letterboxes to a square, so they waste none of its 128 px) of
    :data:`TILE_SIDE_PX`, or :data:`TILE_MIN_FRACTION` of the longer side if more, evenly spaced so
    that neighbours overlap by at least :data:`TILE_OVERLAP` of the longer side; a side no longer
    than a tile gets one tile as long as itself.
    """
    long_side = max(width, height)
    side = max(TILE_SIDE_PX, math.ceil(long_side * TILE_MIN_FRACTION))
    overlap = math.floor(long_side * TILE_OVERLAP)
    return [(x, y, min(side, width), min(side, height))
            for y in _tile_starts(height, side, overlap) for x in _tile_starts(width, side, overlap)]


def _tile_starts(length: int, side: int, overlap: int) -> list[int]:
    if length <= side:
        return [0]
    # n tiles at even steps of (length - side) / (n - 1), each step at most side - overlap
    n = math.ceil((length - overlap) / (side - overlap))
    return [round(i * (length - side) / (n - 1)) for i in range(n)]


def _mp_image(rgb: np.ndarray) -> Any:
    from mediapipe.tasks.python.vision.core.image import Image, ImageFormat

    return Image(image_format=ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


_IMPORT_LOCK = threading.Lock()


class _DeferredPyplot(types.ModuleType):
    """Stands in for ``matplotlib.pyplot`` while MediaPipe is imported, and forwards any use to the
    real module (imported then)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        real = importlib.import_module("matplotlib.pyplot")
        if real is self:  # still inside the import window
            raise AttributeError(name)
        return getattr(real, name)


def _import_mediapipe() -> tuple[Any, Any, Any, Any]:
    """Import what the FaceLandmarker needs, without paying for matplotlib.

    ``import mediapipe`` imports every task, including ``drawing_utils``, which imports
    ``matplotlib.pyplot`` at module level: about half of MediaPipe's import time and of our cold
    start. We never draw, so while MediaPipe is imported (and only if matplotlib is not imported
    yet) ``matplotlib`` and ``matplotlib.pyplot`` are stand-ins; they are removed right after, so
    a later ``import matplotlib.pyplot`` gets the real module, and MediaPipe's own drawing helpers
    still work (the stand-in forwards to the real module on first use).
    """
    with _IMPORT_LOCK:
        stubs: dict[str, types.ModuleType] = {}
        if "mediapipe.tasks.python.vision.drawing_utils" not in sys.modules and not (
            {"matplotlib", "matplotlib.pyplot"} & set(sys.modules)
        ):
            pyplot = _DeferredPyplot("matplotlib.pyplot")
            package = types.ModuleType("matplotlib")
            package.__path__ = []
            package.pyplot = pyplot  # type: ignore[attr-defined]
            stubs = {"matplotlib": package, "matplotlib.pyplot": pyplot}
            sys.modules.update(stubs)
        try:
            from mediapipe.tasks.python.core.base_options import BaseOptions
            from mediapipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode
            from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarker, FaceLandmarkerOptions
        finally:
            for name, module in stubs.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
    return BaseOptions, VisionTaskRunningMode, FaceLandmarker, FaceLandmarkerOptions


def _close_landmarker(landmarker: Any) -> None:
    try:
        landmarker.close()
    except Exception:
        # At interpreter exit MediaPipe's dispatcher thread pool is already shut down and close()
        # cannot run; the process is ending anyway. Forget the handle so that MediaPipe's own
        # __del__ does not print a traceback.
        with contextlib.suppress(Exception):
            landmarker._handle = None


def faces_from_result(result: Any, width: int, height: int) -> list[Face]:
    """Convert a ``FaceLandmarkerResult`` to :class:`Face` objects in pixels, largest first."""
    faces: list[Face] = []
    scale = np.array([width, height, width], dtype=np.float32)
    blendshape_lists = result.face_blendshapes or []
    matrices = result.facial_transformation_matrixes or []
    for i, marks in enumerate(result.face_landmarks or []):
        if len(marks) < N_LANDMARKS:  # a model without iris landmarks: not ours to judge
            continue
        pts = np.array([(p.x, p.y, p.z) for p in marks], dtype=np.float32) * scale
        shapes = {c.category_name: float(c.score) for c in blendshape_lists[i]} if i < len(blendshape_lists) else {}
        matrix = np.asarray(matrices[i], dtype=np.float64).reshape(4, 4) if i < len(matrices) else None
        faces.append(Face(landmarks=pts, blendshapes=shapes, matrix=matrix, image_size=(width, height)))
    faces.sort(key=_extent_size, reverse=True)
    return faces


def _extent_size(face: Face) -> float:
    """The face's size as ``face_size_px`` measures it (in its own frame, so a tilted head is not
    ranked by its axis-aligned box): the primary face is the one the size rules judge."""
    return face_size(face.landmarks)


# -- the canonical face model inside the bundle --------------------------------------------------

_GEOMETRY_METADATA = "geometry_pipeline_metadata_landmarks.binarypb"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _proto_fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of a protobuf message: just enough wire format for the
    geometry metadata (varints, 32-bit floats, nested messages, packed arrays)."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def parse_geometry_metadata(data: bytes) -> CanonicalFace:
    """The canonical mesh and Procrustes landmark weights of MediaPipe's
    ``GeometryPipelineMetadata`` (field 1 ``canonical_mesh`` with its interleaved x, y, z, u, v
    ``vertex_buffer``; field 2 ``procrustes_landmark_basis`` of (landmark_id, weight))."""
    floats: list[float] = []
    ids: list[int] = []
    weights: list[float] = []
    for number, wire, value in _proto_fields(data):
        if number == 1 and wire == 2:
            for n2, w2, v2 in _proto_fields(value):
                if n2 == 3 and w2 == 5:
                    floats.append(struct.unpack("<f", v2)[0])
                elif n2 == 3 and w2 == 2:  # packed
                    floats.extend(struct.unpack(f"<{len(v2) // 4}f", v2))
        elif number == 2 and wire == 2:
            entry = {n2: v2 for n2, _, v2 in _proto_fields(value)}
            ids.append(int(entry.get(1, 0)))
            raw = entry.get(2)
            weights.append(struct.unpack("<f", raw)[0] if isinstance(raw, bytes) else 0.0)
    if len(floats) % 5 or not floats or not ids:
        raise ValueError("geometry metadata has no canonical mesh or landmark basis")
    vertices = np.asarray(floats, dtype=np.float64).reshape(-1, 5)[:, :3]
    return CanonicalFace(vertices=vertices, indices=np.asarray(ids, dtype=np.intp),
                         weights=np.asarray(weights, dtype=np.float64))


def canonical_face_from_bundle(bundle: bytes) -> CanonicalFace | None:
    """The canonical face of a ``.task`` bundle, or None if it has no (readable) geometry metadata."""
    try:
        with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
            data = archive.read(_GEOMETRY_METADATA)
        return parse_geometry_metadata(data)
    except (KeyError, ValueError, zipfile.BadZipFile, struct.error, IndexError):
        return None
