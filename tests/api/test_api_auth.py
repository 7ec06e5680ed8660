"""Tokens: lazy login, proactive refresh, rotation, 401 replay, re-login, and 8 threads at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from progeny_api import AuthenticationError, ProgenyClient
from progeny_api._jwt import b64url_decode, decode_unverified
from progeny_api.sandbox import Sandbox

pytestmark = pytest.mark.timeout(60)


def test_login_is_lazy_and_happens_once(
    sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    client = make_client(sandbox)
    assert sandbox.stats["obtain"] == 0
    client.face_liveness(face)
    client.face_liveness(face)
    stats = sandbox.stats
    assert stats["obtain"] == 1 and stats["refresh"] == 0 and stats["unauthorized"] == 0
    obtain = next(r for r in sandbox.requests if r.route == "obtain")
    assert obtain.fields == {"username": sandbox.username, "password": sandbox.password}  # multipart form


def test_tokens_are_simplejwt_shaped(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    client.face_liveness(face)
    header = next(r for r in sandbox.requests if r.route == "service").authorization
    assert header is not None
    scheme, token = header.split(" ")
    assert scheme == "Bearer"
    import json

    assert json.loads(b64url_decode(token.split(".")[0])) == {"typ": "JWT", "alg": "HS256"}
    claims = decode_unverified(token)
    assert claims is not None and set(claims) == {"token_type", "exp", "jti", "user_id"}
    assert claims["token_type"] == "access"


def test_bad_credentials(sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    client = make_client(sandbox, password="wrong")
    with pytest.raises(AuthenticationError) as info:
        client.face_liveness(face)
    err = info.value
    assert err.status_code == 401
    assert "No active account found with the given credentials" in str(err)
    assert "wrong" not in str(err) and "wrong" not in repr(err)
    assert sandbox.stats["obtain_failed"] == 1  # a 401 is not retried
    assert sandbox.post_count() == 0


def test_missing_credentials(sandbox: Sandbox, face: bytes) -> None:
    with ProgenyClient(base_url=sandbox.base_url) as client, pytest.raises(AuthenticationError):
        client.face_liveness(face)
    assert sandbox.stats["obtain"] + sandbox.stats["obtain_failed"] == 0


def test_proactive_refresh_and_rotation(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(access_lifetime=0.8, lifecycle=("SUCCESS",)) as sb:
        client = make_client(sb)
        for _ in range(3):
            client.face_liveness(face)
            time.sleep(0.85)
        client.face_liveness(face)
        stats = sb.stats
        assert stats["obtain"] == 1
        assert stats["refresh"] == 3
        # Blacklisting is on: had the client re-used a spent refresh token, the server would have said so.
        assert stats["refresh_rejected"] == 0
        assert stats["unauthorized"] == 0  # refreshed *before* expiry, never sent an expired token
        sent = [r.fields["refresh"] for r in sb.requests if r.route == "refresh"]
        assert len(set(sent)) == 3  # a new (rotated) refresh token each time


def test_401_mid_poll_refreshes_once_and_replays(
    sandbox: Sandbox, client: ProgenyClient, face: bytes
) -> None:
    task = client.face_liveness(face, wait=False)
    sandbox.inject("task", "token_expired")
    result = client.wait(task)
    assert result.passed is True
    stats = sandbox.stats
    assert stats["refresh"] == 1 and stats["obtain"] == 1


def test_401_on_service_post_replays_the_full_body(
    sandbox: Sandbox, client: ProgenyClient, big_face: bytes
) -> None:
    client.face_liveness(big_face)  # log in
    sandbox.expire_access_tokens()  # the client still believes its token is good
    result = client.face_liveness(big_face)
    assert result.passed is True
    stats = sandbox.stats
    assert stats["refresh"] == 1 and stats["obtain"] == 1 and stats["token_not_valid"] == 1
    assert sandbox.post_count("face_liveness") == 3  # 1 + (rejected + replay)
    assert stats["tasks_created"] == 2  # the rejected POST created nothing
    import hashlib

    digest = hashlib.sha256(big_face).hexdigest()
    assert [u.sha256 for u in sandbox.uploads("face_liveness")] == [digest] * 3


def test_replay_happens_only_once(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "token_expired", times=2)
    with pytest.raises(AuthenticationError):
        client.face_liveness(face)
    assert sandbox.post_count("face_liveness") == 2
    assert sandbox.stats["refresh"] == 1


def test_refused_refresh_falls_back_to_one_login(
    make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    with Sandbox(access_lifetime=0.5, lifecycle=("SUCCESS",)) as sb:
        client = make_client(sb)
        client.face_liveness(face)
        sb.revoke_refresh_tokens()
        time.sleep(0.55)
        assert client.face_liveness(face).passed is True
        stats = sb.stats
        assert stats["refresh_rejected"] == 1 and stats["obtain"] == 2


def test_refused_refresh_and_refused_login_raise(
    make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    with Sandbox(access_lifetime=0.5, lifecycle=("SUCCESS",)) as sb:
        client = make_client(sb)
        client.face_liveness(face)
        sb.revoke_refresh_tokens()
        sb.set_credentials("sandbox", "rotated-password")
        time.sleep(0.55)
        with pytest.raises(AuthenticationError):
            client.face_liveness(face)
        assert sb.stats["obtain_failed"] == 1 and sb.post_count() == 1


def test_the_server_detects_a_burnt_refresh_token(sandbox: Sandbox) -> None:
    """Control experiment: re-using a rotated refresh token is refused, so the thread tests below would see
    any double refresh as ``refresh_rejected``."""
    session = requests.Session()
    pair = session.post(
        sandbox.url("accounts/token/obtain/"),
        files={"username": (None, sandbox.username), "password": (None, sandbox.password)},
    ).json()
    first = session.post(sandbox.url("accounts/token/refresh/"), files={"refresh": (None, pair["refresh"])})
    second = session.post(sandbox.url("accounts/token/refresh/"), files={"refresh": (None, pair["refresh"])})
    assert first.status_code == 200 and set(first.json()) == {"access", "refresh"}
    assert second.status_code == 401
    assert second.json() == {"detail": "Token is blacklisted", "code": "token_not_valid"}
    assert sandbox.stats["refresh_rejected"] == 1
    session.close()


def _run_threads(count: int, work: Callable[[int], Any]) -> list[BaseException]:
    errors: list[BaseException] = []
    lock = threading.Lock()

    def runner(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # pragma: no cover - reported below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    return errors


def test_eight_threads_share_one_refresh_after_expiry(
    make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    with Sandbox(access_lifetime=1.0, lifecycle=("PENDING", "SUCCESS")) as sb:
        client = make_client(sb)
        client.face_liveness(face)  # log in
        time.sleep(1.05)  # the access token has expired for everyone
        barrier = threading.Barrier(8)

        def work(_: int) -> None:
            barrier.wait()
            assert client.face_liveness(face).passed is True

        assert _run_threads(8, work) == []
        stats = sb.stats
        assert stats["obtain"] == 1  # no spurious re-login
        assert stats["refresh"] == 1  # single flight: exactly one refresh for eight threads
        assert stats["refresh_rejected"] == 0  # no burnt (blacklisted) refresh token re-used
        assert stats["unauthorized"] == 0
        assert sb.post_count("face_liveness") == 9


def test_eight_threads_token_revoked_mid_poll(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("404", "PENDING", "PENDING", "PENDING", "PENDING", "SUCCESS")) as sb:
        client = make_client(sb, poll_interval=0.05, poll_max_interval=0.05)
        tasks = [client.face_liveness(face, wait=False) for _ in range(8)]
        barrier = threading.Barrier(9)

        def work(index: int) -> None:
            barrier.wait()
            assert client.wait(tasks[index]).passed is True

        worker = threading.Thread(target=lambda: _run_threads(8, work))
        worker.start()
        barrier.wait()
        time.sleep(0.08)  # everyone is polling now
        sb.expire_access_tokens()
        worker.join(timeout=30)
        stats = sb.stats
        assert stats["token_not_valid"] >= 1  # the expiry really hit in-flight polls
        assert stats["refresh"] == 1  # and exactly one refresh answered all of them
        assert stats["obtain"] == 1 and stats["refresh_rejected"] == 0


def test_eight_threads_under_continuous_load(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    lifetime = 0.8
    with Sandbox(access_lifetime=lifetime, lifecycle=("PENDING", "SUCCESS")) as sb:
        client = make_client(sb)
        stop_at = time.monotonic() + 2.5
        done = [0] * 8

        def work(index: int) -> None:
            while time.monotonic() < stop_at:
                assert client.face_liveness(face).passed is True
                done[index] += 1

        started = time.monotonic()
        assert _run_threads(8, work) == []
        elapsed = time.monotonic() - started
        stats = sb.stats
        assert all(done)
        assert stats["obtain"] == 1 and stats["refresh_rejected"] == 0
        # one refresh per token lifetime (renewed at 80 % of it), never one per thread
        assert 1 <= stats["refresh"] <= elapsed / (lifetime * 0.8) + 1
