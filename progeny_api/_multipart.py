"""Images in, multipart bytes out.

Every image is read into ``bytes`` exactly once, when the call starts, and a fresh multipart body is built
from those bytes for every attempt. A retry or a 401 replay can therefore never send a half-read or empty
file stream (a classic bug: see openai-python PR #3484).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import IO, Any, Union

#: What an image argument may be: raw bytes, a path, a binary file object, or
#: ``(filename, bytes_or_file[, content_type])``.
ImageInput = Union[
    bytes,
    bytearray,
    memoryview,
    str,
    "os.PathLike[str]",
    IO[bytes],
    tuple[str, Any],
    tuple[str, Any, str],
]

_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png"}


def sniff_content_type(data: bytes) -> str:
    """``image/jpeg`` or ``image/png`` from the magic bytes, else ``application/octet-stream``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return "application/octet-stream"


@dataclass(frozen=True, repr=False)
class Upload:
    """One file part, fully in memory. The repr never shows the bytes."""

    field: str
    filename: str
    content: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"Upload(field={self.field!r}, {len(self.content)} bytes, {self.content_type})"


def _read_all(value: Any, field: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    read = getattr(value, "read", None)
    if callable(read):
        data = read()
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"{field}: the file object must be opened in binary mode ('rb')")
        return bytes(data)
    raise TypeError(f"{field}: expected bytes, a path, a binary file object or (filename, bytes[, type])")


def load_image(field: str, value: Any) -> Upload:
    """Read one image argument into memory (once) and pick a filename and content type."""
    content_type: str | None = None
    filename: str | None = None
    if isinstance(value, tuple):
        if len(value) not in (2, 3) or not isinstance(value[0], str):
            raise TypeError(f"{field}: a tuple must be (filename, bytes_or_file[, content_type])")
        filename = value[0]
        data = _read_all(value[1], field)
        if len(value) == 3:
            if not isinstance(value[2], str):
                raise TypeError(f"{field}: the content type must be a string")
            content_type = value[2]
    elif isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        with open(path, "rb") as handle:
            data = handle.read()
        filename = os.path.basename(path)
    else:
        data = _read_all(value, field)
        name = getattr(value, "name", None)
        if isinstance(name, str) and name and not name.startswith("<"):
            filename = os.path.basename(name)
    if not data:
        raise ValueError(f"{field}: the image is empty (0 bytes)")
    content_type = content_type or sniff_content_type(data)
    if not filename:
        # DRF refuses a file part without a name ("No filename could be determined.").
        filename = field + _EXTENSIONS.get(content_type, ".bin")
    return Upload(field=field, filename=filename, content=data, content_type=content_type)


def _quote(text: str) -> str:
    # HTML5 form encoding of names in Content-Disposition (what browsers and urllib3 do).
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


Part = tuple[str, "str | Upload"]


def encode_multipart(parts: list[Part]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its Content-Type, with a fresh boundary each time."""
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, value in parts:
        chunks.append(f"--{boundary}\r\n".encode("ascii"))
        if isinstance(value, Upload):
            disposition = f'form-data; name="{_quote(name)}"; filename="{_quote(value.filename)}"'
            chunks.append(
                f"Content-Disposition: {disposition}\r\nContent-Type: {value.content_type}\r\n\r\n".encode()
            )
            chunks.append(value.content)
        else:
            chunks.append(f'Content-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'.encode())
            chunks.append(value.encode("utf-8"))
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
