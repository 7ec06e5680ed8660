"""Every endpoint, end to end over real HTTP against the sandbox."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from progeny_api import (
    BadRequestError,
    PermissionDeniedError,
    ProgenyClient,
    Task,
    TaskFailedError,
    TaskResult,
)
from progeny_api.sandbox import Sandbox, UploadedFile

pytestmark = pytest.mark.timeout(30)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_face_liveness_pass(client: ProgenyClient, sandbox: Sandbox, face: bytes) -> None:
    result = client.face_liveness(face)
    assert isinstance(result, TaskResult)
    assert result.status == "SUCCESS" and result.passed is True
    assert result.verdicts == {"liveness": True}
    assert isinstance(result.liveness_score, float)
    assert isinstance(result.record_id, int)
    assert result.task_id in sandbox.tasks
    (record,) = [r for r in sandbox.requests if r.route == "service"]
    assert record.fields == {"extend_data": "false"}
    assert record.files["image"].sha256 == sha(face)
    assert record.authorization is not None and record.authorization.startswith("Bearer ")


def test_face_liveness_verdict_failure_is_a_result(client: ProgenyClient, images: Any) -> None:
    result = client.face_liveness(images.png(200, 200))
    assert result.passed is False
    assert result.error_codes == {"FACE_TOO_SMALL"}
    assert result.http_status == 400  # the inner status: metadata, no exception
    unreadable = client.face_liveness(b"definitely not an image")
    assert unreadable.error_codes == {"FAILED_TO_READ_IMAGE"} and unreadable.http_status == 200


def test_extend_data_is_always_sent(client: ProgenyClient, sandbox: Sandbox, face: bytes) -> None:
    client.face_liveness(face, extend_data=True)
    client.register_face(face)
    sent = [r.fields["extend_data"] for r in sandbox.requests if r.route == "service"]
    assert sent == ["true", "false"]


def test_register_then_authenticate(client: ProgenyClient, face: bytes, images: Any) -> None:
    registered = client.register_face(face)
    assert registered.uuid is not None
    same = client.authenticate_face(face, registered.uuid)
    assert same.passed is True and same.match_score == 20.0 and same.score_percent == 100.0
    other = client.authenticate_face(images.jpeg(700, 700, payload=10, seed=5), registered.uuid)
    assert other.passed is True and other.match_score == 18.5


def test_authenticate_unknown_face(client: ProgenyClient, face: bytes) -> None:
    result = client.authenticate_face(face, "d3da2b7a-b062-11ec-b3b9-0242ac190002")
    assert result.passed is False and "FACE_NOT_REGISTERED" in result.error_codes


def test_ocr_card(client: ProgenyClient, sandbox: Sandbox, document_image: bytes, images: Any) -> None:
    back = images.jpeg(800, 500, payload=100, seed=3)
    result = client.ocr_card(document_image, back)
    doc = result.document
    assert doc is not None and doc["dateOfBirth"] == dt.date(1991, 9, 24) and doc["dateOfIssue"] is None
    assert result.passed is True
    record = next(r for r in sandbox.requests if r.route == "service")
    assert record.service == "ocr_card"
    assert record.files["front_id"].sha256 == sha(document_image)
    assert record.files["back_id"].sha256 == sha(back)
    assert record.files["front_id"].content_type == "image/png"


def test_ocr_passport(client: ProgenyClient, document_image: bytes) -> None:
    result = client.ocr_passport(document_image)
    assert result.document is not None and isinstance(result.document["age"], int)
    assert result.verdicts == {"document": True}


def test_kyc_card(client: ProgenyClient, face: bytes, document_image: bytes) -> None:
    result = client.kyc_card(face, document_image, document_image)
    assert result.verdicts == {"document": True, "liveness": True, "compare": True}
    assert result.passed is True


def test_kyc_passport_with_a_bad_selfie(client: ProgenyClient, images: Any, document_image: bytes) -> None:
    result = client.kyc_passport(images.png(100, 100), document_image)
    assert result.passed is False
    assert result.verdicts["liveness"] is False and result.verdicts["compare"] is False
    assert result.issues == {"liveness": {"FACE_TOO_SMALL": "Absolute face size is too small"}}


def test_background_check(make_client: Callable[..., ProgenyClient]) -> None:
    with Sandbox(lifecycle=("PENDING", "SUCCESS"), watchlist=["Ivan Watchlisted"]) as sb:
        client = make_client(sb)
        clear = client.background_check("Jane Doe", dt.date(1990, 1, 2))
        assert clear.record_id is None  # documented without the envelope
        assert clear.background_check is not None and clear.background_check["potential_match"] is False
        assert clear.passed is True
        hit = client.background_check("Ivan Watchlisted", "1970-1-1")
        assert hit.passed is False and hit.background_check["total_matches"] == 1  # type: ignore[index]
        fields = [r.fields for r in sb.requests if r.route == "service"]
        assert fields[0] == {"fullname": "Jane Doe", "birth_date": "1990-01-02"}  # no extend_data here


@pytest.mark.parametrize("service", ["kyc_card_with_background_check", "kyc_passport_with_background_check"])
def test_combined_endpoints_via_submit(
    client: ProgenyClient, service: str, face: bytes, document_image: bytes
) -> None:
    docs = (
        {"front_id": document_image, "back_id": document_image}
        if "card" in service
        else {"passport_image": document_image}
    )
    task = client.submit(service, selfie_image=face, fullname="Jane Doe", **docs)
    result = client.wait(task)
    assert result.service == service
    assert result.background_check is not None and result.verdicts["compare"] is True


def test_wait_false_returns_the_task(client: ProgenyClient, face: bytes) -> None:
    task = client.face_liveness(face, wait=False)
    assert isinstance(task, Task) and task.service == "face_liveness"
    result = client.wait(task.id)  # a bare UUID string works too
    assert result.task_id == task.id and result.passed is True


def test_image_inputs(client: ProgenyClient, sandbox: Sandbox, face: bytes, tmp_path: Any) -> None:
    path = tmp_path / "me.jpg"
    path.write_bytes(face)
    client.face_liveness(str(path))
    with open(path, "rb") as handle:
        client.face_liveness(handle)
    client.face_liveness(("custom.jpeg", face, "image/jpeg"))
    uploads = sandbox.uploads("face_liveness", "image")
    assert [u.filename for u in uploads] == ["me.jpg", "me.jpg", "custom.jpeg"]
    assert {u.sha256 for u in uploads} == {sha(face)}


def test_bad_request_carries_field_errors(client: ProgenyClient, face: bytes) -> None:
    with pytest.raises(BadRequestError) as info:
        client.authenticate_face(face, "not-a-uuid")
    err = info.value
    assert err.status_code == 400
    assert err.field_errors == {"uuid": ["Must be a valid UUID."]}
    assert "uuid" in str(err)
    with pytest.raises(BadRequestError) as info:
        client.background_check("Jane Doe", "24/09/1991")
    assert info.value.field_errors == {
        "birth_date": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]
    }


def test_permission_denied(client: ProgenyClient, sandbox: Sandbox, face: bytes) -> None:
    sandbox.inject(
        "face_liveness",
        "status",
        status=403,
        body={"detail": "You do not have permission to perform this action."},
    )
    with pytest.raises(PermissionDeniedError) as info:
        client.face_liveness(face)
    assert info.value.status_code == 403 and "permission" in str(info.value)


def test_custom_judge_scripts_any_verdict(
    make_client: Callable[..., ProgenyClient], face: bytes, images: Any
) -> None:
    angled = images.jpeg(800, 800, payload=64, seed=99)

    def judge(service: str, files: Mapping[str, UploadedFile], fields: Mapping[str, str]) -> Any:
        if service == "face_liveness" and files["image"].data == angled:
            return {
                "liveness": {
                    "result": False,
                    "error": "Face angle is too large",
                    "error_code": "FACE_ANGLE_TOO_LARGE",
                },
                "issues": {"liveness": {"FACE_ANGLE_TOO_LARGE": "Face angle is too large"}},
            }
        return None  # the default judge decides

    with Sandbox(lifecycle=("SUCCESS",), judge=judge) as sb:
        client = make_client(sb)
        result = client.face_liveness(angled)
        assert result.error_codes == {"FACE_ANGLE_TOO_LARGE"} and result.http_status == 400
        assert client.face_liveness(face).passed is True


def test_set_verdict_for_given_image_bytes(client: ProgenyClient, sandbox: Sandbox, face: bytes) -> None:
    sandbox.set_verdict(face, "FACE_NOT_FOUND")
    result = client.face_liveness(face)
    assert result.error_codes == {"FACE_NOT_FOUND"} and result.http_status == 200
    kyc = client.kyc_passport(face, face)
    assert kyc.verdicts["liveness"] is False and "FACE_NOT_FOUND" in kyc.error_codes


def test_judge_crash_is_a_failed_task(make_client: Callable[..., ProgenyClient], face: bytes) -> None:
    def judge(service: str, files: Any, fields: Any) -> Any:
        raise RuntimeError("provider exploded")

    with Sandbox(lifecycle=("PENDING", "SUCCESS"), judge=judge) as sb:
        with pytest.raises(TaskFailedError) as info:
            make_client(sb).face_liveness(face)
        assert info.value.status == "FAILURE" and info.value.exc_type == "RuntimeError"
        assert info.value.task.service == "face_liveness"


@pytest.mark.parametrize(("local", "api"), [
    # each mapped code alone
    ({"FAILED_TO_READ_IMAGE"}, "FAILED_TO_READ_IMAGE"),
    ({"UNSUPPORTED_FORMAT"}, "FAILED_TO_READ_IMAGE"),
    ({"FACE_NOT_FOUND"}, "FACE_NOT_FOUND"),
    ({"FACE_TOO_SMALL"}, "FACE_TOO_SMALL"),
    ({"EYE_DISTANCE_TOO_SMALL"}, "FACE_TOO_SMALL"),
    ({"RESOLUTION_TOO_LOW"}, "FACE_TOO_SMALL"),
    ({"FACE_CUT_OFF"}, "FACE_TOO_CLOSE"),
    ({"PITCH_TOO_LARGE"}, "FACE_ANGLE_TOO_LARGE"),
    ({"YAW_TOO_LARGE"}, "FACE_ANGLE_TOO_LARGE"),
    ({"ROLL_TOO_LARGE"}, "FACE_ANGLE_TOO_LARGE"),
    ({"IMAGE_TURNED"}, "FACE_ANGLE_TOO_LARGE"),
    # precedence: the API reports one code, the most basic failure first
    ({"RESOLUTION_TOO_LOW", "FACE_NOT_FOUND"}, "FACE_NOT_FOUND"),
    ({"UNSUPPORTED_FORMAT", "FACE_NOT_FOUND"}, "FAILED_TO_READ_IMAGE"),
    ({"YAW_TOO_LARGE", "FACE_TOO_SMALL"}, "FACE_TOO_SMALL"),
    ({"FACE_CUT_OFF", "IMAGE_TURNED"}, "FACE_TOO_CLOSE"),
    # codes the API has no counterpart for pass
    ({"IMAGE_BLURRY", "HEIGHT_ABOVE_RECOMMENDED"}, None),
    (set(), None),
])
def test_preflight_checker_maps_each_code_with_precedence(
    monkeypatch: pytest.MonkeyPatch, local: set[str], api: str | None
) -> None:
    """The mapping table itself (the gate is a stand-in: this suite runs without the vision stack;
    tests/gate/test_submit.py runs the real gate behind the sandbox)."""
    from progeny_api.sandbox._results import preflight_face_checker

    fake = types.ModuleType("preflight")
    fake.check = lambda source: types.SimpleNamespace(codes=frozenset(local), passed=not local)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "preflight", fake)
    upload = UploadedFile(field="image", filename="face.jpg", content_type="image/jpeg", data=b"x")
    assert preflight_face_checker(upload) == api


def test_preflight_judge_maps_gate_codes(
    monkeypatch: pytest.MonkeyPatch, make_client: Callable[..., ProgenyClient], face: bytes
) -> None:
    """judge="preflight" imports the gate lazily; here a stand-in module plays the gate."""
    fake = types.ModuleType("preflight")
    fake.check = lambda source: types.SimpleNamespace(codes=frozenset({"YAW_TOO_LARGE"}), passed=False)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "preflight", fake)
    with Sandbox(lifecycle=("SUCCESS",), judge="preflight") as sb:
        result = make_client(sb).face_liveness(face)
    assert result.error_codes == {"FACE_ANGLE_TOO_LARGE"}
