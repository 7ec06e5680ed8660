"""Polling: Celery states, the early-404 grace, terminal failures, the deadline, and resuming."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from progeny_api import (
    NotFoundError,
    ProgenyClient,
    Task,
    TaskFailedError,
    TaskTimeoutError,
    TransportError,
)
from progeny_api.sandbox import Sandbox

pytestmark = pytest.mark.timeout(30)


def test_full_lifecycle(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    lifecycle = ("404", "404", "PENDING", "RECEIVED", "STARTED", "RETRY", "PROGRESS", "SUCCESS")
    with Sandbox(lifecycle=lifecycle) as sb:
        result = make_client(sb).face_liveness(face)
        assert result.passed is True
        assert sb.task(result.task_id).polls == len(lifecycle)  # unknown "PROGRESS" meant "not yet"


@pytest.mark.parametrize("state", ["FAILURE", "REVOKED", "REJECTED"])
def test_terminal_failures(make_client: Callable[..., ProgenyClient], face: bytes, state: str) -> None:
    with Sandbox(lifecycle=("PENDING", state)) as sb:
        with pytest.raises(TaskFailedError) as info:
            make_client(sb).face_liveness(face)
        err = info.value
        assert err.status == state and err.task.id == err.task_id
        assert err.exc_type is not None and err.raw["status"] == state


def test_deadline_ends_polling(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("PENDING",)) as sb:
        client = make_client(sb, poll_interval=0.05, poll_max_interval=0.2)
        task = client.face_liveness(face, wait=False)
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError) as info:
            client.wait(task, deadline=0.6)
        elapsed = time.monotonic() - started
        assert 0.55 <= elapsed < 1.2
        err = info.value
        assert err.task == task and err.last_status == "PENDING" and err.deadline == 0.6
        assert task.id in str(err)


def test_default_deadline_comes_from_the_client(
    make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    with Sandbox(lifecycle=("STARTED",)) as sb:
        client = make_client(sb, poll_deadline=0.3)
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError) as info:
            client.face_liveness(face)
        assert time.monotonic() - started < 1.0 and info.value.last_status == "STARTED"


def test_deadline_zero_polls_once(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("PENDING", "SUCCESS")) as sb:
        client = make_client(sb)
        task = client.face_liveness(face, wait=False)
        with pytest.raises(TaskTimeoutError):
            client.wait(task, deadline=0)
        assert sb.task(task.id).polls == 1
        assert client.wait(task, deadline=0).passed is True


def test_slow_poll_still_ends_by_the_deadline(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    """A server that stops answering must not stretch the deadline by the 60 s read timeout."""
    with Sandbox(lifecycle=("PENDING",)) as sb:
        client = make_client(sb, timeout=(2.0, 60.0))
        task = client.face_liveness(face, wait=False)
        sb.inject("task", "slow", delay=10, times=10)
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError) as info:
            client.wait(task, deadline=0.5)
        assert time.monotonic() - started < 2.0  # deadline + the 1 s floor of a capped read timeout
        assert isinstance(info.value.__cause__, TransportError)


@pytest.mark.parametrize("deadline", [-1.0, float("nan"), float("inf")])
def test_a_bad_deadline_is_refused_before_the_post(
    sandbox: Sandbox, client: ProgenyClient, face: bytes, deadline: float
) -> None:
    """Refused after the POST, the billed task would exist with no one waiting for it."""
    with pytest.raises(ValueError, match="deadline"):
        client.face_liveness(face, deadline=deadline)
    with pytest.raises(ValueError, match="deadline"):
        client.background_check("Jane Q Public", "1980-02-03", deadline=deadline)
    assert sandbox.post_count() == 0 and sandbox.stats["tasks_created"] == 0


def test_404_grace_then_not_found(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("404",)) as sb:
        client = make_client(sb, not_found_grace=0.3)
        task = client.face_liveness(face, wait=False)
        started = time.monotonic()
        with pytest.raises(NotFoundError) as info:
            client.wait(task)
        assert 0.3 <= time.monotonic() - started < 1.5
        assert info.value.task_id == task.id and info.value.status_code == 404
        assert sb.task(task.id).polls > 2  # it kept polling through the grace period


def test_404_grace_longer_than_deadline(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("404",)) as sb:
        client = make_client(sb, not_found_grace=30)
        task = client.face_liveness(face, wait=False)
        with pytest.raises(TaskTimeoutError) as info:
            client.wait(task, deadline=0.3)
        assert info.value.last_status == "NOT_FOUND"


def test_unknown_task_id(sandbox: Sandbox, make_client: Callable[..., ProgenyClient]) -> None:
    client = make_client(sandbox, not_found_grace=0.1)
    with pytest.raises(NotFoundError):
        client.wait("00000000-0000-4000-8000-000000000000")


def test_resume_after_a_crash(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("PENDING", "PENDING", "SUCCESS")) as sb:
        first = make_client(sb)
        saved = json.dumps(first.kyc_passport(face, face, wait=False).to_dict())
        first.close()  # the process "crashes" here
        second = make_client(sb)
        result = second.wait(Task.from_dict(json.loads(saved)))
        assert result.service == "kyc_passport" and result.passed is True
        assert sb.post_count() == 1  # resumed, not resubmitted


def test_resume_after_a_timeout(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    with Sandbox(lifecycle=("PENDING",)) as sb:
        client = make_client(sb)
        task = client.face_liveness(face, wait=False)
        with pytest.raises(TaskTimeoutError) as info:
            client.wait(task, deadline=0.1)
        sb.task(task.id).lifecycle = ("SUCCESS",)
        assert client.wait(info.value.task).passed is True


def test_token_expiry_mid_poll_with_short_lifetime(
    make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    lifecycle = ("404",) + ("PENDING",) * 30 + ("SUCCESS",)
    with Sandbox(access_lifetime=0.4, lifecycle=lifecycle) as sb:
        client = make_client(sb, poll_interval=0.05, poll_max_interval=0.05)
        result = client.face_liveness(face)
        assert result.passed is True
        stats = sb.stats
        assert stats["refresh"] >= 2 and stats["obtain"] == 1 and stats["refresh_rejected"] == 0


def test_unreadable_status_means_not_yet(sandbox: Sandbox, client: ProgenyClient, face: bytes) -> None:
    task = client.face_liveness(face, wait=False)
    sandbox.inject("task", "status", status=200, body={"id": 1, "status": {"odd": True}}, times=2)
    with pytest.raises(TaskTimeoutError) as info:
        client.wait(task, deadline=0.02)
    assert info.value.last_status == "UNKNOWN"
    assert client.wait(task).passed is True
