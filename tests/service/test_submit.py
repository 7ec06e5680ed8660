"""``POST /v1/submit/{service}`` against the local Progeny sandbox: gate first, forward only what passes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

import preflight
from preflight.service import create_app

from .conftest import serve_app

sandbox_module = pytest.importorskip("progeny_api.sandbox", reason="the Progeny sandbox is not available")
Sandbox = sandbox_module.Sandbox

from progeny_api import ProgenyClient  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@contextmanager
def service_with_sandbox(
    gate: preflight.Gate, *, password: str | None = None, **sandbox_options: Any
) -> Iterator[tuple[str, Any]]:
    with Sandbox(**sandbox_options) as sb:
        client = ProgenyClient(
            sb.username,
            password or sb.password,
            base_url=sb.base_url,
            max_retries=0,
            poll_interval=0.02,
            poll_max_interval=0.1,
            poll_deadline=1.5,
            not_found_grace=0.5,
        )
        try:
            with serve_app(create_app(gate=gate, client=client)) as url:
                yield url, sb
        finally:
            client.close()


@pytest.fixture
def service(gate: preflight.Gate) -> Iterator[tuple[str, Any]]:
    with service_with_sandbox(gate) as pair:
        yield pair


def submit(http: requests.Session, url: str, service: str, files: dict[str, Any], **fields: str) -> Any:
    parts: dict[str, Any] = dict(files)
    parts.update({k: (None, v) for k, v in fields.items()})
    return http.post(f"{url}/v1/submit/{service}", files=parts, timeout=60)


def test_failing_selfie_is_not_forwarded(
    http: requests.Session, service: tuple[str, Any], samples: Path
) -> None:
    url, sb = service
    r = submit(http, url, "face_liveness", {"image": ("rocket.jpg", (samples / "rocket.jpg").read_bytes())})
    body = r.json()
    assert r.status_code == 200, body
    assert (body["forwarded"], body["passed"], body["remote"]) == (False, False, None)
    assert "RESOLUTION_TOO_LOW" in body["issues"]["preflight"]["image"]
    assert "too small" in body["local"]["image"]["hints"][0]
    assert sb.post_count("face_liveness") == 0 and sb.stats["obtain"] == 0  # no call, no bill, no token


def test_passing_selfie_is_forwarded_unchanged(
    http: requests.Session, service: tuple[str, Any], samples: Path
) -> None:
    url, sb = service
    data = (samples / "obama.jpg").read_bytes()
    r = submit(http, url, "face_liveness", {"image": ("obama.jpg", data)}, locale="de")
    body = r.json()
    assert r.status_code == 200, body
    assert body["forwarded"] is True and body["local_passed"] is True
    assert body["remote"] is not None and body["task"]["id"]
    assert body["passed"] is True and body["remote_passed"] is True
    assert body["locale"] == "de"
    assert sb.post_count("face_liveness") == 1
    (upload,) = sb.uploads("face_liveness", "image")
    assert upload.sha256 == hashlib.sha256(data).hexdigest()  # the bytes checked are the bytes sent


def test_unreadable_image_is_422_and_not_forwarded(http: requests.Session, service: tuple[str, Any]) -> None:
    url, sb = service
    r = submit(http, url, "face_liveness", {"image": ("x.jpg", b"definitely not a photo")})
    body = r.json()
    assert r.status_code == 422 and body["forwarded"] is False
    assert "FAILED_TO_READ_IMAGE" in body["issues"]["preflight"]["image"]
    assert sb.post_count() == 0


@pytest.mark.parametrize(
    ("service_name", "files", "fields", "status", "error"),
    [
        ("no_such_service", {"image": ("a.jpg", b"x")}, {}, 404, "unknown_service"),
        ("face_liveness", {}, {}, 422, "invalid_fields"),
        ("face_liveness", {"selfie": ("a.jpg", b"x")}, {}, 422, "invalid_fields"),
        ("authenticate_face", {"image": ("a.jpg", b"x")}, {}, 422, "invalid_fields"),
        ("face_liveness", {"image": ("a.jpg", b"x")}, {"extend_data": "perhaps"}, 422, "invalid_value"),
    ],
)
def test_bad_submit_requests(
    http: requests.Session,
    service: tuple[str, Any],
    service_name: str,
    files: dict[str, Any],
    fields: dict[str, str],
    status: int,
    error: str,
) -> None:
    url, sb = service
    if not files:
        files = {"locale": (None, "en")}
    r = submit(http, url, service_name, files, **fields)
    body = r.json()
    assert (r.status_code, body["error"]) == (status, error), body
    assert sb.post_count() == 0


def test_missing_fields_are_named(http: requests.Session, service: tuple[str, Any]) -> None:
    url, _ = service
    r = submit(http, url, "kyc_card", {"selfie_image": ("s.jpg", b"x"), "front": ("f.jpg", b"x")})
    body = r.json()
    assert r.status_code == 422
    assert body["missing"] == ["back_id", "front_id"] and body["unknown"] == ["front"]


@pytest.mark.parametrize(
    ("setup", "status", "error"),
    [
        ({"password": "wrong"}, 401, "upstream_authentication"),
        ({"inject": ("face_liveness", "429", {"retry_after": 7})}, 503, "upstream_busy"),
        ({"inject": ("face_liveness", "503", {})}, 503, "upstream_busy"),
        ({"inject": ("face_liveness", "500", {})}, 502, "upstream_error"),
        ({"inject": ("face_liveness", "malformed_json", {})}, 502, "upstream_error"),
        ({"lifecycle": ("PENDING",)}, 504, "upstream_timeout"),
        ({"lifecycle": ("STARTED", "FAILURE")}, 502, "upstream_task_failed"),
    ],
)
def test_api_errors_are_mapped_never_500(
    http: requests.Session, file_gate: preflight.Gate, samples: Path, setup: dict[str, Any], status: int, error: str
) -> None:
    """The file rules only (``file_gate``), so that the photo is forwarded whatever the face model says."""
    options = {"lifecycle": setup["lifecycle"]} if "lifecycle" in setup else {}
    with service_with_sandbox(file_gate, password=setup.get("password"), **options) as (url, sb):
        if "inject" in setup:
            target, kind, params = setup["inject"]
            sb.inject(target, kind, **params)
        r = submit(http, url, "face_liveness", {"image": ("obama.jpg", (samples / "obama.jpg").read_bytes())})
    body = r.json()
    assert (r.status_code, body["error"]) == (status, error), body
    assert body["message"] and "traceback" not in r.text.lower()
    assert sb.password not in r.text and "sandbox-password" not in r.text
    if status == 503:
        assert int(r.headers["retry-after"]) == body["retry_after"] >= 1
        if "429" in str(setup):
            assert body["retry_after"] == 7
    if error == "upstream_timeout":
        assert body["task_id"]


def test_a_progeny_that_never_answers_frees_the_slot_soon(gate: preflight.Gate, samples: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An upstream that accepts connections and stays silent held a submit for 3 minutes (60 s x 3)."""
    import socket
    import threading
    import time

    from preflight.service import app as service_app

    monkeypatch.setattr(service_app, "UPSTREAM_TIMEOUT", (0.5, 0.5))  # the service's own client, scaled down
    monkeypatch.setenv("PROGENY_USERNAME", "u")
    monkeypatch.setenv("PROGENY_PASSWORD", "p")
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])  # and never answer
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    base = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v3"
    try:
        with serve_app(create_app(gate=gate, progeny_base_url=base)) as url, requests.Session() as http:
            started = time.monotonic()
            answer = submit(http, url, "face_liveness", {"image": ("a.jpg", (samples / "obama.jpg").read_bytes())})
            took = time.monotonic() - started
    finally:
        listener.close()
        for connection in held:
            connection.close()
    assert answer.status_code == 502, answer.text
    assert len(held) == 1 + service_app.UPSTREAM_RETRIES  # the token request, tried twice
    assert took < 1 + (1 + service_app.UPSTREAM_RETRIES) * 1.0 + 2  # two 1 s attempts, a backoff, the check
