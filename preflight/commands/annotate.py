"""``preflight annotate IN -o OUT.png``: draw the measurements and issues on the photo."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..annotate import annotate
from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_policy_arguments, load_policy
from ..gate import Gate


def register(sub: Any) -> None:
    parser = sub.add_parser("annotate", help="draw the face box, eyes, pose and issues on a photo")
    parser.add_argument("input", metavar="IN", help="the image to annotate")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output picture (.png or .jpg)")
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.input):
        print(f"preflight: no such file: {args.input}", file=sys.stderr)
        return EXIT_USAGE
    with Gate(load_policy(args.policy)) as gate:
        report = gate.check(args.input)
        picture = annotate(args.input, report, gate=gate)
    picture.save(args.output)
    print(f"{args.input}: {'PASS' if report.passed else 'FAIL'}; annotated picture written to {args.output}")
    return EXIT_OK if report.passed else EXIT_FAILED
