"""``multipart/form-data`` parsed in memory.

Starlette's form parser spools file parts above 1 MB to temporary files on disk. Face photos are personal
data, so the service parses the (already size-limited) body itself and keeps every part in memory: nothing
of an upload ever touches the disk, and the body limit bounds the memory one request can use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

#: Limits on the parts of one form; far above what any endpoint takes.
MAX_PARTS = 32
MAX_FIELD_BYTES = 64 * 1024
MAX_HEADER_BYTES = 8 * 1024


class FormError(ValueError):
    """The body is not well-formed ``multipart/form-data`` (or breaks one of the limits above)."""


@dataclass(frozen=True, repr=False)
class FilePart:
    """One uploaded file: its form field, the client's file name and content type, and the bytes."""

    field: str
    filename: str
    content_type: str
    data: bytes

    def __repr__(self) -> str:  # never the bytes
        return f"FilePart(field={self.field!r}, filename={self.filename!r}, size={len(self.data)})"


@dataclass
class Form:
    """Files and text fields by name; the first part wins when a name repeats."""

    files: dict[str, FilePart] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        """A text field, stripped; ``None`` when absent or empty."""
        value = self.fields.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None


def is_multipart(content_type: str | None) -> bool:
    media_type, _ = parse_options_header(content_type)
    return media_type == b"multipart/form-data"


def parse_form(body: bytes, content_type: str | None) -> Form:
    """Parse a complete ``multipart/form-data`` body. Raises :class:`FormError` on malformed input."""
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise FormError("expected a multipart/form-data body")
    boundary = options.get(b"boundary")
    if not boundary:
        raise FormError("the multipart/form-data content type has no boundary")
    charset = options.get(b"charset", b"utf-8").decode("latin-1")

    form = Form()
    state = _PartState()
    parts = 0
    seen_end = False

    def on_part_begin() -> None:
        nonlocal parts
        parts += 1
        if parts > MAX_PARTS:
            raise FormError(f"too many parts (at most {MAX_PARTS})")
        state.reset()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state.is_file and len(state.data) + (end - start) > MAX_FIELD_BYTES:
            raise FormError(f"a text field is longer than {MAX_FIELD_BYTES} bytes")
        state.data += data[start:end]

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]
        if len(state.header_value) > MAX_HEADER_BYTES:
            raise FormError("a part header is too long")

    def on_header_end() -> None:
        state.headers[bytes(state.header_name).lower()] = bytes(state.header_value)
        state.header_name.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state.headers.get(b"content-disposition"))
        if b"name" not in disposition:
            raise FormError('a part has no Content-Disposition "name"')
        state.name = _decode(disposition[b"name"], charset)
        if b"filename" in disposition:
            state.is_file = True
            state.filename = _decode(disposition[b"filename"], charset)

    def on_part_end() -> None:
        if state.is_file:
            if state.name not in form.files:
                content_type_value = _decode(state.headers.get(b"content-type", b""), "latin-1")
                form.files[state.name] = FilePart(state.name, state.filename, content_type_value, bytes(state.data))
        elif state.name not in form.fields:
            form.fields[state.name] = _decode(bytes(state.data), charset)

    def on_end() -> None:
        nonlocal seen_end
        seen_end = True

    callbacks: MultipartCallbacks = {
        "on_part_begin": on_part_begin,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished,
        "on_end": on_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormError:
        raise
    except (MultipartParseError, ValueError) as exc:
        raise FormError("malformed multipart/form-data body") from exc
    if not seen_end:
        raise FormError("truncated multipart/form-data body (no closing boundary)")
    return form


@dataclass
class _PartState:
    name: str = ""
    filename: str = ""
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)

    def reset(self) -> None:
        self.name = self.filename = ""
        self.is_file = False
        self.data = bytearray()
        self.header_name.clear()
        self.header_value.clear()
        self.headers = {}


def _decode(value: bytes, charset: str) -> str:
    try:
        return value.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return value.decode("latin-1")
