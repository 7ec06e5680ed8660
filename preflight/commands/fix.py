"""``preflight fix IN -o OUT``: repair what is purely technical (see :mod:`preflight.conform`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_policy_arguments,
    check_output_path,
    input_problem,
    load_face_model,
    load_policy,
    output_error,
)
from ..conform import conform, output_formats, suffix_conflict
from ..errors import OutputFileError
from ..gate import Gate
from ..loading import sniff_format


def register(sub: Any) -> None:
    parser = sub.add_parser("fix", help="repair orientation, size, format and metadata; never the face")
    parser.add_argument("input", metavar="IN", help="the image to repair")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="where to write the repaired image: a .jpg name (a PNG that needs no new pixels "
                             "stays PNG and needs a .png name); written only if the name fits the format")
    parser.add_argument("--keep-metadata", action="store_true", help="keep EXIF/XMP metadata when possible")
    parser.add_argument("--json", action="store_true", help="print what was done as JSON")
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problem = input_problem(args.input)
    if problem:
        print(f"preflight: {problem}", file=sys.stderr)
        return EXIT_USAGE
    policy = load_policy(args.policy)
    check_output_path(args.output, source=args.input)  # before any work: a missing folder, a folder as output...
    # ... and a name whose extension contradicts every format the repair can write: a WebP becomes a
    # JPEG, so out.png or out.webp is refused now; a PNG may stay PNG or become JPEG, so out.png is
    # only refused (by save, before writing anything) once the work shows it had to be re-encoded
    source_format = _sniff(args.input)
    conflict = suffix_conflict(args.output, None, possible=output_formats(source_format, policy),
                               source_format=source_format)
    if conflict:
        raise OutputFileError(conflict)
    with Gate(policy) as gate:
        load_face_model(gate)
        result = conform(args.input, policy, gate=gate, strip_metadata=not args.keep_metadata)
    if result.data is not None:
        try:
            result.save(args.output)
        except OSError as exc:  # a full disk, a folder that vanished meanwhile
            raise output_error(args.output, exc) from exc
    if args.json:
        print(json.dumps(result.to_dict(args.locale), ensure_ascii=False))
    else:
        for change in result.changes:
            print(f"  changed: {change}")
        for problem in result.problems:
            print(f"  cannot fix: {problem}")
        if result.data is None:
            print(f"{args.input}: not fixed; nothing written")
        else:
            verdict = "PASS" if result.report.passed else "FAIL"
            print(f"{args.input}: {verdict} after fixing; written to {args.output}")
        for hint in result.report.hints(args.locale):
            print(f"  - {hint}")
    return EXIT_OK if result.ok else EXIT_FAILED


def _sniff(path: str) -> str | None:
    """The input's format by its magic bytes, as the gate judges it (``None`` if unknown or unreadable)."""
    try:
        with open(path, "rb") as fh:
            return sniff_format(fh.read(32))
    except OSError:
        return None  # conform raises the read error itself
