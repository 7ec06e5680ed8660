"""The sandbox itself speaks the documented contract (checked with plain requests, no client)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from progeny_api.sandbox import DEFAULT_PASSWORD, DEFAULT_USERNAME, Sandbox

pytestmark = pytest.mark.timeout(30)


def form(**values: str) -> dict[str, tuple[None, str]]:
    """Plain multipart fields (requests sends a part without a filename for a (None, value) tuple)."""
    return {k: (None, v) for k, v in values.items()}


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


@pytest.fixture
def auth(sandbox: Sandbox, http: requests.Session) -> dict[str, str]:
    pair = http.post(
        sandbox.url("accounts/token/obtain/"), files=form(username="sandbox", password="sandbox-password")
    )
    return {"Authorization": f"Bearer {pair.json()['access']}"}


def test_defaults(sandbox: Sandbox) -> None:
    assert (DEFAULT_USERNAME, DEFAULT_PASSWORD) == ("sandbox", "sandbox-password")
    assert sandbox.base_url.startswith("http://127.0.0.1:") and sandbox.base_url.endswith("/api/v3")
    assert sandbox.port != 0


def test_obtain_errors(sandbox: Sandbox, http: requests.Session) -> None:
    url = sandbox.url("accounts/token/obtain/")
    missing = http.post(url, files=form(username="sandbox"))
    assert (missing.status_code, missing.json()) == (400, {"password": ["This field is required."]})
    wrong = http.post(url, files=form(username="sandbox", password="nope"))
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "No active account found with the given credentials"}


def test_json_bodies_are_unsupported(sandbox: Sandbox, http: requests.Session, auth: dict[str, str]) -> None:
    response = http.post(sandbox.url("services/face_liveness/"), json={"image": "x"}, headers=auth)
    assert response.status_code == 415
    assert response.json() == {"detail": 'Unsupported media type "application/json" in request.'}


def test_wrong_method(sandbox: Sandbox, http: requests.Session, auth: dict[str, str]) -> None:
    response = http.get(sandbox.url("services/face_liveness/"), headers=auth)
    assert response.status_code == 405 and response.json() == {"detail": 'Method "GET" not allowed.'}
    response = http.post(sandbox.url("services/task/"), headers=auth)
    assert response.status_code == 405


def test_missing_trailing_slash_is_a_301(
    sandbox: Sandbox, http: requests.Session, auth: dict[str, str]
) -> None:
    response = http.post(sandbox.url("services/register_face"), headers=auth, allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == sandbox.url("services/register_face/")


def test_authentication_errors(sandbox: Sandbox, http: requests.Session) -> None:
    url = sandbox.url("services/task/?id=x")
    none = http.get(url)
    assert none.status_code == 401 and none.json() == {
        "detail": "Authentication credentials were not provided."
    }
    assert none.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    bad = http.get(url, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.json()["code"] == "token_not_valid"
    assert bad.json()["messages"][0]["token_type"] == "access"
    split = http.get(url, headers={"Authorization": "Bearer a b"})
    assert split.json()["code"] == "bad_authorization_header"


def test_validation_messages(sandbox: Sandbox, http: requests.Session, auth: dict[str, str]) -> None:
    def post(service: str, **kwargs: Any) -> tuple[int, Any]:
        response = http.post(sandbox.url(f"services/{service}/"), headers=auth, **kwargs)
        return response.status_code, response.json()

    assert post("face_liveness", files=form(extend_data="false")) == (
        400,
        {"image": ["No file was submitted."]},
    )
    assert post("face_liveness", files=form(image="/path/to/file.jpg")) == (
        400,
        {"image": ["The submitted data was not a file. Check the encoding type on the form."]},
    )
    assert post("face_liveness", files={"image": ("a.jpg", b"")}) == (
        400,
        {"image": ["The submitted file is empty."]},
    )
    assert post("authenticate_face", files={"image": ("a.jpg", b"x")}) == (
        400,
        {"uuid": ["This field is required."]},
    )
    status, body = post("ocr_card", files={"front_id": ("a.jpg", b"x")})
    assert status == 400 and body == {
        "back_id": ["No file was submitted."],
        "extend_data": ["This field is required."],
    }
    status, body = post("face_liveness", files={"image": ("a.jpg", b"x"), "extend_data": (None, "maybe")})
    assert (status, body) == (400, {"extend_data": ["Must be a valid boolean."]})
    status, body = post("background_check", files=form(fullname="  "))
    assert body == {"fullname": ["This field may not be blank."], "birth_date": ["This field is required."]}


def test_task_endpoint(sandbox: Sandbox, http: requests.Session, auth: dict[str, str]) -> None:
    missing = http.get(sandbox.url("services/task/"), headers=auth)
    assert (missing.status_code, missing.json()) == (400, {"id": ["This field is required."]})
    unknown = http.get(sandbox.url("services/task/"), params={"id": "nope"}, headers=auth)
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not found."})
    created = http.post(
        sandbox.url("services/face_liveness/"), headers=auth, files={"image": ("a.png", b"\x89PNG\r\n\x1a\n")}
    ).json()
    states = []
    for _ in range(5):
        response = http.get(sandbox.url("services/task/"), params={"id": created["id"]}, headers=auth)
        states.append(response.status_code if response.status_code == 404 else response.json()["status"])
    assert states == [404, "PENDING", "STARTED", "SUCCESS", "SUCCESS"]
    final = response.json()
    assert isinstance(final["id"], int) and final["result"]["data"]["issues"]["liveness"]


def test_unknown_path_is_an_html_404(sandbox: Sandbox, http: requests.Session) -> None:
    response = http.get(sandbox.origin + "/nope/")
    assert response.status_code == 404 and response.headers["Content-Type"].startswith("text/html")


def test_oversized_body_is_an_html_413(http: requests.Session) -> None:
    with Sandbox(max_body_bytes=1000) as sb:
        response = http.post(sb.url("accounts/token/obtain/"), files={"x": ("a", b"0" * 5000)})
        assert response.status_code == 413 and "nginx" in response.text


def _raw(sb: Sandbox, request: bytes) -> bytes:
    """Send bytes as they are (no client would send these) and read until the server closes."""
    import socket

    with socket.create_connection(("127.0.0.1", sb.port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # nothing more is coming: the server need not linger
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_chunked_body_over_the_limit_is_an_html_413() -> None:
    # without a length the body is counted as it comes (it used to be read whole, whatever its size)
    with Sandbox(max_body_bytes=1000) as sb:
        response = requests.post(sb.url("accounts/token/obtain/"), data=iter([b"0" * 800] * 50),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 413 and "nginx" in response.text
        small = requests.post(sb.url("accounts/token/obtain/"), data=iter([b"username=sandbox&", b"password=x"]),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert small.status_code == 401  # a chunked body within the limit is read


@pytest.mark.parametrize(("framing", "status"), [
    (b"Content-Length: abc\r\n\r\n", 400),
    (b"Content-Length: -5\r\n\r\n", 400),
    (b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400),  # which one? smuggling material
    (b"Content-Length: 10\r\n\r\nabc", 400),  # the client stopped sending (half-closed) mid-body
    (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", 400),  # longer than said
    (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    (b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 501),
    (b"Content-Length: 99999999999999999999999\r\n\r\n", 413),
])
def test_malformed_framing_is_refused_as_nginx_does(framing: bytes, status: int) -> None:
    with Sandbox() as sb:
        path = "/api/v3/accounts/token/obtain/"
        answer = _raw(sb, f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + framing)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status) and b"Connection: close" in head and b"nginx" in body


def test_a_declared_length_over_the_limit_is_refused_at_once() -> None:
    import socket

    # nothing of the body is sent: the answer must not wait for it (it used to read it all first)
    with Sandbox(max_body_bytes=1000) as sb:
        for expect in (b"", b"Expect: 100-continue\r\n"):
            with socket.create_connection(("127.0.0.1", sb.port), timeout=10) as sock:
                started = time.monotonic()
                sock.sendall(b"POST /api/v3/services/face_liveness/ HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 22000000\r\n" + expect + b"\r\n")
                head = sock.recv(65536)
                assert head.startswith(b"HTTP/1.1 413"), head[:80]  # not 100 Continue
                assert time.monotonic() - started < 1.5


def test_options_and_head_as_drf_answers_them(sandbox: Sandbox, http: requests.Session,
                                              auth: dict[str, str]) -> None:
    service = sandbox.url("services/face_liveness/")
    assert http.options(service).status_code == 401  # authenticated like the view's other methods
    options = http.options(service, headers=auth)
    assert options.status_code == 200 and options.headers["Allow"] == "POST, OPTIONS"
    assert "multipart/form-data" in options.json()["parses"]
    assert http.options(sandbox.url("accounts/token/obtain/")).status_code == 200
    task = http.head(sandbox.url("services/task/?id=nope"), headers=auth)
    assert task.status_code == 404 and task.content == b""  # GET's status, no body
    assert http.head(service, headers=auth).status_code == 405


def test_refresh_rotation_over_http(sandbox: Sandbox, http: requests.Session) -> None:
    pair = http.post(
        sandbox.url("accounts/token/obtain/"), files=form(username="sandbox", password="sandbox-password")
    )
    refreshed = http.post(sandbox.url("accounts/token/refresh/"), files=form(refresh=pair.json()["refresh"]))
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert set(body) == {"access", "refresh"} and body["refresh"] != pair.json()["refresh"]
    garbage = http.post(sandbox.url("accounts/token/refresh/"), files=form(refresh="garbage"))
    assert garbage.json() == {"detail": "Token is invalid or expired", "code": "token_not_valid"}
    # an access token is not a refresh token
    wrong_type = http.post(sandbox.url("accounts/token/refresh/"), files=form(refresh=body["access"]))
    assert wrong_type.status_code == 401


def test_urlencoded_forms_are_accepted(sandbox: Sandbox, http: requests.Session) -> None:
    response = http.post(
        sandbox.url("accounts/token/obtain/"), data={"username": "sandbox", "password": "sandbox-password"}
    )
    assert response.status_code == 200


def test_drop_fault_closes_without_answer(sandbox: Sandbox, http: requests.Session) -> None:
    sandbox.inject("obtain", "drop")
    with pytest.raises(requests.ConnectionError):
        http.post(
            sandbox.url("accounts/token/obtain/"), files=form(username="sandbox", password="sandbox-password")
        )
    assert sandbox.stats["dropped"] == 1


def test_unknown_fault_kind(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.inject("task", "explode")


def test_command_line(repo_root: str) -> None:
    env = {**os.environ, "PYTHONPATH": repo_root, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "progeny_api.sandbox", "--port", "0", "--access-lifetime", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Progeny sandbox: http://127.0.0.1:"), first + (
            proc.stderr.read() if proc.stderr else ""
        )
        base_url = first.split(": ", 1)[1].strip()
        assert "sandbox-password" in proc.stdout.readline()
        response = requests.post(
            base_url + "/accounts/token/obtain/",
            files=form(username="sandbox", password="sandbox-password"),
            timeout=5,
        )
        assert response.status_code == 200 and set(response.json()) == {"access", "refresh"}
        payload = json.loads(
            __import__("base64").urlsafe_b64decode(response.json()["access"].split(".")[1] + "==")
        )
        assert 25 <= payload["exp"] - time.time() <= 31
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_header_names_are_case_insensitive(sandbox: Sandbox, http: requests.Session) -> None:
    prepared = requests.Request(
        "POST",
        sandbox.url("accounts/token/obtain/"),
        files=form(username="sandbox", password="sandbox-password"),
    ).prepare()
    content_type = prepared.headers.pop("Content-Type")
    prepared.headers["content-type"] = content_type
    assert http.send(prepared).status_code == 200
