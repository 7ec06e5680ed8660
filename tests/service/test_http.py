"""The service over real HTTP: endpoints, status codes, limits, bad uploads (never a 500)."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

import preflight
from preflight.service import create_app

from .conftest import serve_app

pytestmark = pytest.mark.timeout(120)


def post_image(http: requests.Session, url: str, data: bytes, name: str = "photo.jpg", **fields: str) -> Any:
    files: dict[str, Any] = {"image": (name, data, "application/octet-stream")}
    files.update({k: (None, v) for k, v in fields.items()})
    return http.post(url, files=files, timeout=60)


def assert_json(response: requests.Response) -> dict[str, Any]:
    assert response.status_code != 500, response.text[:500]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    return body


# -- the endpoints -----------------------------------------------------------------------------------------


def test_healthz(http: requests.Session, base_url: str) -> None:
    r = http.get(f"{base_url}/healthz", timeout=10)
    body = assert_json(r)
    assert r.status_code == 200
    assert body["status"] == "ok" and body["version"] == preflight.__version__
    assert body["model_loaded"] is True
    assert body["check"]["limit"] >= 1 and body["check"]["active"] == 0
    assert {"en", "de"} <= set(body["locales"])


def test_healthz_tells_whether_the_face_model_is_loaded(samples: Path) -> None:
    # a document-policy server loads the model at start-up too (a request may pick the selfie preset, a
    # liveness submit checks a selfie); "model_loaded" was false there even after faces had been checked
    with serve_app(create_app(preflight.Policy.progeny_document())) as url, requests.Session() as http:
        assert assert_json(http.get(f"{url}/healthz", timeout=10))["model_loaded"] is True
    with serve_app(create_app(warm_up=False)) as url, requests.Session() as http:
        assert assert_json(http.get(f"{url}/healthz", timeout=10))["model_loaded"] is False
        r = post_image(http, f"{url}/v1/check", (samples / "obama.jpg").read_bytes())
        assert assert_json(r)["passed"] is True
        assert assert_json(http.get(f"{url}/healthz", timeout=10))["model_loaded"] is True


def test_check_passing_photo(http: requests.Session, base_url: str, samples: Path) -> None:
    r = post_image(http, f"{base_url}/v1/check", (samples / "obama.jpg").read_bytes(), "obama.jpg")
    body = assert_json(r)
    assert r.status_code == 200
    assert body["passed"] is True, body["issues"]
    assert body["source"] == "obama.jpg" and body["policy"] == "progeny_selfie" and body["locale"] == "en"
    assert body["measurements"]["width"] == 910 and body["measurements"]["format"] == "JPEG"
    # the 1137 px high sample only gets the "taller than recommended" warning
    assert set(body["issues"].get("preflight", {})) <= {"HEIGHT_ABOVE_RECOMMENDED"}
    assert "annotated_image" not in body


def test_check_failing_photo_in_the_api_issue_shape(http: requests.Session, base_url: str, samples: Path) -> None:
    r = post_image(http, f"{base_url}/v1/check", (samples / "rocket.jpg").read_bytes(), "rocket.jpg")
    body = assert_json(r)
    assert r.status_code == 200  # read and judged: a failing verdict is not an HTTP error
    assert body["passed"] is False
    issues = body["issues"]["preflight"]
    assert "RESOLUTION_TOO_LOW" in issues and isinstance(issues["RESOLUTION_TOO_LOW"], str)
    detail = next(d for d in body["details"] if d["code"] == "RESOLUTION_TOO_LOW")
    assert (detail["severity"], detail["measured"], detail["limit"]) == ("error", 427, 480)
    assert body["hints"][0] == detail["hint"] and "too small" in detail["hint"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"fields": {"locale": "de"}}, "de"),
        ({"query": "?locale=de-AT"}, "de"),
        ({"headers": {"Accept-Language": "de-CH,de;q=0.9,en;q=0.5"}}, "de"),
        ({"fields": {"locale": "xx-made-up"}}, "en"),
        ({"fields": {"locale": "en"}, "headers": {"Accept-Language": "de"}}, "en"),
        ({"headers": {"Accept-Language": "en;q=0.1, de;q=0.9"}}, "de"),  # preference, not order
        ({"headers": {"Accept-Language": "de;q=0, en"}}, "en"),  # q=0: "not German"
    ],
)
def test_hints_in_the_requested_locale(
    http: requests.Session, base_url: str, samples: Path, how: dict[str, Any], expected: str
) -> None:
    files: dict[str, Any] = {"image": ("rocket.jpg", (samples / "rocket.jpg").read_bytes())}
    files.update({k: (None, v) for k, v in how.get("fields", {}).items()})
    r = http.post(f"{base_url}/v1/check{how.get('query', '')}", files=files, headers=how.get("headers"), timeout=60)
    body = assert_json(r)
    assert body["locale"] == expected
    first = body["hints"][0]
    assert ("zu klein" in first) if expected == "de" else ("too small" in first)
    assert body["details"][0]["hint"] in body["hints"]


def test_policy_preset_per_request(http: requests.Session, base_url: str, samples: Path) -> None:
    r = post_image(http, f"{base_url}/v1/check", (samples / "obama.jpg").read_bytes(), policy="progeny_document")
    assert assert_json(r)["policy"] == "progeny_document"
    r = post_image(http, f"{base_url}/v1/check", (samples / "obama.jpg").read_bytes(), policy="/etc/passwd")
    body = assert_json(r)
    assert r.status_code == 422 and body["error"] == "unknown_policy" and "progeny_document" in body["policies"]


def test_check_with_annotated_preview(http: requests.Session, base_url: str, samples: Path) -> None:
    r = post_image(http, f"{base_url}/v1/check", (samples / "rocket.jpg").read_bytes(), annotate="true")
    body = assert_json(r)
    prefix = "data:image/jpeg;base64,"
    assert body["annotated_image"].startswith(prefix)
    preview = Image.open(io.BytesIO(base64.b64decode(body["annotated_image"][len(prefix) :])))
    assert preview.format == "JPEG" and max(preview.size) <= 1024


def test_annotate_returns_png(http: requests.Session, base_url: str, samples: Path) -> None:
    r = post_image(http, f"{base_url}/v1/annotate", (samples / "rocket.jpg").read_bytes())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert r.headers["x-preflight-passed"] == "false"
    assert "RESOLUTION_TOO_LOW" in r.headers["x-preflight-codes"].split(",")
    assert Image.open(io.BytesIO(r.content)).format == "PNG"


def test_annotate_unreadable_upload_is_a_422_report(http: requests.Session, base_url: str) -> None:
    r = post_image(http, f"{base_url}/v1/annotate", b"not an image at all")
    body = assert_json(r)
    assert r.status_code == 422 and "FAILED_TO_READ_IMAGE" in body["issues"]["preflight"]


# -- bad uploads: a 4xx with a JSON body, never a 500 ------------------------------------------------------


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (600, 600), (120, 90, 60)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty.jpg", b"", "FAILED_TO_READ_IMAGE"),
        ("notes.txt", b"hello, this is text", "FAILED_TO_READ_IMAGE"),
        ("fake.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "FAILED_TO_READ_IMAGE"),
        ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "FAILED_TO_READ_IMAGE"),
        ("anim.gif", _gif(), "UNSUPPORTED_FORMAT"),
    ],
)
def test_unusable_uploads_are_a_422_report(
    http: requests.Session, base_url: str, name: str, data: bytes, code: str
) -> None:
    r = post_image(http, f"{base_url}/v1/check", data, name, annotate="true")
    body = assert_json(r)
    assert r.status_code == 422
    assert body["passed"] is False and code in body["issues"]["preflight"]
    assert body["hints"] and body["annotated_image"] is None


def test_truncated_photo_never_500(http: requests.Session, base_url: str, samples: Path) -> None:
    data = (samples / "obama.jpg").read_bytes()
    for cut in (200, 2_000, len(data) // 2):
        r = post_image(http, f"{base_url}/v1/check", data[:cut])
        body = assert_json(r)
        assert r.status_code in (200, 422) and body["passed"] is False, (cut, body.get("issues"))


@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"files": {"photo": ("a.jpg", b"x")}}, 422, "missing_image"),
        ({"files": {"image": (None, "just text")}}, 422, "missing_image"),
        ({"data": b"", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}, 400, "malformed_body"),
        (
            {"data": b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\nabc",
             "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
            400,
            "malformed_body",
        ),
        ({"data": b"x", "headers": {"Content-Type": "multipart/form-data"}}, 400, "malformed_body"),
        ({"json": {"image": "aGVsbG8="}}, 415, "unsupported_media_type"),
        ({"data": b"\xff\xd8\xff", "headers": {"Content-Type": "image/jpeg"}}, 415, "unsupported_media_type"),
        ({"files": {"image": ("a.jpg", b"x"), "annotate": (None, "maybe")}}, 422, "invalid_value"),
    ],
)
def test_bad_requests_get_a_clear_json_error(
    http: requests.Session, base_url: str, kwargs: dict[str, Any], status: int, error: str
) -> None:
    r = http.post(f"{base_url}/v1/check", timeout=30, **kwargs)
    body = assert_json(r)
    assert (r.status_code, body["error"]) == (status, error), body
    assert body["message"]


def test_unknown_paths_and_methods_are_json(http: requests.Session, base_url: str) -> None:
    r = http.get(f"{base_url}/v1/nope", timeout=10)
    assert (r.status_code, assert_json(r)["error"]) == (404, "not_found")
    r = http.get(f"{base_url}/v1/check", timeout=10)
    assert (r.status_code, assert_json(r)["error"]) == (405, "method_not_allowed")


def test_head_is_answered_where_get_is(http: requests.Session, base_url: str) -> None:
    for path in ("/", "/healthz", "/static/app.js"):
        get, head = http.get(f"{base_url}{path}", timeout=10), http.head(f"{base_url}{path}", timeout=10)
        assert get.status_code == head.status_code == 200, path
        assert head.headers["content-type"] == get.headers["content-type"] and head.content == b""


def test_image_bytes_are_never_logged(
    http: requests.Session, base_url: str, samples: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = b"SECRET-PIXELS-0123456789"
    caplog.set_level(logging.DEBUG)
    post_image(http, f"{base_url}/v1/check", marker)
    post_image(http, f"{base_url}/v1/check", (samples / "rocket.jpg").read_bytes() + marker, "face.jpg")
    http.post(f"{base_url}/v1/check", data=marker, headers={"Content-Type": "multipart/form-data; boundary=q"})
    # python-multipart warns with the body's bytes as numbers ("got 81 at index 6"): kept out too
    r = http.post(f"{base_url}/v1/check", data=b"--xQ" + marker,
                  headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert r.status_code == 400
    text = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert marker.decode() not in text
    assert not [r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("python_multipart", "multipart")]


# -- limits ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_url(gate: preflight.Gate) -> Iterator[str]:
    """A service that accepts bodies up to 3,000,000 bytes (the policy's file limit is 2,000,000)."""
    with serve_app(create_app(gate=gate, max_upload_bytes=3_000_000)) as url:
        yield url


def test_body_over_the_limit_is_413_by_content_length(http: requests.Session, small_url: str) -> None:
    r = post_image(http, f"{small_url}/v1/check?locale=de", b"\xff\xd8" + b"\x00" * 4_000_000)
    body = assert_json(r)
    assert r.status_code == 413
    assert body["error"] == "upload_too_large" and body["passed"] is False
    assert "FILE_TOO_LARGE" in body["issues"]["preflight"]
    assert body["details"][0]["limit"] == 3_000_000 and body["details"][0]["measured"] > 4_000_000
    assert body["locale"] == "de" and "zu groß" in body["hints"][0]


def test_body_over_the_limit_is_413_while_streaming(http: requests.Session, small_url: str) -> None:
    """No Content-Length (chunked): the bytes are counted as they arrive."""

    def chunks() -> Iterator[bytes]:
        boundary = b"--b0undary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
        for _ in range(80):
            yield b"\x00" * 50_000
        yield b"\r\n" + boundary + b"--\r\n"

    r = http.post(
        f"{small_url}/v1/check",
        data=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
        timeout=30,
    )
    body = assert_json(r)
    assert r.status_code == 413 and "FILE_TOO_LARGE" in body["issues"]["preflight"]
    assert body["details"][0]["measured"] > 3_000_000


def test_413_without_reading_a_body_that_waits_for_100_continue(small_url: str) -> None:
    port = int(small_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=q\r\n"
            b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]  # no "100 Continue" first: the body is never sent


def test_file_over_the_policy_limit_but_within_the_upload_limit_is_judged(
    http: requests.Session, small_url: str, samples: Path
) -> None:
    """2.5 MB: the service reads it, and the gate reports FILE_TOO_LARGE with the measured size."""
    data = (samples / "obama.jpg").read_bytes()
    data += b"\x00" * (2_500_000 - len(data))  # trailing bytes after the JPEG's end: still a readable photo
    r = post_image(http, f"{small_url}/v1/check", data)
    body = assert_json(r)
    assert r.status_code == 200 and body["passed"] is False
    detail = next(d for d in body["details"] if d["code"] == "FILE_TOO_LARGE")
    assert detail["measured"] == 2_500_000 and detail["limit"] == 2_000_000


class BlockingGate(preflight.Gate):
    """A gate whose checks wait until the test releases them: a deterministic way to saturate the service."""

    def __init__(self, policy: preflight.Policy) -> None:
        super().__init__(policy)
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def check(self, source: Any, *, policy: preflight.Policy | None = None, name: str | None = None) -> Any:
        self.entered.release()
        self.release.wait(30)
        return super().check(source, policy=policy, name=name)


def test_saturated_service_answers_503_with_retry_after(
    http: requests.Session, file_gate: preflight.Gate, samples: Path
) -> None:
    blocking = BlockingGate(file_gate.policy)
    data = (samples / "rocket.jpg").read_bytes()
    with serve_app(create_app(gate=blocking, max_concurrency=2, retry_after=3)) as url, ThreadPoolExecutor(4) as pool:
        try:
            held = [pool.submit(post_image, requests.Session(), f"{url}/v1/check", data) for _ in range(2)]
            for _ in range(2):
                assert blocking.entered.acquire(timeout=30), "the first requests never reached the gate"
            # Both slots are taken: the next requests are refused at once, not queued.
            started = time.monotonic()
            for _ in range(3):
                busy = post_image(http, f"{url}/v1/check", data)
                body = assert_json(busy)
                assert busy.status_code == 503 and busy.headers["retry-after"] == "3"
                assert body["error"] == "busy" and body["retry_after"] == 3
            assert time.monotonic() - started < 5
            # The event loop is not blocked by the two checks in the thread pool.
            health = http.get(f"{url}/healthz", timeout=2).json()
            assert health["check"] == {"limit": 2, "active": 2, "rejected": 3}
        finally:
            blocking.release.set()
        assert [f.result(timeout=30).status_code for f in held] == [200, 200]
        after = post_image(http, f"{url}/v1/check", data)
        assert after.status_code == 200
        assert http.get(f"{url}/healthz", timeout=5).json()["check"]["active"] == 0


def test_parallel_requests_against_a_tiny_limit(http: requests.Session, gate: preflight.Gate, samples: Path) -> None:
    """Real checks, 12 at once, one slot: every answer is a report (200) or a busy 503, nothing else."""
    data = (samples / "obama.jpg").read_bytes()
    with serve_app(create_app(gate=gate, max_concurrency=1)) as url, ThreadPoolExecutor(12) as pool:
        barrier = threading.Barrier(12)

        def one(_: int) -> int:
            with requests.Session() as session:
                session.trust_env = False
                barrier.wait(10)
                return int(post_image(session, f"{url}/v1/check", data).status_code)

        statuses = list(pool.map(one, range(12)))
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses


def _trickle(url: str, body: bytes, pieces: int, pause: float, content_type: str,
             length: int | None = None) -> tuple[int, dict[str, Any]]:
    """POST ``body`` over a raw socket in ``pieces`` parts, ``pause`` seconds apart; the status and JSON answer."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                     f"Content-Length: {length or len(body)}\r\nConnection: close\r\n\r\n".encode())
        step = -(-len(body) // pieces)
        try:
            for i in range(0, len(body), step):
                sock.sendall(body[i : i + step])
                time.sleep(pause)
        except OSError:  # the server answered and closed while we were still sending
            pass
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def test_stalled_upload_is_408(file_gate: preflight.Gate) -> None:
    with serve_app(create_app(gate=file_gate, body_timeout=0.5)) as url:
        started = time.monotonic()
        status, answer = _trickle(url, b"--q\r\n", 1, 0.0, "multipart/form-data; boundary=q", length=1000)
    assert status == 408 and answer["error"] == "upload_timeout"
    assert answer["message"] == "The upload stalled: nothing arrived for 0.5 s (5 bytes received)."
    assert time.monotonic() - started < 5


def test_a_slow_but_steady_upload_is_not_cut(file_gate: preflight.Gate, samples: Path) -> None:
    # 30 s without a byte is a stall; a phone on a poor link that keeps sending is not one
    prepared = requests.Request("POST", "http://x/v1/check", files={
        "image": ("photo.jpg", (samples / "biden.jpg").read_bytes(), "image/jpeg")}).prepare()
    assert isinstance(prepared.body, bytes)
    with serve_app(create_app(gate=file_gate, body_timeout=0.5)) as url:
        started = time.monotonic()
        status, answer = _trickle(url, prepared.body, 8, 0.25, prepared.headers["Content-Type"])
        took = time.monotonic() - started
    assert took > 1.5  # three times the idle limit...
    assert status == 200 and answer["passed"] is True  # ... and the photo was checked


def test_an_upload_that_trickles_forever_is_cut_at_the_total_limit(file_gate: preflight.Gate) -> None:
    with serve_app(create_app(gate=file_gate, body_timeout=0.2)) as url:  # 10 x 0.2 = 2 s in all
        started = time.monotonic()
        status, answer = _trickle(url, b"x" * 60, 60, 0.1, "multipart/form-data; boundary=q")
        took = time.monotonic() - started
    assert status == 408 and answer["message"].startswith("The upload took longer than 2 s (")
    assert 1.8 < took < 5


def test_create_app_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        create_app(max_upload_bytes=0)
    with pytest.raises(ValueError):
        create_app(max_concurrency=0)


# -- OpenAPI and the page ----------------------------------------------------------------------------------


def test_openapi_document(http: requests.Session, base_url: str) -> None:
    r = http.get(f"{base_url}/openapi.json", timeout=10)
    doc = json.loads(r.text)
    assert r.status_code == 200 and doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "preflight" and doc["info"]["version"] == preflight.__version__
    paths = doc["paths"]
    assert {"/v1/check", "/v1/annotate", "/v1/submit/{service}", "/healthz"} <= set(paths)
    assert "/" not in paths
    check = paths["/v1/check"]["post"]
    schema = check["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["image"] and schema["properties"]["image"]["format"] == "binary"
    assert {"200", "413", "422", "503"} <= set(check["responses"])
    assert "image/png" in paths["/v1/annotate"]["post"]["responses"]["200"]["content"]
    docs = http.get(f"{base_url}/docs", timeout=10)
    assert docs.status_code == 200 and "openapi.json" in docs.text


def test_page_and_its_assets(http: requests.Session, base_url: str) -> None:
    page = http.get(f"{base_url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for needle in ('id="verdict"', 'id="hints"', 'id="file"', 'id="camera-start"', 'id="locale"'):
        assert needle in page.text
    for asset, kind in (("app.js", "javascript"), ("app.css", "text/css")):
        r = http.get(f"{base_url}/static/{asset}", timeout=10)
        assert r.status_code == 200 and kind in r.headers["content-type"]
