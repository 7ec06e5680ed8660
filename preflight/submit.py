"""Gate, then submit: forward only passing images, and return one combined local + remote report.

Every image is checked with the policy that fits its role: selfies (``image``, ``selfie_image``)
with the selfie policy, ID cards and passports with the document policy. If any image fails,
nothing is sent (not even a token request): no call, no bill. ``force=True`` uploads anyway and
still reports the local issues. The bytes uploaded are exactly the bytes checked.

Codes that mean the same thing on both sides are linked (:data:`LINKED_CODES`), so the combined
report can say whether the server agreed with the gate, or found something the gate missed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from progeny_api.models import FACE_FIELDS, IMAGE_FIELDS  # which fields hold a face, which a document

from . import codes as C
from .errors import InvalidSourceError
from .gate import Gate
from .loading import read_source
from .policy import Policy
from .report import Report

if TYPE_CHECKING:
    from progeny_api import ProgenyClient, Task, TaskResult

#: The API's code -> the local codes that predict it.
LINKED_CODES: Mapping[str, frozenset[str]] = {
    "FACE_NOT_FOUND": frozenset({C.FACE_NOT_FOUND}),
    "FACE_TOO_SMALL": frozenset({C.FACE_TOO_SMALL, C.EYE_DISTANCE_TOO_SMALL}),
    "FACE_ANGLE_TOO_LARGE": frozenset({C.PITCH_TOO_LARGE, C.YAW_TOO_LARGE, C.ROLL_TOO_LARGE, C.IMAGE_TURNED}),
    "FACE_TOO_CLOSE": frozenset({C.FACE_CUT_OFF}),
    "FAILED_TO_READ_IMAGE": frozenset({C.FAILED_TO_READ_IMAGE, C.UNSUPPORTED_FORMAT}),
}


@dataclass(frozen=True)
class Link:
    """A linked code and who found it: ``"both"``, ``"local"`` (the server did not) or ``"remote"``."""

    code: str
    found_by: Literal["both", "local", "remote"]
    local_codes: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "found_by": self.found_by, "local_codes": list(self.local_codes),
                "fields": list(self.fields), "checks": list(self.checks)}


@dataclass(frozen=True)
class CombinedReport:
    """What the local gate and (if the images were forwarded) the API said, in one structure."""

    service: str
    local: Mapping[str, Report]
    remote: TaskResult | None = None
    task: Task | None = None
    forwarded: bool = False
    forced: bool = False
    links: tuple[Link, ...] = field(default=())

    @property
    def local_passed(self) -> bool:
        return all(r.passed for r in self.local.values())

    @property
    def remote_passed(self) -> bool | None:
        """None when nothing was sent; else no remote issue and no false verdict."""
        if self.remote is None:
            return None
        return not self.remote.issues and all(v is not False for v in self.remote.verdicts.values())

    @property
    def passed(self) -> bool:
        """Both sides passed. A forced upload of a failing image never passes."""
        return self.local_passed and self.remote_passed is True

    @property
    def issues(self) -> dict[str, Any]:
        """``{"preflight": {field: {CODE: msg}}, "<check>": {CODE: msg}}``; a side with no issues is left out."""
        out: dict[str, Any] = {}
        local = {name: r.api_issues() for name, r in self.local.items() if r.issues}
        if local:
            out["preflight"] = local
        if self.remote is not None:
            for check, found in self.remote.issues.items():
                if found:
                    out[check] = dict(found)
        return out

    @property
    def disagreements(self) -> tuple[Link, ...]:
        """Linked codes only one side found: how users tune their policy."""
        return tuple(link for link in self.links if link.found_by != "both")

    @property
    def agreements(self) -> tuple[Link, ...]:
        return tuple(link for link in self.links if link.found_by == "both")

    def to_dict(self, locale: str | None = None) -> dict[str, Any]:
        """A JSON-ready dict; ``locale`` as in :meth:`Report.to_dict` (the local reports' hints)."""
        return {
            "service": self.service,
            "passed": self.passed,
            "forwarded": self.forwarded,
            "forced": self.forced,
            "local_passed": self.local_passed,
            "remote_passed": self.remote_passed,
            "issues": self.issues,
            "disagreements": [d.to_dict() for d in self.disagreements],
            "agreements": [a.to_dict() for a in self.agreements],
            "local": {name: r.to_dict(locale) for name, r in self.local.items()},
            "remote": None if self.remote is None else self.remote.to_dict(),
            "task": None if self.task is None else self.task.to_dict(),
        }

    def to_json(self, *, locale: str | None = None, **kwargs: Any) -> str:
        """:meth:`to_dict` as JSON; other keyword arguments go to :func:`json.dumps`."""
        kwargs.setdefault("ensure_ascii", False)
        return json.dumps(self.to_dict(locale), **kwargs)


def policy_for(field_name: str, *, selfie: Policy | None = None, document: Policy | None = None) -> Policy:
    """The policy for an image field: selfie for faces, document for ID cards and passports."""
    if field_name in FACE_FIELDS:
        return selfie or Policy.progeny_selfie()
    return document or Policy.progeny_document()


def _selfie_policy_of(gate: Gate) -> Policy | None:
    """The gate's policy, when it can judge a selfie: one that does not look at faces (a document policy,
    e.g. a service started with ``--policy progeny_document``) would wave a face-less "selfie" through."""
    return gate.policy if gate.policy.check_face else None


def submit(
    service: str,
    *,
    client: ProgenyClient,
    gate: Gate | None = None,
    force: bool = False,
    selfie_policy: Policy | None = None,
    document_policy: Policy | None = None,
    deadline: float | None = None,
    **images_and_fields: Any,
) -> CombinedReport:
    """Check every image locally; upload and wait only if all pass (or ``force``).

    Selfies are checked with ``selfie_policy``, else the gate's policy if it checks faces, else the
    Progeny selfie preset; ID and passport images with ``document_policy``, else the document preset.
    Images may be paths, bytes or binary files (never decoded arrays: the upload must be the file
    that was checked; use :func:`preflight.conform` to produce one). Other keyword arguments
    (``uuid``, ``fullname``, ``birth_date``, ``extend_data``) are passed to the API unchanged.
    Transport and authentication errors propagate as ``progeny_api`` exceptions.
    """
    if deadline is not None and not (math.isfinite(float(deadline)) and deadline >= 0):
        # refused before anything is checked or sent (the upload is billed; its task must not be lost)
        raise ValueError(f"deadline must be a finite number >= 0, got {deadline!r}")
    images, fields = _split(images_and_fields)
    own_gate = gate is None
    gate = gate or Gate(selfie_policy)
    try:
        local: dict[str, Report] = {}
        uploads: dict[str, tuple[str, bytes]] = {}
        for name, (filename, data) in images.items():
            policy = policy_for(name, selfie=selfie_policy or _selfie_policy_of(gate), document=document_policy)
            local[name] = gate.check(data, policy=policy, name=filename or name)
            uploads[name] = (filename or f"{name}.{_extension(data)}", data)
    finally:
        if own_gate:
            gate.close()

    local_ok = all(r.passed for r in local.values())
    if not local_ok and not force:
        return CombinedReport(service=service, local=local)

    task = client.submit(service, **uploads, **fields)
    remote = client.wait(task, deadline=deadline)
    return CombinedReport(service=service, local=local, remote=remote, task=task, forwarded=True,
                          forced=not local_ok, links=_links(local, remote))


def _split(values: Mapping[str, Any]) -> tuple[dict[str, tuple[str | None, bytes]], dict[str, Any]]:
    images: dict[str, tuple[str | None, bytes]] = {}
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name not in IMAGE_FIELDS:
            fields[name] = value
            continue
        data, decoded, filename = read_source(value)
        if data is None or decoded is not None:
            raise InvalidSourceError(
                f"{name}: submit needs the encoded file (a path, bytes or a binary file), not a decoded image; "
                "use preflight.conform() to encode one"
            )
        images[name] = (_basename(filename), data)
    return images, fields


def _basename(name: str | None) -> str | None:
    if not name:
        return None
    return name.replace("\\", "/").rsplit("/", 1)[-1] or None


def _extension(data: bytes) -> str:
    return "png" if data.startswith(b"\x89PNG") else "jpg"


def _links(local: Mapping[str, Report], remote: TaskResult) -> tuple[Link, ...]:
    """Pair every linked code found on either side with what the other side said."""
    remote_found: dict[str, list[str]] = {}
    for check, found in remote.issues.items():
        for code in found:
            remote_found.setdefault(code, []).append(check)
    links: list[Link] = []
    for api_code, local_codes in LINKED_CODES.items():
        fields = tuple(name for name, r in local.items() if r.codes & local_codes)
        hit = tuple(sorted({c for name in fields for c in local[name].codes & local_codes}))
        checks = tuple(remote_found.get(api_code, ()))
        if fields and checks:
            links.append(Link(api_code, "both", hit, fields, checks))
        elif fields:
            links.append(Link(api_code, "local", hit, fields, ()))
        elif checks:
            links.append(Link(api_code, "remote", (), (), checks))
    return tuple(links)

