"""preflight.submit against the progeny_api sandbox over real HTTP: gate first, forward only what passes."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator

import pytest

import preflight
from preflight import codes as C
from progeny_api import ProgenyClient
from progeny_api.sandbox import Sandbox

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture()
def client(sandbox: Sandbox) -> Iterator[ProgenyClient]:
    with ProgenyClient(sandbox.username, sandbox.password, base_url=sandbox.base_url, max_retries=0,
                       poll_interval=0.02, poll_max_interval=0.1, poll_deadline=10, not_found_grace=2) as c:
        yield c


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_failing_selfie_is_never_uploaded(sandbox, client, gate, samples):
    combined = preflight.submit("face_liveness", client=client, gate=gate, image=samples / "rocket.jpg")
    assert not combined.forwarded and not combined.passed and combined.remote is None
    assert C.RESOLUTION_TOO_LOW in combined.issues["preflight"]["image"]
    assert sandbox.post_count() == 0
    assert sandbox.stats["obtain"] == 0  # not even a token request: no call, no bill


@pytest.mark.parametrize("deadline", [-1.0, float("nan"), float("inf")])
def test_a_bad_deadline_is_refused_before_anything_is_sent(sandbox, client, gate, samples, deadline):
    with pytest.raises(ValueError, match="deadline"):
        preflight.submit("face_liveness", client=client, gate=gate, image=samples / "obama.jpg", deadline=deadline)
    assert sandbox.post_count() == 0  # a billed task whose id would be lost


def test_passing_selfie_is_uploaded_byte_for_byte(sandbox, client, gate, samples):
    data = (samples / "obama.jpg").read_bytes()
    combined = preflight.submit("face_liveness", client=client, gate=gate, image=io.BytesIO(data))
    assert combined.forwarded and combined.local_passed
    assert combined.remote is not None and combined.remote_passed is True and combined.passed
    uploads = sandbox.uploads("face_liveness", "image")
    assert len(uploads) == 1 and _sha(uploads[0].data) == _sha(data)
    d = json.loads(combined.to_json())
    assert d["forwarded"] and d["passed"] and d["task"]["id"] == combined.task.id
    # a warning stays visible in the combined issues without failing anything
    assert d["issues"] == {"preflight": {"image": {C.HEIGHT_ABOVE_RECOMMENDED: combined.local["image"]
                                                   .api_issues()[C.HEIGHT_ABOVE_RECOMMENDED]}}}


@pytest.mark.parametrize("name", ["rocket.jpg", "obama.jpg"])  # refused locally; forwarded
def test_same_outcome_for_path_bytes_and_file(sandbox, client, gate, samples, name):
    path = samples / name
    outcomes = []
    with open(path, "rb") as handle:
        for src in (path, path.read_bytes(), handle):
            combined = preflight.submit("face_liveness", client=client, gate=gate, image=src)
            outcomes.append((combined.forwarded, combined.passed, combined.local["image"].issues))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    uploads = [f.sha256 for r in sandbox.requests for f in r.files.values()]
    if name == "obama.jpg":  # the very bytes of the file went up, three times
        assert outcomes[0][0] is True and uploads == [_sha(path.read_bytes())] * 3
    else:
        assert outcomes[0][0] is False and uploads == []


def test_remote_rejection_the_gate_missed_is_a_disagreement(sandbox, client, gate, samples):
    data = (samples / "obama.jpg").read_bytes()
    sandbox.set_verdict(data, "FACE_ANGLE_TOO_LARGE", "Face angle is too large")
    combined = preflight.submit("face_liveness", client=client, gate=gate, image=data)
    assert combined.forwarded and combined.local_passed and not combined.passed
    assert combined.issues["liveness"] == {"FACE_ANGLE_TOO_LARGE": "Face angle is too large"}
    (link,) = combined.disagreements
    assert (link.code, link.found_by) == ("FACE_ANGLE_TOO_LARGE", "remote")
    assert combined.to_dict()["disagreements"][0]["found_by"] == "remote"


def test_force_uploads_a_failing_image_and_links_agreement(sandbox, client, gate, samples):
    data = (samples / "astronaut.png").read_bytes()  # face ~90 px: FACE_TOO_SMALL locally
    sandbox.set_verdict(data, "FACE_TOO_SMALL", "Absolute face size is too small")
    combined = preflight.submit("face_liveness", client=client, gate=gate, force=True, image=data)
    assert combined.forwarded and combined.forced and not combined.passed
    assert C.FACE_TOO_SMALL in combined.local["image"].codes
    assert sandbox.post_count("face_liveness") == 1
    assert [(a.code, a.found_by) for a in combined.agreements] == [("FACE_TOO_SMALL", "both")]
    assert "preflight" in combined.issues and "liveness" in combined.issues


def test_locally_predicted_code_the_server_did_not_report(sandbox, client, gate, samples):
    data = (samples / "astronaut.png").read_bytes()
    sandbox.set_verdict(data, None)  # the server lets it pass
    combined = preflight.submit("face_liveness", client=client, gate=gate, force=True, image=data)
    assert [(d.code, d.found_by) for d in combined.disagreements] == [("FACE_TOO_SMALL", "local")]


@pytest.mark.parametrize("service,images", [
    ("kyc_card", {"selfie_image": "obama.jpg", "front_id": "obama-720p.jpg", "back_id": "biden.jpg"}),
    ("kyc_passport", {"selfie_image": "obama.jpg", "passport_image": "obama-720p.jpg"}),
    ("ocr_card", {"front_id": "obama-720p.jpg", "back_id": "biden.jpg"}),
    ("ocr_passport", {"passport_image": "obama-720p.jpg"}),
    ("register_face", {"image": "obama.jpg"}),
])
def test_every_image_service(sandbox, client, gate, samples, service, images):
    paths = {name: samples / file for name, file in images.items()}
    combined = preflight.submit(service, client=client, gate=gate, **paths)
    assert set(combined.local) == set(images)
    for name, report in combined.local.items():
        expected = "progeny_selfie" if name in ("image", "selfie_image") else "progeny_document"
        assert report.policy == expected
    assert combined.forwarded, combined.issues
    for name, path in paths.items():
        (upload,) = sandbox.uploads(service, name)
        assert _sha(upload.data) == _sha(path.read_bytes())


def test_one_failing_document_stops_a_kyc_upload(sandbox, client, gate, samples):
    combined = preflight.submit("kyc_card", client=client, gate=gate, selfie_image=samples / "obama.jpg",
                                front_id=samples / "rocket.jpg", back_id=samples / "biden.jpg")
    assert not combined.forwarded
    assert [name for name, r in combined.local.items() if not r.passed] == ["front_id"]
    assert sandbox.post_count() == 0


def test_authenticate_face_passes_the_uuid(sandbox, client, gate, samples):
    registered = preflight.submit("register_face", client=client, gate=gate, image=samples / "obama.jpg")
    uuid = registered.remote.uuid
    combined = preflight.submit("authenticate_face", client=client, gate=gate, image=samples / "obama.jpg",
                                uuid=uuid)
    assert combined.forwarded and combined.passed


def test_decoded_images_cannot_be_submitted(client, gate):
    import numpy as np

    with pytest.raises(preflight.InvalidSourceError):
        preflight.submit("face_liveness", client=client, gate=gate, image=np.zeros((600, 600, 3), np.uint8))


def test_cli_submit(sandbox, samples, monkeypatch, capsys):
    from preflight.cli import main

    monkeypatch.setenv("PROGENY_USERNAME", sandbox.username)
    monkeypatch.setenv("PROGENY_PASSWORD", sandbox.password)
    monkeypatch.setenv("PROGENY_BASE_URL", sandbox.base_url)
    assert main(["submit", "face_liveness", "--image", str(samples / "rocket.jpg")]) == 1
    assert "not uploaded" in capsys.readouterr().out
    assert main(["submit", "face_liveness", "--json", "--image", str(samples / "obama.jpg")]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert sandbox.post_count("face_liveness") == 1
    monkeypatch.setenv("PROGENY_PASSWORD", "wrong")
    assert main(["submit", "face_liveness", "--image", str(samples / "obama.jpg")]) == 3
    assert main(["submit", "face_liveness", "--image", str(samples / "missing.jpg")]) == 2


def test_cli_submit_refuses_what_the_service_would_refuse_before_sending(sandbox, samples, monkeypatch, capsys):
    from preflight.cli import main

    for name, value in (("USERNAME", sandbox.username), ("PASSWORD", sandbox.password), ("BASE_URL", sandbox.base_url)):
        monkeypatch.setenv(f"PROGENY_{name}", value)
    with pytest.raises(SystemExit) as exc:  # it used to check, get a token, POST and exit 3 on the 404
        main(["submit", "nosuch", "--image", str(samples / "obama.jpg")])
    assert exc.value.code == 2 and "invalid choice: 'nosuch'" in capsys.readouterr().err
    # an option the service does not take (it used to be forwarded)
    assert main(["submit", "face_liveness", "--image", str(samples / "obama.jpg"), "--uuid", "x"]) == 2
    assert capsys.readouterr().err == "preflight: face_liveness does not take --uuid (it takes --image)\n"
    assert sandbox.stats["obtain"] == 0 and sandbox.post_count() == 0
    # every service is offered, the background checks included
    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    assert "kyc_passport_with_background_check" in capsys.readouterr().out


def test_a_selfie_is_checked_for_a_face_even_by_a_document_gate(sandbox, client):
    # a service started with --policy progeny_document forwarded face-less "selfies" (a billed call)
    from ._images import encode, gradient

    noface = encode(gradient(900, 900), "JPEG", quality=95)
    with preflight.Gate(preflight.Policy.progeny_document()) as document_gate:
        assert document_gate.check(noface).passed  # the gate's own policy has no face rules
        combined = preflight.submit("face_liveness", client=client, gate=document_gate, image=noface)
        assert not combined.forwarded and sandbox.post_count() == 0
        report = combined.local["image"]
        assert report.policy == "progeny_selfie" and C.FACE_NOT_FOUND in report.codes
        # an explicit selfie policy still decides
        forced = preflight.submit("face_liveness", client=client, gate=document_gate, image=noface,
                                  selfie_policy=preflight.Policy.progeny_document())
        assert forced.local["image"].policy == "progeny_document" and forced.forwarded


@pytest.mark.parametrize(("name", "turn", "api_code"), [
    ("rocket.jpg", False, "FACE_NOT_FOUND"),  # also RESOLUTION_TOO_LOW locally: FACE_NOT_FOUND comes first
    ("astronaut.png", False, "FACE_TOO_SMALL"),
    ("obama.jpg", True, "FACE_ANGLE_TOO_LARGE"),  # upside down without a tag: IMAGE_TURNED locally
    ("obama.jpg", False, None),
])
def test_sandbox_judged_by_the_real_gate(samples, name, turn, api_code):
    from PIL import Image

    data = (samples / name).read_bytes()
    if turn:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_180).save(buffer, "JPEG", quality=95)
        data = buffer.getvalue()
    with Sandbox(lifecycle=("SUCCESS",), judge="preflight") as sb, ProgenyClient(
            sb.username, sb.password, base_url=sb.base_url, max_retries=0, poll_interval=0.02,
            poll_max_interval=0.1, poll_deadline=30) as client:
        result = client.face_liveness(data)
    assert result.error_codes == ({api_code} if api_code else set()), result
