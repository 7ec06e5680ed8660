"""Safe loading: read a source, judge the file from its header, then decode within limits.

Order matters for safety and speed: the format is sniffed from the bytes (never the file name),
width and height come from the header, and pixels are decoded only when the declared size is
within the policy. A decompression bomb (a PNG declaring 100000 x 100000) is judged from its
header and never decoded, and no input, however broken, produces a raw traceback.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union

import cv2
import numpy as np
import simplejpeg
from PIL import Image, UnidentifiedImageError

from . import codes as C
from .errors import InvalidSourceError, SourceNotFoundError, SourceReadError
from .jpeg_quality import estimate_quality
from .policy import Policy
from .report import Issue

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Image.Image, np.ndarray]

#: We never read more than this from a file or stream: far above any acceptable upload, small
#: enough to keep memory bounded when someone passes a video or a disk image by mistake.
MAX_READ_BYTES = 64 * 1024 * 1024

_EXIF_ORIENTATION_TAG = 0x0112


@dataclass
class LoadedImage:
    """An input after loading: file facts, the oriented RGB pixels (if decodable) and load issues."""

    name: str | None = None
    data: bytes | None = None
    format: str | None = None
    file_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    exif_orientation: int | None = None
    jpeg_quality: int | None = None
    jpeg_quality_fit: float | None = None
    rgb: np.ndarray | None = None
    issues: list[Issue] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)
    not_decoded_reason: str | None = None
    #: True when the input was already decoded (array, PIL image): no file rules apply.
    decoded_input: bool = False

    def measurement_fields(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file_bytes": self.file_bytes,
            "jpeg_quality": self.jpeg_quality,
            "exif_orientation": self.exif_orientation,
            "width": self.width,
            "height": self.height,
            "mode": self.mode,
        }


# -- sources ---------------------------------------------------------------------------------

def read_source(source: Source, name: str | None = None) -> tuple[bytes | None, Any, str | None]:
    """Return ``(encoded_bytes, decoded_object, name)``; exactly one of the first two is set.

    Raises :class:`SourceNotFoundError` for a path that is not a file and :class:`SourceReadError`
    when a file or stream exists but cannot be read (no permission, an I/O error).
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        try:
            is_file = path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise SourceNotFoundError(f"no such file: {path} ({exc.strerror or exc})") from exc
        if not is_file:
            if path.is_dir():
                raise SourceNotFoundError(f"{path} is a folder, not an image file")
            raise SourceNotFoundError(f"no such file: {path}")
        try:
            with path.open("rb") as fh:
                return fh.read(MAX_READ_BYTES + 1), None, name or str(path)
        except OSError as exc:
            raise SourceReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None, name
    if isinstance(source, Image.Image):
        return None, source, name or getattr(source, "filename", None) or None
    if isinstance(source, np.ndarray):
        return None, source, name
    read = getattr(source, "read", None)
    if callable(read):
        try:
            data = read(MAX_READ_BYTES + 1)
        except OSError as exc:
            raise SourceReadError(f"cannot read the stream: {exc.strerror or exc}") from exc
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidSourceError("file object must be opened in binary mode")
        return bytes(data), None, name or _stream_name(source)
    raise InvalidSourceError(
        f"cannot read a {type(source).__name__}: pass a path, bytes, a binary file, a PIL image or an RGB array"
    )


def _source_name(source: object) -> str | None:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source) if isinstance(os.fspath(source), str) else None
    return _stream_name(source)


def _stream_name(stream: object) -> str | None:
    value = getattr(stream, "name", None)
    return value if isinstance(value, str) else None


# -- format sniffing and headers -------------------------------------------------------------

def sniff_format(data: bytes) -> str | None:
    """Pillow's name for the format of ``data``, judged by its magic bytes (None if unknown)."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIF"
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "JPEG2000"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JXL"
    if head[:4] in (b"\x00\x00\x01\x00",):
        return "ICO"
    if head[:4] == b"8BPS":
        return "PSD"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"):
        return "PPM"
    return None


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    #: JPEG: an EOI follows the scan data; PNG: the chunks lead to IEND.
    complete: bool
    #: PNG: the payload of the eXIf chunk, if any (read here so Pillow need not decode the image).
    exif: bytes | None = None
    #: PNG: orientation may also sit in a text chunk (ImageMagick's raw EXIF profile, XMP).
    text_metadata: bool = False


def png_header(data: bytes) -> Header | None:
    """Width and height from IHDR; ``complete`` when the chunk chain reaches IEND (bytes after it,
    which some tools append, are ignored); the eXIf payload if present."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    pos, n, exif, complete, text = 8, len(data), None, False, False
    while pos + 12 <= n:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            break  # a chunk runs past the end: truncated (or a corrupt length)
        if kind == b"eXIf":
            exif = data[pos + 8 : pos + 8 + length]
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            text = text or data[pos + 8 : pos + 8 + 80].split(b"\0", 1)[0] in _PNG_METADATA_KEYWORDS
        elif kind == b"IEND":
            complete = True
            break
        pos = end
    return Header(width, height, complete=complete, exif=exif, text_metadata=text)


#: Text-chunk keywords under which PNG writers store EXIF or XMP (and with them, orientation).
_PNG_METADATA_KEYWORDS = frozenset({b"Raw profile type exif", b"Raw profile type APP1", b"XML:com.adobe.xmp"})


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_header(data: bytes) -> Header | None:
    """Width and height from the first SOF segment; ``complete`` when an EOI follows the scan data."""
    pos, n = 2, len(data)
    size: tuple[int, int] | None = None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return None
        if marker in _SOF_MARKERS and pos + 9 <= n:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            size = (width, height)
        if marker == 0xDA:  # start of scan: entropy-coded data follows, EOI must come after it
            if size is None:
                return None
            eoi = data.rfind(b"\xff\xd9")
            return Header(size[0], size[1], complete=eoi > pos)
        pos += 2 + length
    return Header(size[0], size[1], complete=False) if size else None


# -- loading ---------------------------------------------------------------------------------

def load(source: Source, policy: Policy, *, name: str | None = None) -> LoadedImage:
    """Load ``source`` for checking. Never raises for bad image data, only for bad arguments."""
    try:
        data, decoded, name = read_source(source, name)
    except SourceReadError as exc:
        return _unreadable(LoadedImage(name=name or _source_name(source)), str(exc))
    if decoded is not None:
        return _load_decoded(decoded, name, policy)
    assert data is not None
    return _load_encoded(data, name, policy)


def _load_encoded(data: bytes, name: str | None, policy: Policy) -> LoadedImage:
    img = LoadedImage(name=name, data=data if len(data) <= MAX_READ_BYTES else None)
    img.file_bytes = len(data)
    if len(data) > MAX_READ_BYTES:
        img.file_bytes = None  # we stopped reading: the true size is larger still
        img.issues.append(Issue.make(
            C.FILE_TOO_LARGE,
            f"file is larger than {MAX_READ_BYTES} bytes; not read further",
            measured=f">{MAX_READ_BYTES}", limit=policy.max_file_bytes,
        ))
        img.not_decoded_reason = "file too large to read"
        return img
    if not data:
        return _unreadable(img, "the file is empty")

    fmt = sniff_format(data)
    img.format = fmt
    if fmt is None:
        return _unreadable(img, "the data is not an image in any known format")

    header: Header | None
    if fmt == "PNG":
        header = png_header(data)
    elif fmt == "JPEG":
        header = jpeg_header(data)
    else:
        header = _pillow_header(data)
    if header is None:
        return _unreadable(img, f"the {fmt} header is corrupt")

    pil = _pillow_open(data)  # header only; the pixels are decoded below, within the limits
    orientation = 1
    if pil is not None:
        img.mode = pil.mode
        # a PNG's EXIF may follow the pixel data, and Pillow decodes the whole image to find it:
        # read the eXIf chunk ourselves, and ask Pillow only when a text chunk may hold it instead
        if fmt == "PNG" and (header.exif is not None or not header.text_metadata):
            orientation = _exif_payload_orientation(header.exif)
        else:
            orientation = _exif_orientation(pil)
        if fmt == "JPEG":
            estimate = estimate_quality(getattr(pil, "quantization", None) or {})
            if estimate is not None:
                img.jpeg_quality = estimate.quality
                img.jpeg_quality_fit = estimate.fit
    img.exif_orientation = orientation
    img.width, img.height = (header.height, header.width) if orientation >= 5 else (header.width, header.height)

    if max(header.width, header.height) > policy.max_side_px or header.width * header.height > policy.max_decode_pixels:
        img.not_decoded_reason = (
            f"declared size {header.width}x{header.height} exceeds the limits; not decoded"
        )
        return img
    if header.width == 0 or header.height == 0:
        return _unreadable(img, "the image declares zero width or height")
    if not header.complete and fmt in ("JPEG", "PNG"):
        return _unreadable(img, f"the {fmt} data is truncated")

    try:
        rgb = _decode(data, fmt, pil)
    except _DamagedData as exc:
        return _unreadable(img, f"the {fmt} data is damaged ({exc}): part of the picture would be garbage")
    if rgb is None:
        return _unreadable(img, f"the {fmt} pixel data could not be decoded")
    img.rgb = _apply_orientation(rgb, orientation)
    return img


def _unreadable(img: LoadedImage, why: str) -> LoadedImage:
    img.issues.append(Issue.make(C.FAILED_TO_READ_IMAGE, f"failed to read image: {why}"))
    img.not_decoded_reason = why
    return img


def _pillow_open(data: bytes) -> Image.Image | None:
    """Open lazily (header only). Pillow's own bomb check is replaced by ours, so silence it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    except Exception:  # Pillow plugins raise assorted errors on hostile input
        return None


def _pillow_header(data: bytes) -> Header | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))
        return Header(pil.width, pil.height, complete=True)
    except Image.DecompressionBombError:
        # Pillow refused after reading the header; read the size with its plugins directly (as
        # Image.open does, minus the pixel-count check) to report the declared size.
        return _declared_size(data)
    except Exception:
        return None


def _declared_size(data: bytes) -> Header | None:
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and not accept(data[:16]):
            continue
        try:
            pil = factory(io.BytesIO(data), "")
        except Exception:
            continue
        return Header(pil.width, pil.height, complete=True)
    return None


def _exif_orientation(pil: Image.Image) -> int:
    try:
        value = pil.getexif().get(_EXIF_ORIENTATION_TAG, 1)
        value = int(value)
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


def _exif_payload_orientation(payload: bytes | None) -> int:
    if not payload:
        return 1
    try:
        exif = Image.Exif()
        exif.load(payload)
        value = int(exif.get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:
        return 1
    return value if 1 <= value <= 8 else 1


class _DamagedData(Exception):
    """The decoder met corrupt data and had to guess part of the picture."""


#: libjpeg's one complaint that harms no pixel: bytes between the last scan and the end marker.
_HARMLESS_JPEG_WARNING = "extraneous bytes before marker 0xd9"


def _decode_jpeg(data: bytes) -> np.ndarray | None:
    """RGB from libjpeg-turbo, strictly: a warning that the data is corrupt ("premature end of data
    segment", "extraneous bytes before marker 0xd3": a stripe of the picture is garbage) raises
    :class:`_DamagedData` instead of passing a garbled photo. ``None`` when this decoder cannot read
    the file at all (CMYK, arithmetic coding, ...): another decoder is tried."""
    try:
        rgb: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
        return rgb
    except ValueError as exc:
        message = str(exc)
        if not message.startswith("Corrupt JPEG data"):
            return None
        if _HARMLESS_JPEG_WARNING not in message:
            raise _DamagedData(message) from None
    try:
        rgb = simplejpeg.decode_jpeg(data, colorspace="RGB", strict=False)
        return rgb
    except ValueError:
        return None


def _decode(data: bytes, fmt: str, pil: Image.Image | None) -> np.ndarray | None:
    """Decode to RGB uint8 *without* applying EXIF orientation (we do that ourselves, explicitly).

    Raises :class:`_DamagedData` for a JPEG whose entropy-coded data is corrupt."""
    has_alpha = pil is not None and (pil.mode in ("RGBA", "LA", "PA") or "transparency" in pil.info)
    if fmt == "JPEG":
        rgb = _decode_jpeg(data)
        if rgb is not None:
            return rgb
    # OpenCV's libpng prints its complaints about a PNG's colour profile ("libpng warning: iCCP: ...")
    # straight to the process's stderr; Pillow reads the same pixels without a word.
    png_profile = fmt == "PNG" and pil is not None and bool(pil.info.get("icc_profile"))
    if fmt in ("JPEG", "PNG") and not has_alpha and not png_profile:
        buf = np.frombuffer(data, dtype=np.uint8)
        flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
        try:
            bgr = cv2.imdecode(buf, flags)
        except cv2.error:
            bgr = None
        if bgr is not None and bgr.ndim == 3 and bgr.shape[2] == 3:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    # A fresh Pillow image: one whose earlier load failed (reading EXIF, say) would hand back its
    # half-filled buffer without complaint on a second load.
    fresh = _pillow_open(data) if pil is not None else None
    if fresh is None:
        return None
    try:
        return pil_to_rgb(fresh)
    except Exception:
        return None


def pil_to_rgb(pil: Image.Image) -> np.ndarray:
    """8-bit RGB from any Pillow mode: alpha composited on white, 16-bit scaled, CMYK converted."""
    pil.load()
    if pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
        rgba = pil.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(background, rgba)
    elif pil.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(pil, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        gray = np.clip(arr * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.asarray(pil.convert("RGB"), dtype=np.uint8).copy()


def _apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip so the array shows what a person sees (EXIF orientation 1..8)."""
    if orientation == 2:
        rgb = rgb[:, ::-1]
    elif orientation == 3:
        rgb = rgb[::-1, ::-1]
    elif orientation == 4:
        rgb = rgb[::-1, :]
    elif orientation == 5:
        rgb = rgb.transpose(1, 0, 2)
    elif orientation == 6:
        rgb = np.rot90(rgb, k=-1)
    elif orientation == 7:
        rgb = rgb[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        rgb = np.rot90(rgb, k=1)
    else:
        return rgb
    return np.ascontiguousarray(rgb)


def _load_decoded(obj: Any, name: str | None, policy: Policy) -> LoadedImage:
    img = LoadedImage(name=name, decoded_input=True)
    reason = "the input was already decoded: no encoded file to measure"
    if isinstance(obj, Image.Image):
        img.format = obj.format
        img.mode = obj.mode
        orientation = _exif_orientation(obj)
        img.exif_orientation = orientation
        if obj.format == "JPEG":
            estimate = estimate_quality(getattr(obj, "quantization", None) or {})
            img.jpeg_quality = estimate.quality if estimate else None
        w, h = obj.size
        img.width, img.height = (h, w) if orientation >= 5 else (w, h)
        if max(w, h) > policy.max_side_px or w * h > policy.max_decode_pixels:
            img.not_decoded_reason = f"image size {w}x{h} exceeds the limits"
            return img
        try:
            rgb = pil_to_rgb(obj)
        except Exception as exc:
            return _unreadable(img, f"the PIL image could not be converted: {type(exc).__name__}")
        img.rgb = _apply_orientation(rgb, orientation)
    else:
        arr = np.asarray(obj)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise InvalidSourceError(
                f"arrays must be uint8 with shape HxW, HxWx3 (RGB) or HxWx4; got {arr.dtype} {arr.shape}"
            )
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        elif arr.shape[2] == 1:
            arr = np.repeat(arr, 3, axis=2)
        elif arr.shape[2] == 4:
            arr = arr[:, :, :3]
        img.height, img.width = int(arr.shape[0]), int(arr.shape[1])
        img.mode = "RGB"
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            return _unreadable(img, "the array is empty")
        img.rgb = np.ascontiguousarray(arr)
    for rule in ("FILE_TOO_LARGE", "UNSUPPORTED_FORMAT"):
        img.not_checked[rule] = reason
    if img.jpeg_quality is None:
        img.not_checked["JPEG_QUALITY_TOO_LOW"] = reason
    return img
