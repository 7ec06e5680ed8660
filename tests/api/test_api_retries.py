"""Retries and the duplicate-task rule, with faults injected into a real server.

A service POST may be replayed only when the server provably did not process it (connect failure, 429,
503, a rejected token); after a drop, a read timeout or a 500/502/504 it is *not* replayed, unless the caller
opts in with ``retry_ambiguous_posts=True``.
"""

from __future__ import annotations

import email.utils
import hashlib
import io
import time
from collections.abc import Callable
from typing import Any

import pytest

from progeny_api import (
    ProgenyClient,
    RateLimitError,
    RedirectError,
    ResponseFormatError,
    ServerError,
    TransportError,
)
from progeny_api.sandbox import Sandbox

pytestmark = pytest.mark.timeout(30)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- 429 ----------------------------------------------------------------------------------------------------


def test_429_honours_retry_after_seconds(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    client.face_liveness(face)  # log in first, so that timing only covers the throttled call
    sandbox.inject("face_liveness", "429", retry_after=0.3)
    started = time.monotonic()
    task = client.face_liveness(face, wait=False)
    assert time.monotonic() - started >= 0.3  # waited what the server asked, not the tiny backoff
    assert task.id in sandbox.tasks
    assert sandbox.post_count("face_liveness") == 3 and sandbox.stats["tasks_created"] == 2


def test_429_honours_retry_after_http_date(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    client.face_liveness(face)
    when = email.utils.formatdate(time.time() + 1.5, usegmt=True)  # whole seconds: waits 0.5 to 1.5 s
    sandbox.inject("task", "429", retry_after=when)
    started = time.monotonic()
    assert client.face_liveness(face).passed is True
    assert 0.4 <= time.monotonic() - started < 4


def test_too_long_retry_after_raises_at_once(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "429", retry_after=120)  # above max_retry_after=5
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        client.face_liveness(face)
    assert time.monotonic() - started < 1.5
    assert info.value.retry_after == 120 and info.value.status_code == 429
    assert "throttled" in info.value.body["detail"]
    assert sandbox.post_count("face_liveness") == 1


def test_429_gives_up_after_max_retries(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "429", retry_after=0.01, times=5)
    with pytest.raises(RateLimitError):
        client.face_liveness(face)
    assert sandbox.post_count("face_liveness") == 3  # first attempt + max_retries=2


def test_429_without_retry_after_uses_backoff(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "429", retry_after=None)
    assert client.face_liveness(face).passed is True
    assert sandbox.post_count("face_liveness") == 2


# -- 5xx ----------------------------------------------------------------------------------------------------


def test_503_on_post_is_retried_with_the_full_body(
    sandbox: Sandbox, client: ProgenyClient, big_face: bytes
) -> None:
    sandbox.inject("face_liveness", "503", times=2)
    assert client.face_liveness(big_face).passed is True
    uploads = sandbox.uploads("face_liveness", "image")
    assert len(uploads) == 3
    assert [u.sha256 for u in uploads] == [digest(big_face)] * 3
    assert sandbox.stats["tasks_created"] == 1


def test_file_object_is_read_once_and_sent_whole_every_time(
    sandbox: Sandbox, client: ProgenyClient, big_face: bytes
) -> None:
    sandbox.inject("face_liveness", "503", times=2)
    stream = io.BytesIO(big_face)
    assert client.face_liveness(stream).passed is True
    assert [u.size for u in sandbox.uploads("face_liveness")] == [len(big_face)] * 3


@pytest.mark.parametrize("status", ["500", "502", "504"])
def test_ambiguous_5xx_on_post_is_not_replayed(
    sandbox: Sandbox, client: ProgenyClient, face: bytes, status: str
) -> None:
    sandbox.inject("face_liveness", status)
    with pytest.raises(ServerError) as info:
        client.face_liveness(face)
    err = info.value
    assert err.status_code == int(status)
    assert isinstance(err.body, str) and "<html" in err.body.lower()  # the HTML page, as text
    assert "non-JSON" in str(err)
    assert sandbox.post_count("face_liveness") == 1


def test_ambiguous_retry_is_opt_in(
    sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    client = make_client(sandbox, retry_ambiguous_posts=True)
    sandbox.inject("face_liveness", "502")
    assert client.face_liveness(face).passed is True
    assert sandbox.post_count("face_liveness") == 2


@pytest.mark.parametrize("status", ["500", "502", "503", "504"])
def test_5xx_on_poll_is_retried(sandbox: Sandbox, client: ProgenyClient, face: bytes, status: str) -> None:
    sandbox.inject("task", status, times=2)
    assert client.face_liveness(face).passed is True
    assert sandbox.stats[f"fault:{status}"] == 2


def test_5xx_on_poll_gives_up(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("task", "500", times=10)
    with pytest.raises(ServerError) as info:
        client.face_liveness(face)
    assert info.value.task_id is not None  # so the caller can resume
    assert sandbox.stats["fault:500"] == 3


def test_5xx_on_token_obtain_is_retried(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("obtain", "502")
    assert client.face_liveness(face).passed is True
    assert sandbox.stats["obtain"] == 1 and sandbox.stats["fault:502"] == 1


def test_max_retries_zero(sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    client = make_client(sandbox, max_retries=0)
    sandbox.inject("face_liveness", "503")
    with pytest.raises(ServerError):
        client.face_liveness(face)
    assert sandbox.post_count("face_liveness") == 1


# -- dropped connections and timeouts ----------------------------------------------------------------------


def test_drop_after_post_body_is_not_replayed(
    sandbox: Sandbox, client: ProgenyClient, big_face: bytes
) -> None:
    client.face_liveness(big_face)
    sandbox.reset_stats()
    sandbox.inject("face_liveness", "drop")  # the server creates the task, then the connection dies
    with pytest.raises(TransportError) as info:
        client.face_liveness(big_face)
    assert info.value.may_have_reached_server is True
    assert sandbox.post_count("face_liveness") == 1
    assert sandbox.stats["tasks_created"] == 1  # exactly one (billed) task, no duplicate
    assert [u.sha256 for u in sandbox.uploads("face_liveness")] == [digest(big_face)]


def test_drop_replay_when_opted_in_duplicates(
    sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    client = make_client(sandbox, retry_ambiguous_posts=True)
    sandbox.inject("face_liveness", "drop")
    assert client.face_liveness(face).passed is True
    assert sandbox.post_count("face_liveness") == 2
    assert sandbox.stats["tasks_created"] == 2  # why it is opt-in


def test_drop_on_poll_is_retried(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("task", "drop", times=2)
    assert client.face_liveness(face).passed is True
    assert sandbox.stats["dropped"] == 2


def test_read_timeout_on_post_is_not_replayed(
    sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    client = make_client(sandbox, timeout=(2.0, 0.3))
    client.face_liveness(face)
    sandbox.inject("face_liveness", "slow", delay=1.0)
    with pytest.raises(TransportError) as info:
        client.face_liveness(face)
    assert info.value.may_have_reached_server is True
    assert "ReadTimeout" in str(info.value)
    assert sandbox.post_count("face_liveness") == 2  # one per call


def test_read_timeout_on_poll_is_retried(
    sandbox: Sandbox, make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    client = make_client(sandbox, timeout=(2.0, 0.3))
    fault = sandbox.inject("task", "slow", delay=1.0)
    assert client.face_liveness(face).passed is True
    assert fault.hits == 1  # the slow poll happened (and timed out), the next one answered


def test_connection_refused_is_retried_even_for_post(
    make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    sb = Sandbox(lifecycle=("SUCCESS",)).start()
    client = make_client(sb)
    client.face_liveness(face)  # holds a valid token now
    sb.stop()  # nothing listens any more: the request provably never reaches a server
    sleeps: list[float] = []
    client._sleep = sleeps.append  # type: ignore[method-assign]
    with pytest.raises(TransportError) as info:
        client.face_liveness(face)
    assert info.value.may_have_reached_server is False
    assert len(sleeps) == 2  # max_retries
    # the message counts every attempt, not only the last ("failed after 0.00s" said too little)
    assert "failed (3 attempts in " in str(info.value) and ", the last after " in str(info.value)


# -- bodies that are not what the docs promise ---------------------------------------------------------------


def test_malformed_json_on_poll(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("task", "malformed_json")
    with pytest.raises(ResponseFormatError) as info:
        client.face_liveness(face)
    assert info.value.status_code == 200 and isinstance(info.value.body, str)
    assert info.value.task_id is not None


def test_malformed_json_on_post(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "malformed_json")
    with pytest.raises(ResponseFormatError):
        client.face_liveness(face)
    assert sandbox.post_count("face_liveness") == 1


def test_json_without_task_id(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "status", status=200, body={"ok": True})
    with pytest.raises(ResponseFormatError, match="task id"):
        client.face_liveness(face)


def test_html_200_is_a_format_error(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("task", "status", status=200, body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(ResponseFormatError):
        client.face_liveness(face)


def test_redirect_on_post_raises(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    sandbox.inject("face_liveness", "redirect", status=301)
    with pytest.raises(RedirectError) as info:
        client.face_liveness(face)
    assert info.value.status_code == 301
    assert info.value.location is not None and info.value.location.endswith("/services/face_liveness/")
    assert sandbox.post_count("face_liveness") == 1
    assert sandbox.stats["task_get"] == 0  # not followed as a GET


def test_redirect_on_poll_keeps_the_query(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    """A GET redirect is followed; the sandbox's Location must carry ``?id=`` or the poll becomes a 400."""
    sandbox.inject("task", "redirect", status=302)
    assert client.face_liveness(face).passed is True
    assert [r.status for r in sandbox.requests if r.fault == "redirect"] == [302]


def test_retries_are_logged_without_detail(
    sandbox: Sandbox, client: ProgenyClient, face: bytes, caplog: Any
) -> None:
    caplog.set_level("INFO", logger="progeny_api")
    sandbox.inject("face_liveness", "503")
    client.face_liveness(face)
    messages = [r.getMessage() for r in caplog.records]
    assert any("retry 1 of 2" in m for m in messages)
    # the 503's HTML page is not logged
    assert not any("<html" in m.lower() or "<title" in m.lower() for m in messages), messages
