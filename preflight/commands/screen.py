"""``preflight screen DIR_OR_GLOB... --out results.parquet|.csv|.jsonl [--workers N] [--policy F]``.

Recursive over image files (see :data:`preflight.screening.IMAGE_EXTENSIONS`), a progress bar on
stderr, rows written to ``--out`` as they come, and a summary at the end (pass rate, top codes).
Rerunning with the same ``--out`` skips the images already in it. Exit status: 0 when every image
passes, 1 when any fails, 2 on usage errors, 130 on Ctrl-C (what was screened is kept).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_policy_arguments, load_policy
from ..screening import SummaryBuilder, find_images, screen
from ..table import read_rows


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "screen",
        help="screen folders of images into a results table, with a summary",
        description="Check every image under the given folders or globs (recursively), write one row per "
        "image to --out, and print a summary. Rerun with the same --out to resume.",
    )
    parser.add_argument("paths", nargs="+", metavar="DIR_OR_GLOB",
                        help="folders (searched recursively), globs ('photos/**/*.jpg') or files")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="results table: .parquet, .csv or .jsonl; images already in it are skipped")
    parser.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                        help="worker processes (default: every CPU; 1 checks in this process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--restart", action="store_true",
                        help="screen everything again and replace --out instead of resuming")
    parser.add_argument("--top", type=int, default=10, metavar="K", help="codes listed in the summary (default 10)")
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    paths = find_images(*args.paths)
    if not paths:
        print(f"preflight: no image files found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    job = screen(paths, policy=policy, workers=args.workers, progress=not args.no_progress,
                 out=args.out, resume=not args.restart)
    if job.skipped:
        print(f"preflight: {job.skipped} of {len(paths)} image(s) already in {args.out}; "
              f"screening the other {job.total}", file=sys.stderr)
    summary = SummaryBuilder()
    try:
        with job:
            for report in job:
                summary.add(report)
    except KeyboardInterrupt:
        print(f"preflight: stopped; {job.screened} image(s) written to {args.out}, "
              "run the same command again to resume", file=sys.stderr)
        raise
    if job.skipped:  # count the earlier rows of these images too
        earlier = set(paths) & set(job.done)
        for row in read_rows(args.out):
            if row["source"] in earlier:
                earlier.discard(row["source"])
                summary.add(row)
    result = summary.build()
    print(result.format(args.top, locale=args.locale))
    print(f"results: {args.out} ({job.screened} screened now, {job.skipped} from an earlier run)")
    return EXIT_FAILED if result.failed else EXIT_OK
