"""Parsing and helpers, without HTTP: the documented samples, lenient coercion, redaction, multipart."""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import io
import json
import logging
import time

import pytest
import requests

import progeny_api
from progeny_api import (
    SERVICES,
    ProgenyClient,
    RedactingFilter,
    Task,
    TaskResult,
    backoff_delay,
    parse_date,
    parse_retry_after,
    redact_text,
    sniff_content_type,
    to_float,
)
from progeny_api._jwt import decode_unverified, encode_hs256, expiry_of, verify_hs256
from progeny_api._multipart import encode_multipart, load_image
from progeny_api.sandbox import image_info, parse_form

pytestmark = pytest.mark.timeout(30)

# The samples, verbatim from the reference notes (docs.progeny.tech).
LIVENESS_PASS = {
    "id": 2182,
    "status": "SUCCESS",
    "result": {
        "data": {
            "liveness": {
                "data": {"score": 2.5943651, "quality": 0.8175214, "probability": 0.930498},
                "result": True,
            }
        },
        "status": 200,
    },
}
LIVENESS_TOO_SMALL = {
    "id": 2183,
    "status": "SUCCESS",
    "result": {
        "data": {
            "liveness": {
                "result": False,
                "error": "Absolute face size is too small",
                "error_code": "FACE_TOO_SMALL",
            },
            "issues": {"liveness": {"FACE_TOO_SMALL": "Absolute face size is too small"}},
        },
        "status": 400,
    },
}
OVERVIEW_NO_FACE = {
    "id": 2158,
    "status": "SUCCESS",
    "result": {
        "data": {
            "liveness": {
                "data": {"error": "Failed to detect face", "error_code": "FACE_NOT_FOUND"},
                "result": False,
            },
            "issues": {"liveness": {"FACE_NOT_FOUND": "Failed to detect face"}},
        },
        "status": 200,
    },
}
REGISTER = {
    "id": 2170,
    "status": "SUCCESS",
    "result": {"status": 200, "data": {"uuid": "d3da2b7a-b062-11ec-b3b9-0242ac190002"}},
}
AUTHENTICATE = {
    "id": 2172,
    "status": "SUCCESS",
    "result": {
        "status": 200,
        "data": {
            "authentication": {"result": True, "data": {"matchScore": "20.0", "scorePercent": "100.0"}},
            "liveness": {"data": {"score": 2.5, "quality": 0.8, "probability": 0.9}, "result": True},
        },
    },
}
OCR_PASSPORT = {
    "id": 2188,
    "status": "SUCCESS",
    "result": {
        "status": 200,
        "data": {
            "document": {
                "is_valid": True,
                "is_expired": False,
                "dateOfBirth": "1991-9-24",
                "age": 30,
                "firstName": "OLENA",
                "lastName": "TESTENKO",
                "dateOfIssue": "None-None-None",
                "dateOfExpiry": "2023-9-25",
                "documentNumber": "XX008080",
                "sex": "F",
                "nationality": "UKRAINIAN",
                "portrait": "images/services/ocr_passport/1.jpg",
                "portrait_url": "https://dev.progeny.tech/media/images/services/ocr_passport/1.jpg",
            },
            "compare": True,
            "liveness": True,
        },
    },
}
BACKGROUND = {
    "background_check": {"potential_match": False, "risk_level": "unknown", "total_matches": 0, "hits": []}
}


def parse(raw: object, service: str | None = None) -> TaskResult:
    return TaskResult.from_response(raw, task_id="98008e56-cd6f-410c-9d8d-f9e620661395", service=service)


class TestDocumentedSamples:
    def test_liveness_pass(self) -> None:
        r = parse(LIVENESS_PASS)
        assert (r.record_id, r.status, r.http_status) == (2182, "SUCCESS", 200)
        assert r.task_id == "98008e56-cd6f-410c-9d8d-f9e620661395"
        assert r.verdicts == {"liveness": True}
        assert r.passed is True and r.issues == {} and r.error_codes == frozenset()
        assert r.liveness_score == pytest.approx(2.5943651)
        assert r.liveness_quality == pytest.approx(0.8175214)
        assert r.liveness_probability == pytest.approx(0.930498)

    def test_error_code_next_to_result_with_inner_400(self) -> None:
        r = parse(LIVENESS_TOO_SMALL)
        assert r.http_status == 400  # metadata, not an exception
        assert r.passed is False
        assert r.issues == {"liveness": {"FACE_TOO_SMALL": "Absolute face size is too small"}}
        assert r.error_codes == {"FACE_TOO_SMALL"}

    def test_error_code_inside_data_with_inner_200(self) -> None:
        r = parse(OVERVIEW_NO_FACE)
        assert r.http_status == 200
        assert r.passed is False
        assert r.error_codes == {"FACE_NOT_FOUND"}
        assert r.issues["liveness"]["FACE_NOT_FOUND"] == "Failed to detect face"

    def test_error_code_without_issues_map_is_still_found(self) -> None:
        for placement in (
            {"liveness": {"result": False, "error": "x", "error_code": "FACE_TOO_CLOSE"}},
            {"liveness": {"result": False, "data": {"error": "x", "error_code": "FACE_TOO_CLOSE"}}},
        ):
            r = parse({"id": 1, "status": "SUCCESS", "result": {"status": 200, "data": placement}})
            assert r.error_codes == {"FACE_TOO_CLOSE"} and r.passed is False

    def test_register_face(self) -> None:
        r = parse(REGISTER)
        assert r.uuid == "d3da2b7a-b062-11ec-b3b9-0242ac190002"
        assert r.verdicts == {} and r.passed is None

    def test_authenticate_face_scores_are_strings(self) -> None:
        r = parse(AUTHENTICATE)
        assert r.match_score == 20.0 and isinstance(r.match_score, float)
        assert r.score_percent == 100.0
        assert r.verdicts == {"authentication": True, "liveness": True} and r.passed is True

    def test_ocr_passport_dates_and_flat_verdicts(self) -> None:
        r = parse(OCR_PASSPORT)
        doc = r.document
        assert doc is not None
        assert doc["dateOfBirth"] == dt.date(1991, 9, 24)
        assert doc["dateOfIssue"] is None
        assert doc["dateOfExpiry"] == dt.date(2023, 9, 25)
        assert doc["age"] == 30
        assert r.data["document"]["dateOfBirth"] == "1991-9-24"  # raw kept
        assert r.verdicts == {"document": True, "compare": True, "liveness": True}
        assert r.passed is True

    def test_background_check_without_envelope(self) -> None:
        r = parse(BACKGROUND, service="background_check")
        assert r.status == "SUCCESS" and r.record_id is None and r.http_status is None
        assert r.background_check == BACKGROUND["background_check"]
        assert r.verdicts == {"background_check": True}

    def test_expired_document_fails(self) -> None:
        raw = json.loads(json.dumps(OCR_PASSPORT))
        raw["result"]["data"]["document"]["is_expired"] = True
        assert parse(raw).verdicts["document"] is False

    @pytest.mark.parametrize("result", ["Bad POST", {"status": 400, "data": "Bad POST"}])
    def test_legacy_bad_post_string_is_a_failed_verdict(self, result: object) -> None:
        # documented among the error codes; it comes as a bare string where the result map would be
        r = parse({"id": 7, "status": "SUCCESS", "result": result}, service="face_liveness")
        assert r.passed is False and r.error_codes == {"Bad POST"}
        assert r.issues == {"face_liveness": {"Bad POST": "Bad POST"}}

    def test_odd_shapes_never_raise(self) -> None:
        for raw in (
            None,
            [],
            "text",
            {"status": "SUCCESS"},
            {"status": "SUCCESS", "result": "oops"},
            {"id": "x"},
        ):
            r = parse(raw)
            assert r.passed is None or isinstance(r.passed, bool)

    def test_repr_hides_personal_data(self) -> None:
        r = parse(OCR_PASSPORT, service="kyc_passport")
        text = repr(r) + str(r)
        for secret in ("OLENA", "TESTENKO", "XX008080", "portrait", "1991", "dev.progeny.tech"):
            assert secret not in text
        assert "kyc_passport" in text and "SUCCESS" in text

    def test_to_dict_from_dict_round_trip(self) -> None:
        r = parse(OCR_PASSPORT, service="ocr_passport")
        again = TaskResult.from_dict(json.loads(json.dumps(r.to_dict())))
        assert again == r


class TestCoercion:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (2.5, 2.5),
            (3, 3.0),
            ("20.0", 20.0),
            (" 93.5% ", 93.5),
            ("93,5", 93.5),
            ("nan", None),
            ("x", None),
            (None, None),
            (True, None),
            ([], None),
        ],
    )
    def test_to_float(self, value: object, expected: float | None) -> None:
        assert to_float(value) == expected

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("1991-9-24", dt.date(1991, 9, 24)),
            ("1991-09-24", dt.date(1991, 9, 24)),
            ("2023-9-25T00:00:00", dt.date(2023, 9, 25)),
            ("24.09.1991", dt.date(1991, 9, 24)),
            ("None-None-None", None),
            ("None", None),
            ("", None),
            (None, None),
            ("2023-2-30", None),
            (12, None),
        ],
    )
    def test_parse_date(self, value: object, expected: dt.date | None) -> None:
        assert parse_date(value) == expected


class TestTask:
    def test_round_trip_through_json(self) -> None:
        task = Task.new("98008e56-cd6f-410c-9d8d-f9e620661395", "kyc_card")
        again = Task.from_dict(json.loads(json.dumps(task.to_dict())))
        assert again == task and again.service == "kyc_card" and again.submitted_at is not None

    def test_from_dict_needs_an_id(self) -> None:
        with pytest.raises(ValueError):
            Task.from_dict({"service": "x"})


class TestServices:
    def test_every_documented_service_is_there(self) -> None:
        assert set(SERVICES) >= {
            "face_liveness",
            "register_face",
            "authenticate_face",
            "ocr_card",
            "ocr_passport",
            "kyc_card",
            "kyc_passport",
            "background_check",
            "kyc_card_with_background_check",
            "kyc_passport_with_background_check",
        }

    def test_image_fields_are_discoverable(self) -> None:
        assert SERVICES["kyc_card"].image_fields == ("selfie_image", "front_id", "back_id")
        assert SERVICES["kyc_card"].face_fields == ("selfie_image",)
        assert SERVICES["authenticate_face"].fields == ("uuid",)
        assert SERVICES["background_check"].image_fields == ()
        assert SERVICES["ocr_passport"].path == "services/ocr_passport/"

    def test_read_only(self) -> None:
        with pytest.raises(TypeError):
            SERVICES["x"] = SERVICES["ocr_card"]  # type: ignore[index]


class TestRetryHelpers:
    def test_backoff_grows_and_is_capped(self) -> None:
        delays = [backoff_delay(n, 0.5, 8.0) for n in range(8)]
        assert 0.375 <= delays[0] <= 0.5
        assert all(d <= 8.0 for d in delays) and delays[-1] >= 6.0

    def test_retry_after_forms(self) -> None:
        assert parse_retry_after({"Retry-After": "3"}) == 3.0
        assert parse_retry_after({"retry-after": "0.25"}) == 0.25
        assert parse_retry_after({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
        now = time.time()
        date = email.utils.formatdate(now + 30, usegmt=True)
        assert 28 <= (parse_retry_after({"Retry-After": date}, now=now) or 0) <= 31
        assert parse_retry_after({"Retry-After": email.utils.formatdate(now - 60, usegmt=True)}) == 0.0
        assert parse_retry_after({"Retry-After": "soon"}) is None
        assert parse_retry_after({}) is None


class TestRedaction:
    def test_redact_text(self) -> None:
        jwt = encode_hs256({"token_type": "access", "exp": 1, "jti": "j", "user_id": 1}, b"k")
        text = redact_text(f'Authorization: Bearer {jwt} password=hunter2 {{"refresh": "abc123"}} {jwt}')
        for secret in (jwt, "hunter2", "abc123"):
            assert secret not in text
        # only the secrets go: the words around them stay readable
        assert text.startswith("Authorization: ") and "password=" in text and '"refresh": ' in text
        assert text.count("[REDACTED]") >= 4

    def test_filter_rewrites_records(self) -> None:
        record = logging.LogRecord(
            "progeny_api", logging.INFO, __file__, 1, "sent %s", ("Bearer sekrit.tok.en",), None
        )
        assert RedactingFilter().filter(record) is True
        assert "sekrit" not in record.getMessage()
        assert record.getMessage().startswith("sent ") and "[REDACTED]" in record.getMessage()

    def test_error_messages_are_redacted(self) -> None:
        err = progeny_api.ProgenyError("failed with password=hunter2")
        assert "hunter2" not in str(err) and "hunter2" not in repr(err)
        assert str(err) == "failed with password=[REDACTED]"


class TestImages:
    def test_sniffing(self, images: type) -> None:
        assert sniff_content_type(images.jpeg(10, 10)) == "image/jpeg"
        assert sniff_content_type(images.png(2, 2)) == "image/png"
        assert sniff_content_type(b"GIF89a") == "application/octet-stream"

    def test_inputs(self, images: type, tmp_path: object) -> None:
        data = images.jpeg(640, 480, payload=1000)
        path = tmp_path / "selfie.jpeg"  # type: ignore[operator]
        path.write_bytes(data)
        with open(path, "rb") as handle:
            from_file = load_image("image", handle)
        cases = [
            load_image("image", data),
            load_image("image", str(path)),
            load_image("image", path),
            from_file,
            load_image("image", io.BytesIO(data)),
            load_image("image", ("x.bin", data, "image/custom")),
            load_image("image", ("x.jpg", io.BytesIO(data))),
        ]
        assert all(c.content == data for c in cases)
        assert cases[0].filename == "image.jpg" and cases[0].content_type == "image/jpeg"
        assert cases[1].filename == "selfie.jpeg" and from_file.filename == "selfie.jpeg"
        assert cases[5].content_type == "image/custom"
        assert "bytes" in repr(cases[0]) and str(data[:20]) not in repr(cases[0])

    def test_bad_inputs(self, tmp_path: object) -> None:
        with pytest.raises(ValueError):
            load_image("image", b"")
        with pytest.raises(TypeError):
            load_image("image", io.StringIO("text"))
        with pytest.raises(TypeError):
            load_image("image", 42)
        with pytest.raises(FileNotFoundError):
            load_image("image", str(tmp_path / "missing.jpg"))  # type: ignore[operator]

    def test_multipart_round_trip(self, images: type) -> None:
        data = images.jpeg(640, 640, payload=50_000)
        body, ctype = encode_multipart([("extend_data", "false"), ("image", load_image("image", data))])
        fields, files = parse_form(ctype, body)
        assert fields == {"extend_data": "false"}
        assert files["image"].sha256 == hashlib.sha256(data).hexdigest()
        assert files["image"].content_type == "image/jpeg"
        # and a body encoded by requests (what curl-like clients send) parses the same way
        prepared = requests.Request(
            "POST", "http://x/", files={"image": ("a.jpg", data, "image/jpeg")}, data={"uuid": "u"}
        ).prepare()
        fields, files = parse_form(prepared.headers["Content-Type"], prepared.body)  # type: ignore[arg-type]
        assert fields == {"uuid": "u"} and files["image"].data == data

    def test_image_info(self, images: type) -> None:
        assert image_info(images.png(640, 480))[1:] == (640, 480)  # type: ignore[index]
        assert image_info(images.jpeg(1024, 768, payload=10)) == ("JPEG", 1024, 768)
        assert image_info(b"not an image") is None
        assert image_info(b"\xff\xd8\xff\xe0\x00") is None


class TestJwt:
    def test_sign_verify_decode(self) -> None:
        token = encode_hs256({"token_type": "access", "exp": 1700000000, "jti": "a", "user_id": 1}, b"secret")
        assert verify_hs256(token, b"secret") == {
            "token_type": "access",
            "exp": 1700000000,
            "jti": "a",
            "user_id": 1,
        }
        assert verify_hs256(token, b"other") is None
        assert verify_hs256(token[:-3] + "abc", b"secret") is None
        assert expiry_of(token) == 1700000000.0
        assert decode_unverified("not.a.jwt") is None and expiry_of("garbage") is None


class TestClientConfiguration:
    def test_timeout_none_is_refused(self) -> None:
        with pytest.raises(ValueError):
            ProgenyClient("u", "p", timeout=None)  # type: ignore[arg-type]

    def test_infinite_deadline_is_refused(self) -> None:
        with pytest.raises(ValueError):
            ProgenyClient("u", "p", poll_deadline=float("inf"))

    def test_defaults(self) -> None:
        with ProgenyClient("u", "p") as client:
            assert client.base_url == "https://be.progeny.tech/api/v3"
            assert client.timeout == (5.0, 60.0)
            assert client.max_retries == 2 and client.poll_deadline == 120.0
            assert client.not_found_grace == 30.0 and client.max_retry_after == 60.0
            assert client.retry_ambiguous_posts is False
            assert client.max_response_bytes == progeny_api.DEFAULT_MAX_RESPONSE_BYTES == 8 * 1024 * 1024
            assert client._session.verify is True

    def test_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PROGENY_BASE_URL", "http://127.0.0.1:9/api/v3/")
        monkeypatch.setenv("PROGENY_USERNAME", "envuser")
        monkeypatch.setenv("PROGENY_PASSWORD", "envpass")
        with ProgenyClient() as client:
            assert client.base_url == "http://127.0.0.1:9/api/v3"
            assert client._username == "envuser" and client._password == "envpass"
            assert "envpass" not in repr(client)

    def test_bad_base_url(self) -> None:
        with pytest.raises(ValueError):
            ProgenyClient("u", "p", base_url="ftp://example.com")
        with pytest.raises(ValueError) as info:
            ProgenyClient("u", "p", base_url="ftp://user:S3cretPass@example.com")
        assert "S3cretPass" not in str(info.value)

    def test_credentials_in_the_base_url_are_refused_and_masked(self) -> None:
        # requests would send them as Basic auth in place of the Bearer token: refuse, without echoing them
        with pytest.raises(ValueError, match="must not contain credentials") as info:
            ProgenyClient("u", "p", base_url="http://user:S3cretPass@example.com:9/api/v3")
        assert "S3cretPass" not in str(info.value) and "user:[REDACTED]@example.com:9" in str(info.value)

    def test_submit_validates_before_sending(self) -> None:
        with ProgenyClient("u", "p", base_url="http://127.0.0.1:9/api/v3") as client:
            with pytest.raises(ValueError, match="uuid"):
                client.submit("authenticate_face", image=b"\xff\xd8\xff")
            with pytest.raises(ValueError):
                client.submit("../accounts", image=b"x")
            with pytest.raises(TypeError):
                client.submit("background_check", fullname=object(), birth_date="1990-1-1")

    def test_everything_public_is_exported(self) -> None:
        for name in progeny_api.__all__:
            assert hasattr(progeny_api, name), name
