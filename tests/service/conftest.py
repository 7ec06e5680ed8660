"""Fixtures for the service tests: real uvicorn servers on 127.0.0.1 (free ports), real HTTP clients.

A server runs in a thread of the test process (``serve_app``) so that a test can hand the app a gate it
controls; the command line is tested separately with ``preflight serve`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed")
pytest.importorskip("uvicorn", reason="the service extra is not installed")

import requests
import uvicorn

import preflight
from preflight.service import create_app

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("the test server did not start (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the test server did not start within {START_TIMEOUT} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="session")
def gate() -> Iterator[preflight.Gate]:
    """One real gate (the face model loaded once) shared by the servers of this session."""
    with preflight.Gate() as g:
        yield g


@pytest.fixture(scope="session")
def file_gate() -> Iterator[preflight.Gate]:
    """A gate with the file rules only (no model): for tests about limits, not faces."""
    policy = dataclasses.replace(preflight.Policy(), check_face=False, check_sharpness=False, check_exposure=False)
    with preflight.Gate(policy) as g:
        yield g


@pytest.fixture(scope="session")
def base_url(gate: preflight.Gate) -> Iterator[str]:
    """The default service (real gate, default limits)."""
    with serve_app(create_app(gate=gate)) as url:
        yield url


@pytest.fixture
def http() -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # never a proxy from the environment: everything here is loopback
    yield session
    session.close()
