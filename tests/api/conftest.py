"""Fixtures for the progeny_api tests: a sandbox per test, fast clients, and synthetic images.

Images are built here in pure Python (no Pillow, no numpy) so that these tests also run in an environment
that has only requests + pytest.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from progeny_api import ProgenyClient
from progeny_api.sandbox import Sandbox

#: An ASCII marker inside every synthetic image, to prove that image bytes never reach a log line.
IMAGE_MARKER = b"IMGBYTES-7f3a9c-DO-NOT-LOG"


def make_png(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"tEXt", b"Comment\x00" + IMAGE_MARKER)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def make_jpeg(width: int, height: int, payload: int = 0, seed: int = 1) -> bytes:
    """A JPEG header with the given frame size (enough for the sandbox's judge), then ``payload`` bytes.

    The payload makes the body big and unique, so that a truncated or empty upload cannot go unnoticed.
    """
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    com = b"\xff\xfe" + struct.pack(">H", 2 + len(IMAGE_MARKER)) + IMAGE_MARKER
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    body = bytearray()
    state = seed
    while len(body) < payload:
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        body += state.to_bytes(8, "little")
    return b"\xff\xd8" + app0 + com + sof0 + bytes(body[:payload]) + b"\xff\xd9"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy for loopback, and no PROGENY_* settings leaking in from the developer's shell."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for name in ("PROGENY_USERNAME", "PROGENY_PASSWORD", "PROGENY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def face() -> bytes:
    """A face-sized image the default judge passes (640x640)."""
    return make_jpeg(640, 640, payload=4096, seed=11)


@pytest.fixture
def big_face() -> bytes:
    """A 300 KB image: big enough that a truncated retry body would show."""
    return make_jpeg(1024, 768, payload=300_000, seed=42)


@pytest.fixture
def document_image() -> bytes:
    return make_png(800, 600)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(lifecycle=("404", "PENDING", "STARTED", "SUCCESS")) as sb:
        yield sb


FAST: dict[str, Any] = {
    "timeout": (2.0, 5.0),
    "poll_interval": 0.01,
    "poll_max_interval": 0.05,
    "poll_deadline": 10.0,
    "not_found_grace": 2.0,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "max_retry_after": 5.0,
}


@pytest.fixture
def make_client() -> Iterator[Callable[..., ProgenyClient]]:
    """``make_client(sb, **overrides)``: a client for a sandbox with tiny delays (closed at teardown)."""
    clients: list[ProgenyClient] = []

    def factory(sb: Sandbox, **overrides: Any) -> ProgenyClient:
        options = {**FAST, **overrides}
        username = options.pop("username", sb.username)
        password = options.pop("password", sb.password)
        client = ProgenyClient(username, password, base_url=sb.base_url, **options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def client(sandbox: Sandbox, make_client: Callable[..., ProgenyClient]) -> ProgenyClient:
    return make_client(sandbox)


@pytest.fixture
def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Images:
    """Image factories, handed to tests as a fixture (test modules cannot reliably import conftest)."""

    marker = IMAGE_MARKER
    png = staticmethod(make_png)
    jpeg = staticmethod(make_jpeg)


@pytest.fixture
def images() -> type[Images]:
    return Images
