"""``preflight screen DIR_OR_GLOB... --out results.parquet|.csv|.jsonl [--workers N] [--policy F]``.

Recursive over image files (see :data:`preflight.screening.IMAGE_EXTENSIONS`), a progress bar on
stderr, rows written to ``--out`` as they come, and a summary at the end (pass rate, top codes).
Rerunning with the same ``--out`` skips the images already in it. Missing folders of ``--out`` are
created (as :func:`preflight.table.open_writer` does); every other problem with ``--out`` (a folder,
no permission, an existing file that cannot be read to resume) is a usage error found before any
image is screened. Exit status: 0 when every image passes, 1 when any fails, 2 on usage errors,
130 on Ctrl-C (what was screened is kept).
"""

from __future__ import annotations

import argparse
import csv
import errno
import os
import sys
from collections.abc import Callable
from typing import Any

from ..cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_policy_arguments, check_output_path, load_policy, output_error
from ..errors import OutputFileError, PreflightError
from ..policy import Policy
from ..report import printable
from ..screening import Screening, SummaryBuilder, find_images, screen
from ..table import output_format, read_rows


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}")
        return value

    return parse


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
                        help="results table: .parquet, .csv or .jsonl (missing folders are created); "
                             "images already in it are skipped")
    parser.add_argument("--workers", type=_at_least(1), default=None, metavar="N",
                        help="worker processes (default: every CPU; 1 checks in this process)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--restart", action="store_true",
                        help="screen everything again and replace --out instead of resuming")
    parser.add_argument("--top", type=_at_least(0), default=10, metavar="K",
                        help="codes listed in the summary (default 10; 0 lists none)")
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    paths = find_images(*args.paths)
    if not paths:
        print(f"preflight: no image files found in {' '.join(args.paths)}", file=sys.stderr)
        return EXIT_USAGE
    output_format(args.out)  # before any work: the suffix, pyarrow for .parquet
    check_output_path(args.out, create_folders=True)
    job = _start(paths, policy, args)
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
    except OSError as exc:  # the output: opened when the run starts, written as it goes, folded at the end
        if not _about(exc, args.out):
            raise
        raise output_error(args.out, exc) from exc
    if job.skipped:  # count the earlier rows of these images too
        earlier = {printable(p) for p in paths} & set(job.done)  # the output's form of each name
        for row in read_rows(args.out):
            if row["source"] in earlier:
                earlier.discard(row["source"])
                summary.add(row)
    result = summary.build()
    print(result.format(args.top, locale=args.locale))
    print(f"results: {args.out} ({job.screened} screened now, {job.skipped} from an earlier run)")
    return EXIT_FAILED if result.failed else EXIT_OK


def _start(paths: list[str], policy: Policy, args: argparse.Namespace) -> Screening:
    """:func:`screen`, which reads an existing ``--out`` to resume: a file it cannot read is a usage error."""
    try:
        return screen(paths, policy=policy, workers=args.workers, progress=not args.no_progress,
                      out=args.out, resume=not args.restart)
    except PreflightError:
        raise  # already says what is wrong (results of another policy in --out, ...)
    except (OSError, ValueError, csv.Error) as exc:  # only --out is read here
        # ValueError: not UTF-8, a garbled CSV cell, a broken Parquet file (pyarrow's ArrowInvalid)
        arrow = _arrow_error(exc)
        if isinstance(exc, OSError) and not arrow:
            raise output_error(args.out, exc, "read") from exc
        raise OutputFileError(
            f"cannot resume from {args.out}: it is not a readable {output_format(args.out)} results file "
            f"({type(exc).__name__}: {exc}); use --restart to replace it, or another --out"
        ) from exc


def _arrow_error(exc: BaseException) -> bool:
    """True for pyarrow's errors (some of which are OSError), without importing pyarrow."""
    return type(exc).__module__.split(".")[0] == "pyarrow"


#: Errors of a write to an open file, which names no file: a full disk, a quota, a read-only mount.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _about(exc: OSError, out: str) -> bool:
    """True when ``exc`` concerns ``out``: the file, its journal or temporary file, or a folder of it."""
    if _arrow_error(exc):
        return True  # the run's only pyarrow work is reading and writing --out
    if exc.filename is None and exc.filename2 is None:
        return exc.errno in _STORAGE_ERRNOS  # the images are read elsewhere: only --out is written
    target = os.path.abspath(out)
    folder = os.path.dirname(target)
    for name in (exc.filename, exc.filename2):
        if name is None:
            continue
        path = os.path.abspath(os.fsdecode(name))
        if os.path.dirname(path) == folder or target.startswith(path.rstrip(os.sep) + os.sep):
            return True
    return False
