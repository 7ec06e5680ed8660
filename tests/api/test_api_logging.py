"""No secret, image byte or personal datum in any log record, exception message or repr."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from progeny_api import ProgenyClient, ProgenyError
from progeny_api.sandbox import Sandbox

pytestmark = pytest.mark.timeout(60)

PASSWORD = "s3cret-Passw0rd!"
PERSONAL = (
    "OLENA",
    "TESTENKO",
    "XX008080",
    "1991-9-24",
    "portrait",
    "/media/images",
    "Jane Q Public",
    "1980-02-03",
)


def test_nothing_sensitive_is_logged(
    make_client: Callable[..., ProgenyClient], caplog: pytest.LogCaptureFixture, big_face: bytes, images: Any
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, including urllib3 and the sandbox
    problems: list[str] = []
    with Sandbox(password=PASSWORD, access_lifetime=0.3, lifecycle=("404", "PENDING", "SUCCESS")) as sb:
        client = make_client(sb)
        results = [
            client.face_liveness(big_face),
            client.kyc_passport(big_face, images.png(800, 600)),
            client.background_check("Jane Q Public", "1980-02-03"),
        ]
        sb.expire_access_tokens()  # 401 -> refresh -> replay
        results.append(client.ocr_passport(big_face))
        sb.revoke_refresh_tokens()  # refused refresh -> login again
        import time

        time.sleep(0.35)
        results.append(client.register_face(big_face))
        errors: list[ProgenyError] = []
        for target, kind in (("services", "502"), ("task", "malformed_json"), ("refresh", "500")):
            sb.inject(target, kind, times=3)
            if kind == "500":
                time.sleep(0.35)  # the access token expires: the refresh meets the 500s
            try:
                client.ocr_passport(big_face)
            except ProgenyError as exc:
                errors.append(exc)
            sb.clear_faults()
        bad = make_client(sb, password="wrong-" + PASSWORD)
        try:
            bad.face_liveness(big_face)
        except ProgenyError as exc:
            errors.append(exc)
        assert len(errors) == 4
        # Every token the server issued or received.
        tokens = {r.authorization.split()[-1] for r in sb.requests if r.authorization}
        tokens |= {r.fields["refresh"] for r in sb.requests if r.route == "refresh"}
        assert len(tokens) >= 4
        stats = sb.stats
        assert stats["refresh"] >= 1 and stats["obtain"] >= 2 and stats["token_not_valid"] >= 1

    secrets = [PASSWORD, *tokens, *PERSONAL, images.marker.decode()]
    texts = [record.getMessage() for record in caplog.records]
    texts += [logging.Formatter().format(record) for record in caplog.records]
    texts += [str(e) for e in errors] + [repr(e) for e in errors] + [repr(r) for r in results]
    texts += [repr(client), repr(bad)]
    for text in texts:
        for secret in secrets:
            if secret in text:
                problems.append(f"{secret!r} in {text[:200]!r}")
    assert not problems, problems
    assert len(caplog.records) > 50  # we did capture the DEBUG traffic
    assert any("task=" in t for t in texts)  # and task ids are logged, which is the point


def test_filter_scrubs_a_careless_log_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="progeny_api")
    logging.getLogger("progeny_api").warning(
        "headers=%s body=%s",
        {"Authorization": "Bearer abc.def.ghi"},
        "password=hunter2&refresh=eyJx.eyJy.sig",
    )
    message = caplog.records[-1].getMessage()
    for secret in ("abc.def.ghi", "hunter2", "eyJx.eyJy.sig"):
        assert secret not in message
    assert message.startswith("headers=") and "Authorization" in message and "body=password=" in message
