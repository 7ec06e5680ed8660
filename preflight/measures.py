"""Small, pure measurement functions: arrays in, numbers out (in the spirit of scikit-image).

Nothing here knows about policies, issues or MediaPipe objects. Landmarks are the (478, 3) float
arrays of :class:`preflight.face.Face` (x, y in pixels of the oriented image; z in the same scale),
images are uint8 arrays. Conventions (see ``docs/accuracy.md``):

* ``roll_deg``: angle of the line from the subject's right iris (the image-left eye of an
  unmirrored face) to the left iris, ``atan2(dy, dx)`` with y pointing down: positive when the
  image-right eye is lower (head tilted clockwise as seen).
* ``yaw_deg``: positive when the nose points to the image's right.
* ``pitch_deg``: positive when the chin goes up (the nose points toward the top of the image).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

# -- landmark groups (MediaPipe face mesh numbering) -----------------------------------------

#: The face outline, clockwise from the top of the forehead (landmark 10) past the chin (152).
FACE_OVAL: Final = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
#: Eyelid contours. "Right"/"left" are the subject's (the right eye is on the image's left).
RIGHT_EYE: Final = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE: Final = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
RIGHT_IRIS_CENTRE: Final = 468
LEFT_IRIS_CENTRE: Final = 473
#: Eye corners (outer, inner) used for eye centres in the canonical model, which has no iris points.
RIGHT_EYE_CORNERS: Final = (33, 133)
LEFT_EYE_CORNERS: Final = (263, 362)
NOSE_BRIDGE: Final = 168
#: Outer lip contour.
LIPS: Final = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
CHIN: Final = 152
#: Cheek patches below each eye (subject's right, left): skin reference for the sunglasses score.
RIGHT_CHEEK: Final = (117, 118, 101, 36, 205, 187, 123, 116)
LEFT_CHEEK: Final = (346, 347, 330, 266, 425, 411, 352, 345)

#: Sharpness is measured after resampling the face so that its frontal-equivalent eye distance is
#: this many pixels (see :func:`sharpness`). Calibrated in ``bench/calibrate.py``.
SHARPNESS_EYE_DISTANCE_PX: Final = 40.0

#: Luma at or below this is "crushed to black", at or above ``CLIPPED_LUMA`` "clipped to white".
CRUSHED_LUMA: Final = 16
CLIPPED_LUMA: Final = 250


# -- geometry ----------------------------------------------------------------------------------

def eye_distance(landmarks: np.ndarray) -> float:
    """Distance between the two iris centres, in pixels (2-D, as seen in the image)."""
    d = landmarks[LEFT_IRIS_CENTRE, :2] - landmarks[RIGHT_IRIS_CENTRE, :2]
    return float(math.hypot(float(d[0]), float(d[1])))


def roll_deg(landmarks: np.ndarray) -> float:
    """In-plane rotation of the eye line, in degrees (positive: the image-right eye is lower).

    The line runs from the subject's right iris to the left iris, so the angle is continuous
    beyond +-90 degrees: a face upside down reads about +-180 (on untagged upside-down photos the
    landmark model often fits an upright mesh instead; ``FaceAnalyzer(turn_search=True)`` corrects
    that, see docs/accuracy.md).
    """
    d = landmarks[LEFT_IRIS_CENTRE, :2] - landmarks[RIGHT_IRIS_CENTRE, :2]
    return float(math.degrees(math.atan2(float(d[1]), float(d[0]))))


def landmark_extent(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of all landmarks, unclipped."""
    xy = landmarks[:, :2]
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def face_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the landmark extent, in whole pixels. Not clipped: a face cut off by the
    border has a box that extends past it."""
    x0, y0, x1, y1 = landmark_extent(landmarks)
    xi, yi = math.floor(x0), math.floor(y0)
    return xi, yi, math.ceil(x1) - xi, math.ceil(y1) - yi


def face_size(landmarks: np.ndarray) -> float:
    """Shorter side of the tight landmark box (forehead to chin, cheek to cheek), in pixels.

    The box is taken in the face's own frame (rotated by :func:`roll_deg`), so tilting the head
    in the image plane does not change the size.
    """
    angle = math.radians(roll_deg(landmarks))
    c, s = math.cos(angle), math.sin(angle)
    xy = landmarks[:, :2].astype(np.float64)
    u = xy[:, 0] * c + xy[:, 1] * s
    v = -xy[:, 0] * s + xy[:, 1] * c
    return float(min(u.max() - u.min(), v.max() - v.min()))


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon (shoelace formula)."""
    if len(points) < 3:
        return 0.0
    x = points[:, 0].astype(np.float64)
    y = points[:, 1].astype(np.float64)
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _clip_polygon(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """Sutherland-Hodgman clipping of a polygon to the rectangle [0, width] x [0, height]."""
    poly: list[tuple[float, float]] = [(float(p[0]), float(p[1])) for p in points]
    edges = ((0, 0.0, 1), (0, width, -1), (1, 0.0, 1), (1, height, -1))  # axis, bound, inside sign
    for axis, bound, sign in edges:
        if not poly:
            break
        out: list[tuple[float, float]] = []
        prev = poly[-1]
        for cur in poly:
            cur_in = (cur[axis] - bound) * sign >= 0
            prev_in = (prev[axis] - bound) * sign >= 0
            if cur_in != prev_in:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            if cur_in:
                out.append(cur)
            prev = cur
        poly = out
    return np.array(poly, dtype=np.float64).reshape(-1, 2)


def cut_off_fraction(landmarks: np.ndarray, width: int, height: int) -> float:
    """Share of the face-outline area that lies outside the image (0 = all inside).

    MediaPipe extrapolates the landmarks of a face that the border cuts, so the outline still
    describes the whole face.
    """
    oval = landmarks[list(FACE_OVAL), :2].astype(np.float64)
    if oval.min() >= 0 and oval[:, 0].max() <= width and oval[:, 1].max() <= height:
        return 0.0  # the usual case: nothing to clip
    total = polygon_area(oval)
    if total <= 0:
        return 0.0
    inside = polygon_area(_clip_polygon(oval, float(width), float(height)))
    return float(min(1.0, max(0.0, 1.0 - inside / total)))


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# -- head pose -------------------------------------------------------------------------------

@dataclass(frozen=True)
class CanonicalFace:
    """MediaPipe's canonical face model (from the bundle's geometry metadata).

    ``vertices`` (468, 3) in centimetres, axes x right (toward the subject's left), y up, z toward
    the viewer; ``indices`` and ``weights`` are the landmarks and weights MediaPipe's own Procrustes
    solver uses for the facial transformation matrix.
    """

    vertices: np.ndarray
    indices: np.ndarray
    weights: np.ndarray

    @property
    def eye_distance(self) -> float:
        """Distance between the eye centres (mid-points of the eye corners), in model units."""
        v = self.vertices
        right = (v[RIGHT_EYE_CORNERS[0]] + v[RIGHT_EYE_CORNERS[1]]) / 2
        left = (v[LEFT_EYE_CORNERS[0]] + v[LEFT_EYE_CORNERS[1]]) / 2
        return float(np.linalg.norm(left - right))


@dataclass(frozen=True)
class Pose:
    pitch_deg: float
    yaw_deg: float
    #: Roll of the fitted rotation (for comparison; the gate reports the eye-line :func:`roll_deg`).
    roll_deg: float
    #: Pixels per model unit of the fit.
    scale: float
    #: The fitted rotation (canonical model -> image axes x right, y up, z toward the viewer).
    rotation: np.ndarray


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees, in our conventions, of a rotation whose axes are x right,
    y *up*, z toward the viewer (the canonical-model and OpenGL camera axes).

    Yaw and pitch describe where the face's forward axis (the canonical +z, the nose direction)
    points: ``yaw = atan2(f_x, f_z)`` (positive toward the image's right), ``pitch =
    atan2(f_y, hypot(f_x, f_z))`` (positive up). Roll is the angle of the rotated x axis (the
    subject's right-to-left eye direction) in the image, with the image's y pointing down.
    """
    r = np.asarray(rotation, dtype=np.float64)[:3, :3]
    f = r[:, 2]
    yaw = math.degrees(math.atan2(f[0], f[2]))
    pitch = math.degrees(math.atan2(f[1], math.hypot(f[0], f[2])))
    x_axis = r[:, 0]
    roll = math.degrees(math.atan2(-x_axis[1], x_axis[0]))
    return pitch, yaw, roll


def head_pose(landmarks: np.ndarray, canonical: CanonicalFace) -> Pose:
    """Head pose by a weighted similarity (Procrustes) fit of the canonical face to the landmarks.

    This is the fit MediaPipe's geometry pipeline uses for the facial transformation matrix, but
    under *weak perspective* (the landmarks' own x, y, z in pixels) instead of a virtual pinhole
    camera. The angles therefore describe the face as seen in the image and do not change when
    the same face is shown elsewhere in the frame (the matrix's yaw and pitch do, by up to the
    angle under which the face is seen from the virtual camera).
    """
    idx = canonical.indices
    pts = landmarks[idx].astype(np.float64)
    # image axes (x right, y down, z away) -> model axes (x right, y up, z toward the viewer)
    p = np.stack([pts[:, 0], -pts[:, 1], -pts[:, 2]], axis=1)
    c = canonical.vertices[idx].astype(np.float64)
    w = canonical.weights / canonical.weights.sum()
    pc = p - (w[:, None] * p).sum(axis=0)
    cc = c - (w[:, None] * c).sum(axis=0)
    h = (w[:, None] * cc).T @ pc
    u, sv, vt = np.linalg.svd(h)
    d = 1.0 if np.linalg.det(vt.T @ u.T) >= 0 else -1.0
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    scale = float((sv * np.array([1.0, 1.0, d])).sum() / (w * (cc**2).sum(axis=1)).sum())
    pitch, yaw, roll = angles_from_rotation(rot)
    return Pose(pitch_deg=pitch, yaw_deg=yaw, roll_deg=roll, scale=scale, rotation=rot)


# -- face region -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FaceCrop:
    """The face region in luma (Rec. 601 Y' of the sRGB values, 0..255), resampled.

    ``gray`` is float32; ``mask`` selects the pixels inside the face outline (eroded so that the
    face-background edge and the filter borders do not count); ``factor`` is the resampling
    factor from the image (``crop = image * factor``); ``origin`` is the image position of the
    crop's (0, 0) before scaling.
    """

    gray: np.ndarray
    mask: np.ndarray
    factor: float
    origin: tuple[int, int]
    #: The same region in sRGB (uint8, H x W x 3), point-sampled on the same grid: for colour measures.
    rgb: np.ndarray

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Image pixel coordinates -> crop pixel coordinates."""
        out: np.ndarray = (np.asarray(points, dtype=np.float64)[..., :2] - np.array(self.origin)) * self.factor
        return out


def face_crop(
    rgb: np.ndarray,
    landmarks: np.ndarray,
    face_scale_px: float,
    *,
    eye_distance_px: float = SHARPNESS_EYE_DISTANCE_PX,
    erode_fraction: float = 0.1,
) -> FaceCrop | None:
    """Cut out the face, convert it to luma and resample it so that ``face_scale_px`` (the
    frontal-equivalent eye distance) becomes ``eye_distance_px``.

    Only the face's bounding box is converted and resampled, never the whole frame. Downsampling
    uses pixel-area averaging; a face smaller than the target is upsampled with Lanczos, which adds
    no detail but keeps the edges it has (a blurred small face still reads blurred: tested).
    """
    height, width = rgb.shape[:2]
    if face_scale_px <= 0:
        return None
    factor = eye_distance_px / face_scale_px
    x0, y0, x1, y1 = landmark_extent(landmarks)
    pad = 4.0 / factor
    ix0, iy0 = max(0, math.floor(x0 - pad)), max(0, math.floor(y0 - pad))
    ix1, iy1 = min(width, math.ceil(x1 + pad)), min(height, math.ceil(y1 + pad))
    if ix1 - ix0 < 4 or iy1 - iy0 < 4:
        return None
    region = np.ascontiguousarray(rgb[iy0:iy1, ix0:ix1])
    gray = cv2.cvtColor(region, cv2.COLOR_RGB2GRAY)
    out_w = max(4, round((ix1 - ix0) * factor))
    out_h = max(4, round((iy1 - iy0) * factor))
    # shrinking: area averaging; enlarging a small face: Lanczos, which keeps its edges about as sharp
    # as the same face photographed larger (bilinear read the 240p ladder photo 25 % softer, Lanczos 7 %)
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LANCZOS4
    small = cv2.resize(gray, (out_w, out_h), interpolation=interp).astype(np.float32)
    # colour is only needed for a median (skin chroma): point samples at the same grid are enough,
    # at a tenth of the cost of area-averaging three channels
    small_rgb = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    crop = FaceCrop(gray=small, mask=np.zeros(small.shape, dtype=bool), factor=factor, origin=(ix0, iy0),
                    rgb=small_rgb)
    oval = np.round(crop.to_crop(landmarks[list(FACE_OVAL)])).astype(np.int32)
    mask: np.ndarray = np.zeros(small.shape, dtype=np.uint8)
    cv2.fillPoly(mask, [oval], 1)
    radius = max(1, round(erode_fraction * eye_distance_px))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    mask = np.asarray(cv2.erode(mask, kernel), dtype=np.uint8)
    border = 3  # filter support: never judge pixels whose neighbourhood leaves the crop
    mask[:border, :] = 0
    mask[-border:, :] = 0
    mask[:, :border] = 0
    mask[:, -border:] = 0
    return FaceCrop(gray=small, mask=mask.astype(bool), factor=factor, origin=(ix0, iy0), rgb=small_rgb)


# -- sharpness ---------------------------------------------------------------------------------

def _directional_kernels(n: int, sigma_along: float, sigma_across: float) -> list[tuple[float, np.ndarray]]:
    r = 3
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    out = []
    for i in range(n):
        theta = math.pi * i / n
        u = xx * math.cos(theta) + yy * math.sin(theta)
        v = -xx * math.sin(theta) + yy * math.cos(theta)
        k = np.exp(-(u**2) / (2 * sigma_along**2) - v**2 / (2 * sigma_across**2))
        out.append((theta, (k / k.sum()).astype(np.float32)))
    return out


_KERNELS: Final = _directional_kernels(8, 1.0, 0.35)
_DX: Final = np.array([[-0.5, 0.0, 0.5]], dtype=np.float32)
_DY: Final = np.ascontiguousarray(_DX.T)


def directional_sharpness(gray: np.ndarray, mask: np.ndarray | None = None) -> list[float]:
    """Re-blur sharpness per direction (8 directions, 0..157.5 degrees).

    For each direction the image is blurred a little along that direction only (a Gaussian of
    1 px), and the loss of gradient along it is measured: ``1 - sum|D(Bg)| / sum|Dg|``. A sharp
    image loses much of its fine gradient (values around 0.1-0.25); an image already blurred
    along that direction loses little (toward 0). The ratio does not depend on brightness or
    contrast (Crete-Roffet et al. 2007, generalised to any direction to catch motion blur).
    """
    g = np.ascontiguousarray(gray, dtype=np.float32)
    selected = np.ones(g.shape, np.uint8) if mask is None else np.asarray(mask, dtype=np.uint8)
    if not selected.any():
        return []
    gx = cv2.filter2D(g, -1, _DX, borderType=cv2.BORDER_REFLECT)
    gy = cv2.filter2D(g, -1, _DY, borderType=cv2.BORDER_REFLECT)
    out = []
    for theta, kernel in _KERNELS:
        # the derivative along theta, before and after the blur along theta (both linear, so
        # blurring the directional derivative equals differentiating the blurred image)
        d = cv2.addWeighted(gx, math.cos(theta), gy, math.sin(theta), 0.0)
        before = cv2.norm(d, cv2.NORM_L1, mask=selected)  # sum of |d| over the selected pixels
        if before <= 1e-6:
            out.append(0.0)
            continue
        blurred = cv2.filter2D(d, -1, kernel, borderType=cv2.BORDER_REFLECT)
        out.append(1.0 - cv2.norm(blurred, cv2.NORM_L1, mask=selected) / before)
    return out


def sharpness(gray: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """No-reference sharpness: the *least* sharp direction of :func:`directional_sharpness`.

    Taking the minimum over directions makes motion blur (sharp across, blurred along the motion)
    count as much as defocus. ``None`` when fewer than 64 pixels are selected or the region is flat.
    """
    if mask is not None and int(mask.sum()) < 64:
        return None
    values = directional_sharpness(gray, mask)
    if not values:
        return None
    return max(0.0, min(values))


# -- exposure and lighting ---------------------------------------------------------------------

#: Exposure is judged on the inner face: the outline shrunk toward the nose bridge to this share,
#: which keeps hair, ears, the background and rim light out (calibrated in ``bench/calibrate.py``).
INNER_FACE_SHRINK: Final = 0.65


def inner_face_mask(crop: FaceCrop, landmarks: np.ndarray, shrink: float = INNER_FACE_SHRINK) -> np.ndarray:
    """Boolean mask (in ``crop`` pixels) of the face outline scaled by ``shrink`` toward the nose bridge."""
    oval = crop.to_crop(landmarks[list(FACE_OVAL)])
    centre = crop.to_crop(landmarks[NOSE_BRIDGE])
    return _polygon_mask(crop.gray.shape, centre + (oval - centre) * shrink)


@dataclass(frozen=True)
class Exposure:
    #: Mean luma (sRGB Y', 0..255).
    brightness: float
    #: Share of pixels at or below CRUSHED_LUMA / at or above CLIPPED_LUMA.
    underexposed_fraction: float
    overexposed_fraction: float
    #: 95th percentile of luma: the highlights. Every well-exposed face has some (sclera, the
    #: light on the forehead and nose), whatever its skin tone; an underexposed one has none.
    highlight_luma: float
    #: 5th percentile of luma: the shadows (pupils, brows, nostrils). Over-exposure lifts them.
    shadow_luma: float


def exposure(gray: np.ndarray, mask: np.ndarray | None = None) -> Exposure | None:
    """Exposure statistics of the luma values selected by ``mask`` (all when None)."""
    values = np.asarray(gray)[mask] if mask is not None else np.asarray(gray).ravel()
    if values.size == 0:
        return None
    shadow, highlight = _percentiles(values, (0.05, 0.95))
    return Exposure(
        brightness=float(values.mean()),
        underexposed_fraction=float(np.count_nonzero(values <= CRUSHED_LUMA) / values.size),
        overexposed_fraction=float(np.count_nonzero(values >= CLIPPED_LUMA) / values.size),
        highlight_luma=float(highlight),
        shadow_luma=float(shadow),
    )


# -- tone curve --------------------------------------------------------------------------------

_SRGB = np.arange(256, dtype=np.float64) / 255.0
#: sRGB code value -> linear light (IEC 61966-2-1).
SRGB_TO_LINEAR: Final = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4)
#: log2 of linear light, floored at 12 stops below white (code value 0 would be -inf).
_LOG2_LINEAR: Final = np.log2(np.maximum(SRGB_TO_LINEAR, 2.0**-12))
#: log2 of linear light plus a small floor, for ratios of two channels.
_LOG2_LINEAR_EPS: Final = np.log2(SRGB_TO_LINEAR + 1e-4)

#: The untouched faces of the calibration corpus have a median contrast of this many stops
#: (2nd to 98th percentile of linear luminance on the inner face) and a median skin chroma
#: log2(R/G) of this many stops; :func:`tone` expresses both relative to them.
REFERENCE_CONTRAST_STOPS: Final = 5.1
REFERENCE_CHROMA_RG: Final = 0.86
#: Below this median saturation (max-min)/max the face has no colour to measure (a grey image).
MIN_SKIN_SATURATION: Final = 0.05
#: Weight of the contrast in :func:`tone` (the chroma gets the rest). Contrast ignores the colour of
#: the light; chroma does not (a warm indoor cast raises it like a tone curve would), so contrast
#: weighs more (calibrated with white-balance casts in ``bench/calibrate.py``).
TONE_CONTRAST_WEIGHT: Final = 0.7


@dataclass(frozen=True)
class Tone:
    #: Spread of the face's linear luminance, 2nd to 98th percentile, in stops (EV).
    contrast_stops: float
    #: Median log2(R/G) of the face's mid-tone pixels in linear light, or None without colour.
    chroma_rg: float | None
    #: Estimated exponent of the tone curve applied to the photo (about 1 for an ordinary photo,
    #: above for crushed mid-tones, below for washed-out ones), or None without colour.
    gamma: float | None


_IDENTITY: Final = np.arange(256, dtype=np.float64)


def _percentiles(values: np.ndarray, quantiles: tuple[float, ...]) -> list[float]:
    """``np.percentile`` (linear), from a histogram when the values are whole numbers 0..255 (luma
    resampled from uint8 always is), else by numpy."""
    codes = values.astype(np.uint8)
    if np.array_equal(codes, values):
        return _lut_percentiles(codes, _IDENTITY, quantiles)
    return [float(v) for v in np.percentile(values, [100 * q for q in quantiles])]


def _lut_percentiles(codes: np.ndarray, lut: np.ndarray, quantiles: tuple[float, ...]) -> list[float]:
    """``np.percentile(lut[codes], 100 * q)`` (linear interpolation) for uint8 ``codes`` and a
    non-decreasing ``lut``, from a histogram: a tenth of the cost on a few thousand pixels."""
    cdf = np.cumsum(np.bincount(codes, minlength=256))
    n = int(cdf[-1])
    out = []
    for q in quantiles:
        pos = q * (n - 1)
        lo = math.floor(pos)
        a = int(np.searchsorted(cdf, lo, side="right"))  # the lo-th smallest code (0-based)
        b = int(np.searchsorted(cdf, min(lo + 1, n - 1), side="right"))
        out.append(float(lut[a] + (pos - lo) * (lut[b] - lut[a])))
    return out


def tone(gray: np.ndarray, rgb: np.ndarray, mask: np.ndarray) -> Tone | None:
    """Estimate the tone curve a face was rendered with, independently of exposure and skin tone.

    Multiplying the light (exposure, or a darker or lighter skin) adds a constant to log-luminance
    and leaves ratios alone; a tone curve ``out = in ** g`` multiplies both the face's contrast in
    stops and its chroma log2(R/G) by ``g``. The weighted mean of the two ratios to their reference
    values is the estimate (:data:`TONE_CONTRAST_WEIGHT`: the colour of the light moves the chroma
    too). A darker skin is redder and its specular highlights stand out more, so it reads somewhat
    higher (about 1.5 at most in the corpus): the rule's threshold keeps a margin above.
    Contrast is read from ``gray`` (luma, 0..255), chroma from ``rgb`` (uint8 sRGB), both under ``mask``.
    """
    mask = np.asarray(mask, dtype=bool)
    codes = np.clip(np.rint(np.asarray(gray)[mask]), 0, 255).astype(np.uint8)
    if codes.size < 64:
        return None
    p2, p98 = _lut_percentiles(codes, _LOG2_LINEAR, (0.02, 0.98))
    contrast = float(p98 - p2)
    # colour on whole planes (cheaper than indexing H x W x 3 by a mask), then select
    image = np.ascontiguousarray(rgb)
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    top = cv2.max(cv2.max(image[..., 0], image[..., 1]), image[..., 2])
    bottom = cv2.min(cv2.min(image[..., 0], image[..., 1]), image[..., 2])
    mid = mask & (luma > 25) & (luma < 235) & (top < CLIPPED_LUMA)
    chroma: float | None = None
    n = int(np.count_nonzero(mid))
    if n >= 32:
        sel_top = top[mid].astype(np.float32)
        saturated = np.count_nonzero((sel_top - bottom[mid]) >= MIN_SKIN_SATURATION * sel_top)
        if 2 * saturated >= n:  # the median pixel has colour
            chroma = float(np.median(_LOG2_LINEAR_EPS[image[..., 0][mid]] - _LOG2_LINEAR_EPS[image[..., 1][mid]]))
    gamma = None if chroma is None else tone_gamma(contrast, chroma)
    return Tone(contrast_stops=contrast, chroma_rg=chroma, gamma=gamma)


def tone_gamma(contrast_stops: float, chroma_rg: float, weight: float = TONE_CONTRAST_WEIGHT) -> float:
    """The tone-curve estimate from its two parts: each relative to its reference value, weighted."""
    return float(weight * contrast_stops / REFERENCE_CONTRAST_STOPS
                 + (1.0 - weight) * chroma_rg / REFERENCE_CHROMA_RG)


def lighting_asymmetry(crop: FaceCrop, landmarks: np.ndarray) -> float | None:
    """How much darker one half of the face is: ``|mean_left - mean_right| / max(...)`` (0..1).

    The halves are split by the face's midline (the perpendicular of the eye line through the
    point between the eyes), using the face-outline mask of ``crop``.
    """
    right = crop.to_crop(landmarks[RIGHT_IRIS_CENTRE])
    left = crop.to_crop(landmarks[LEFT_IRIS_CENTRE])
    mid = (right + left) / 2.0
    axis = left - right
    norm = float(np.hypot(axis[0], axis[1]))
    if norm <= 0:
        return None
    axis = axis / norm
    ys, xs = np.nonzero(crop.mask)
    if xs.size < 32:
        return None
    side = (xs - mid[0]) * axis[0] + (ys - mid[1]) * axis[1]
    # leave out a band around the midline (the nose casts its own shadow either way)
    band = 0.15 * norm
    values = crop.gray[ys, xs]
    a = values[side < -band]
    b = values[side > band]
    if a.size < 16 or b.size < 16:
        return None
    ma, mb = float(a.mean()), float(b.mean())
    top = max(ma, mb)
    return 0.0 if top <= 0 else abs(ma - mb) / top


def colourfulness(rgb: np.ndarray, max_pixels: int = 16384) -> float:
    """Hasler & Suesstrunk (2003) colourfulness of the whole image (0 for a grey image).

    ``M = sqrt(sd_rg^2 + sd_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2)`` with ``rg = R - G`` and
    ``yb = (R + G) / 2 - B``. Computed on a regular subsample of at most ``max_pixels`` pixels.
    """
    h, w = rgb.shape[:2]
    step = max(1, math.ceil(math.sqrt(h * w / max_pixels)))
    sub = rgb[::step, ::step]
    r = sub[..., 0].astype(np.float32)
    g = sub[..., 1].astype(np.float32)
    b = sub[..., 2].astype(np.float32)
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean())))


# -- eyes ----------------------------------------------------------------------------------------

def eye_closed_scores(blendshapes: Mapping[str, float] | None) -> tuple[float | None, float | None]:
    """(subject's left, subject's right) eye-closure scores 0..1 from MediaPipe's blendshapes.

    MediaPipe names the blendshapes after the subject's eyes (ARKit style): ``eyeBlinkRight``
    closes the subject's right eye, the one on the image's left. Checked on a photo of a wink
    (``bench/calibrate.py --eyes``).
    """
    if not blendshapes:
        return None, None
    return blendshapes.get("eyeBlinkLeft"), blendshapes.get("eyeBlinkRight")


def eye_openness(landmarks: np.ndarray) -> tuple[float, float]:
    """(subject's left, subject's right) eyelid gap divided by eye width (about 0.25-0.35 open,
    below 0.1 closed). A geometric cross-check of the blendshapes, used in the bench only."""

    def ratio(upper: int, lower: int, outer: int, inner: int) -> float:
        gap = float(np.linalg.norm(landmarks[upper, :2] - landmarks[lower, :2]))
        width = float(np.linalg.norm(landmarks[outer, :2] - landmarks[inner, :2]))
        return gap / width if width > 0 else 0.0

    return ratio(386, 374, 263, 362), ratio(159, 145, 33, 133)


def _polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1)
    return m.astype(bool)


def sunglasses_score(crop: FaceCrop, landmarks: np.ndarray) -> float | None:
    """0..1: how strongly the eye regions look like dark lenses rather than open or closed eyes.

    Compares the eye regions (the eyelid contours, widened by half their height, where a lens
    would be) with the cheeks below them: dark lenses make the eye region much darker than the skin
    *and* flat (no bright sclera, no iris edge). ``score = darkness * flatness`` where darkness =
    ``1 - eye_mean / cheek_mean`` and flatness = ``1 - eye_p95_minus_p5 / cheek_mean`` (both clipped
    to 0..1) and the worse eye counts.
    """
    shape = crop.gray.shape
    scores = []
    for eye, cheek in ((RIGHT_EYE, RIGHT_CHEEK), (LEFT_EYE, LEFT_CHEEK)):
        pts = crop.to_crop(landmarks[list(eye)])
        centre = pts.mean(axis=0)
        wide = centre + (pts - centre) * np.array([1.15, 1.8])
        eye_mask = _polygon_mask(shape, wide)
        cheek_mask = _polygon_mask(shape, crop.to_crop(landmarks[list(cheek)]))
        eye_values = crop.gray[eye_mask]
        cheek_values = crop.gray[cheek_mask]
        if eye_values.size < 8 or cheek_values.size < 8:
            continue
        skin = _percentiles(cheek_values, (0.5,))[0]
        if skin <= 8:
            continue
        p5, p95 = _percentiles(eye_values, (0.05, 0.95))
        darkness = min(1.0, max(0.0, 1.0 - float(eye_values.mean()) / skin))
        flatness = min(1.0, max(0.0, 1.0 - float(p95 - p5) / skin))
        scores.append(darkness * flatness)
    return max(scores) if scores else None


# -- orientation -----------------------------------------------------------------------------

#: :func:`eye_shading` resamples the eye band so the iris centres are this many pixels apart.
EYE_SHADING_EYE_DISTANCE_PX: Final = 64.0


def _disk_mean(gray: np.ndarray, centre: np.ndarray, radius: float) -> float:
    mask = np.zeros(gray.shape, dtype=np.uint8)
    cv2.circle(mask, (round(float(centre[0])), round(float(centre[1]))), max(1, int(radius)), 1, -1)
    values = gray[mask.astype(bool)]
    return float(values.mean()) if values.size else math.nan


def eye_shading(rgb: np.ndarray, landmarks: np.ndarray) -> float | None:
    """Do the mesh's eyes look like eyes? ``(iris / eye region) x (brow / cheek)`` luminance.

    Real eyes have an iris darker than the eye opening around it, and the brow above an eye is
    darker than the cheek below it: about 0.45 on an ordinary photo, rarely above 0.8. When
    MediaPipe is given an upside-down face without an EXIF tag it often fits an *upright* mesh
    onto it (its roll reads near 0, not 180): the mesh's "eyes" then lie on the mouth and nostrils
    with the chin "above", and the ratio reads above 1. :class:`~preflight.face.FaceAnalyzer`
    uses this to decide when to look at the image turned by 180 degrees. ``None`` when the eyes
    are too small or outside the image. Measured on a copy of the eye band resampled to
    :data:`EYE_SHADING_EYE_DISTANCE_PX` between the irises: cheap, and the same fit reads the same
    at any photo size (MediaPipe's forced fits themselves do change with the size; see
    docs/accuracy.md).
    """
    xy = landmarks[:, :2].astype(np.float64)
    eyes = eye_distance(landmarks)
    if eyes < 8:
        return None
    angle = math.radians(roll_deg(landmarks))
    up = np.array([math.sin(angle), -math.cos(angle)])  # toward the top of the head
    iris = (xy[RIGHT_IRIS_CENTRE], xy[LEFT_IRIS_CENTRE])
    brows = [c + up * eyes * 0.3 for c in iris]
    cheeks = [c - up * eyes * 0.35 for c in iris]
    points = np.vstack([xy[list(RIGHT_EYE)], xy[list(LEFT_EYE)], *brows, *cheeks])
    margin = 0.15 * eyes
    height, width = rgb.shape[:2]
    x0, y0 = (max(0, math.floor(v - margin)) for v in points.min(axis=0))
    x1 = min(width, math.ceil(points[:, 0].max() + margin))
    y1 = min(height, math.ceil(points[:, 1].max() + margin))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    factor = EYE_SHADING_EYE_DISTANCE_PX / eyes
    size = (max(4, round((x1 - x0) * factor)), max(4, round((y1 - y0) * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    band = cv2.resize(cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY), size,
                      interpolation=interp).astype(np.float32)
    origin = np.array([x0, y0], dtype=np.float64)

    def at(point: np.ndarray) -> np.ndarray:
        return np.asarray((point - origin) * factor)

    d = EYE_SHADING_EYE_DISTANCE_PX
    iris_ratios, shading_ratios = [], []
    for centre, brow, cheek, contour in zip(iris, brows, cheeks, (RIGHT_EYE, LEFT_EYE), strict=True):
        opening = band[_polygon_mask(band.shape, at(xy[list(contour)]))]
        if opening.size:
            iris_ratios.append(_disk_mean(band, at(centre), 0.05 * d) / max(1.0, float(opening.mean())))
        shading_ratios.append(_disk_mean(band, at(brow), 0.1 * d) / max(1.0, _disk_mean(band, at(cheek), 0.1 * d)))
    iris_ratios = [v for v in iris_ratios if math.isfinite(v)]
    shading_ratios = [v for v in shading_ratios if math.isfinite(v)]
    if not iris_ratios or not shading_ratios:  # the eye band is cut off by the image border
        return None
    return float(np.mean(iris_ratios) * np.mean(shading_ratios))


def lip_redness(rgb: np.ndarray, landmarks: np.ndarray) -> float | None:
    """Redness ``(R - G) / (R + G + B)`` of the mesh's lips minus that of its eye openings.

    Lips are redder than eyes on a real fit; on a mesh forced onto an upside-down face the "lips"
    lie on the eyes and brows and the "eyes" on the lips, so the difference drops. A tie-breaker
    between two fits of one face (see :class:`~preflight.face.FaceAnalyzer`), not a rule by itself:
    alone it overlaps too much (``bench/upside_down.py``). ``None`` when a region is outside the image.
    """
    xy = landmarks[:, :2].astype(np.float64)
    groups = (xy[list(LIPS)], xy[list(RIGHT_EYE)], xy[list(LEFT_EYE)])
    points = np.vstack(groups)
    height, width = rgb.shape[:2]
    x0, y0 = (max(0, math.floor(v)) for v in points.min(axis=0))
    x1 = min(width, math.ceil(points[:, 0].max()) + 1)
    y1 = min(height, math.ceil(points[:, 1].max()) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    region = rgb[y0:y1, x0:x1].astype(np.float32)
    redness = (region[..., 0] - region[..., 1]) / (region.sum(axis=2) + 1.0)
    origin = np.array([x0, y0], dtype=np.float64)
    lips = redness[_polygon_mask(redness.shape, groups[0] - origin)]
    eyes = redness[_polygon_mask(redness.shape, groups[1] - origin) | _polygon_mask(redness.shape, groups[2] - origin)]
    if not lips.size or not eyes.size:
        return None
    return float(lips.mean() - eyes.mean())


# -- documents (no face) ---------------------------------------------------------------------------

def downsample_gray(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Luma of the whole image, area-downsampled so its longer side is at most ``max_side``."""
    h, w = rgb.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    if factor < 1.0:
        small = cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))),
                           interpolation=cv2.INTER_AREA)
    else:
        small = np.ascontiguousarray(rgb)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def glare_fraction(gray: np.ndarray, min_blob_fraction: float = 0.0005) -> float:
    """Share of the image clipped to white (luma >= 250) in blobs of at least
    ``min_blob_fraction`` of the image (isolated white specks do not count)."""
    clipped = (np.asarray(gray) >= CLIPPED_LUMA).astype(np.uint8)
    if not clipped.any():
        return 0.0
    n, _, stats, _ = cv2.connectedComponentsWithStats(clipped, connectivity=8)
    min_area = max(1, round(min_blob_fraction * clipped.size))
    areas = stats[1:n, cv2.CC_STAT_AREA]
    return float(areas[areas >= min_area].sum() / clipped.size)
