"""``preflight check FILE... [--json] [--policy FILE.toml|PRESET] [--locale de]``.

One report per file on stdout (a table, or a JSON line with ``--json``). A file that exists but
cannot be read (no permission, an I/O error) gets a report with ``FAILED_TO_READ_IMAGE``, like any
broken file. A file whose check raised (a :class:`~preflight.errors.PreflightError` or an
``OSError``: a file that vanished during the run, say) gets one ``preflight: FILE: cannot check:
...`` line on stderr and no report, and the other files are still checked.

Exit status: 0 when every file passes; 1 when any file fails; 2 on usage errors (a bad policy, a
path that does not exist: nothing is checked then) and when any file could not be checked (2 wins
over 1: some verdicts are missing). A face model that cannot be loaded stops the run (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_policy_arguments,
    input_problem,
    load_face_model,
    load_policy,
)
from ..errors import ModelError, PreflightError
from ..gate import Gate
from ..report import Report, printable

EPILOG = ("exit status: 0 all pass, 1 any fails, 2 usage error (a missing file, a bad policy: nothing is "
          "checked) or a file that vanished during the run (the other files are still checked)")


def register(sub: Any) -> None:
    parser = sub.add_parser("check", help="check image files and print a report for each", epilog=EPILOG)
    parser.add_argument("files", nargs="+", metavar="FILE", help="image files to check; - reads one from stdin")
    parser.add_argument("--json", action="store_true", help="print one JSON report per line")
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


#: The most ``check -`` reads from stdin (far above any photo the API takes: the gate reports the size).
MAX_STDIN_BYTES = 256 * 1024 * 1024


def _unusable(path: str) -> str | None:
    """Why ``path`` cannot be checked at all (``None`` when it can be tried; ``-`` is stdin)."""
    return None if path == "-" else input_problem(path)


def _read_stdin() -> bytes:
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise PreflightError(f"stdin holds more than {MAX_STDIN_BYTES} bytes: not a photo")
    return data


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    problems = [p for p in (_unusable(f) for f in args.files) if p]
    if args.files.count("-") > 1:
        problems.append("- (stdin) can be given only once")
    if problems:
        for problem in problems:
            print(f"preflight: {problem}", file=sys.stderr)
        return EXIT_USAGE
    any_failed = not_checked = False
    with Gate(policy) as gate:
        load_face_model(gate)
        for path in args.files:
            try:
                report = gate.check(_read_stdin(), name="<stdin>") if path == "-" else gate.check(path)
            except ModelError:
                raise  # not about this file: every other check would fail the same way
            except (PreflightError, OSError) as exc:  # this file only: say so, go on with the others
                print(f"preflight: {path}: cannot check: {_reason(exc)}", file=sys.stderr, flush=True)
                not_checked = True
                continue
            any_failed |= not report.passed
            if args.json:
                print(report.to_json(locale=args.locale), flush=True)
            else:
                print(format_report(report, locale=args.locale), flush=True)
    if not_checked:
        return EXIT_USAGE
    return EXIT_FAILED if any_failed else EXIT_OK


def _reason(exc: BaseException) -> str:
    """One line: the OS's words for an OSError (``Permission denied``), else the error's message."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, PreflightError):
        return exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def format_report(report: Report, *, locale: str = "en") -> str:
    """A readable table: verdict line, then code, measured, limit and hint for each issue."""
    from ..guidance import hint

    verdict = "PASS" if report.passed else "FAIL"
    n_err, n_warn = len(report.errors), len(report.warnings)
    extra = ", ".join(p for p in (f"{n_err} error(s)" if n_err else "", f"{n_warn} warning(s)" if n_warn else "") if p)
    name = printable(report.source) if report.source else "<image>"
    lines = [f"{name}: {verdict}" + (f" ({extra})" if extra else "")]
    if report.issues:
        rows = [("", "CODE", "MEASURED", "LIMIT", "WHAT TO DO")]
        for issue in sorted(report.issues, key=lambda i: i.severity != "error"):
            rows.append((
                "x" if issue.severity == "error" else "!",
                issue.code,
                _fmt(issue.measured),
                _fmt(issue.limit),
                hint(issue.code, locale) or issue.hint,
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  " + "  ".join(cells) + "  " + row[4])
    m = report.measurements
    facts = [f"{m.format or '?'} {m.width or '?'}x{m.height or '?'}"]
    if m.file_bytes is not None:
        facts.append(f"{m.file_bytes} bytes")
    if m.jpeg_quality is not None:
        facts.append(f"quality {m.jpeg_quality}")
    if m.face_size_px is not None:
        facts.append(f"face {m.face_size_px:.0f} px")
    if m.eye_distance_px is not None:
        facts.append(f"eyes {m.eye_distance_px:.0f} px apart")
    if m.yaw_deg is not None and m.pitch_deg is not None and m.roll_deg is not None:
        facts.append(f"pitch/yaw/roll {m.pitch_deg:+.0f}/{m.yaw_deg:+.0f}/{m.roll_deg:+.0f} deg")
    lines.append("  " + ", ".join(facts))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, (tuple, list)):
        return "/".join(str(v) for v in value)
    return str(value)
