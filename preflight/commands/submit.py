"""``preflight submit SERVICE --image selfie.jpg [...] [--force] [--json]``: gate, then upload.

Credentials and the base URL come from ``PROGENY_USERNAME``, ``PROGENY_PASSWORD`` and
``PROGENY_BASE_URL``. Exit status: 0 when both sides pass, 1 when either fails (or nothing was
sent because the gate failed), 2 on usage errors, 3 when the API could not be reached or refused
the request (authentication, rate limit, server error, timeout).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, input_problem, load_face_model, load_policy, locale_argument
from ..gate import Gate
from ..guidance import hint

EXIT_API = 3
_IMAGE_OPTIONS = ("image", "selfie_image", "front_id", "back_id", "passport_image")


def register(sub: Any) -> None:
    parser = sub.add_parser("submit", help="check images locally, then upload them to the Progeny API if they pass")
    from progeny_api.models import SERVICES  # requests only: no vision stack

    parser.add_argument("service", metavar="SERVICE", choices=sorted(SERVICES), help=", ".join(SERVICES))
    for name in _IMAGE_OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, metavar="FILE")
    parser.add_argument("--uuid", help="for authenticate_face: the id register_face returned")
    parser.add_argument("--fullname")
    parser.add_argument("--birth-date", dest="birth_date", metavar="YYYY-MM-DD")
    parser.add_argument("--extend-data", action="store_true", help="ask for the providers' extended data")
    parser.add_argument("--force", action="store_true", help="upload even if the local gate fails")
    parser.add_argument("--json", action="store_true", help="print the combined report as JSON")
    parser.add_argument("--policy", metavar="FILE_OR_PRESET", help="policy for selfies (default progeny_selfie)")
    parser.add_argument("--document-policy", metavar="FILE_OR_PRESET", help="policy for ID and passport images")
    parser.add_argument("--deadline", type=float, help="seconds to wait for the result (default 120)")
    parser.add_argument("--locale", type=locale_argument, default="en", help="language of the hints (en, de)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from progeny_api import ProgenyClient, ProgenyError
    from progeny_api.models import SERVICES

    from ..submit import submit

    images = {name: getattr(args, name) for name in _IMAGE_OPTIONS if getattr(args, name)}
    spec = SERVICES[args.service]
    taken = {*spec.files, *spec.fields, *spec.optional_fields}
    extra = [name for name in (*images, "uuid", "fullname", "birth_date") if getattr(args, name) and name not in taken]
    if extra:  # the service would refuse them; say so before anything is checked or sent
        options = ", ".join("--" + name.replace("_", "-") for name in extra)
        takes = ", ".join("--" + name.replace("_", "-") for name in sorted(taken)) or "nothing else"
        print(f"preflight: {args.service} does not take {options} (it takes {takes})", file=sys.stderr)
        return EXIT_USAGE
    for path in images.values():
        problem = input_problem(path)
        if problem:
            print(f"preflight: {problem}", file=sys.stderr)
            return EXIT_USAGE
    fields = {k: getattr(args, k) for k in ("uuid", "fullname", "birth_date") if getattr(args, k)}
    if images:
        fields["extend_data"] = args.extend_data
    selfie_policy = load_policy(args.policy)
    document_policy = load_policy(args.document_policy or "progeny_document")
    try:
        with Gate(selfie_policy) as gate, ProgenyClient() as client:
            load_face_model(gate)
            combined = submit(args.service, client=client, gate=gate, force=args.force,
                              selfie_policy=selfie_policy, document_policy=document_policy,
                              deadline=args.deadline, **images, **fields)
    except ValueError as exc:  # a missing field for the service, an invalid service name
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ProgenyError as exc:
        print(f"preflight: the API call failed: {exc}", file=sys.stderr)
        return EXIT_API
    if args.json:
        print(combined.to_json(locale=args.locale))
    else:
        for name, report in combined.local.items():
            print(f"{name}: {'PASS' if report.passed else 'FAIL'} locally")
            for issue in report.issues:
                print(f"  {issue.severity:7} {issue.code}: {hint(issue.code, args.locale) or issue.message}")
        if not combined.forwarded:
            print("not uploaded: fix the local issues first (or use --force)")
        else:
            print(f"uploaded as task {combined.task.id if combined.task else '?'}: "
                  f"{'PASS' if combined.remote_passed else 'FAIL'} remotely")
            for check, found in combined.issues.items():
                if check != "preflight":
                    for code, message in found.items():
                        print(f"  {check}: {code}: {message}")
            for link in combined.disagreements:
                side = "the server" if link.found_by == "remote" else "only the local gate"
                print(f"  note: {link.code} was found by {side}")
    return EXIT_OK if combined.passed else EXIT_FAILED
