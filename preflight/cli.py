"""Command line: ``preflight check FILE... [--json] [--policy FILE.toml|PRESET]``.

Exit status: 0 when every image passes, 1 when any fails, 2 on usage errors (including a path
that does not exist or an invalid policy file).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import PolicyError, PreflightError
from .gate import Gate
from .policy import Policy
from .report import Report

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight",
        description="Check face photos locally before uploading them to an identity-verification API.",
    )
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    check = sub.add_parser("check", help="check image files and print a report for each")
    check.add_argument("files", nargs="+", metavar="FILE", help="image files to check")
    check.add_argument("--json", action="store_true", help="print one JSON report per line")
    _add_policy_arguments(check)
    check.set_defaults(func=cmd_check)
    return parser


def _add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", metavar="FILE_OR_PRESET",
        help="a TOML policy file, or a preset: progeny_selfie (default), progeny_document",
    )
    parser.add_argument("--locale", default="en", help="language of the hints (en, de); default en")


def load_policy(value: str | None) -> Policy:
    if value is None:
        return Policy()
    if os.path.exists(value) or value.endswith(".toml"):
        return Policy.from_toml(value)
    return Policy.named(value)


def cmd_check(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    missing = [f for f in args.files if not os.path.isfile(f)]
    if missing:
        for path in missing:
            print(f"preflight: no such file: {path}", file=sys.stderr)
        return EXIT_USAGE
    any_failed = False
    with Gate(policy) as gate:
        for path in args.files:
            report = gate.check(path)
            any_failed |= not report.passed
            if args.json:
                print(report.to_json(), flush=True)
            else:
                print(format_report(report, locale=args.locale), flush=True)
    return EXIT_FAILED if any_failed else EXIT_OK


def format_report(report: Report, *, locale: str = "en") -> str:
    """A readable table: verdict line, then code, measured, limit and hint for each issue."""
    from .guidance import hint

    verdict = "PASS" if report.passed else "FAIL"
    n_err, n_warn = len(report.errors), len(report.warnings)
    extra = ", ".join(p for p in (f"{n_err} error(s)" if n_err else "", f"{n_warn} warning(s)" if n_warn else "") if p)
    lines = [f"{report.source or '<image>'}: {verdict}" + (f" ({extra})" if extra else "")]
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except PolicyError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PreflightError as exc:
        print(f"preflight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK if not sys.stdout.isatty() else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
