"""Command line: ``preflight COMMAND ...``; each command lives in :mod:`preflight.commands`.

Exit status: 0 when every image passes, 1 when any fails, 2 on usage errors: a path that does not
exist, an input that cannot be read, an invalid policy (file or value), an output that cannot be
written. ``submit`` also exits 3 when the API call fails. Errors are one ``preflight: ...`` line on
stderr, never a traceback: commands raise a :class:`~preflight.errors.PreflightError` (for outputs,
:class:`~preflight.errors.OutputFileError`) and :func:`main` prints it.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, guidance
from .errors import OutputFileError, PreflightError
from .policy import Policy

if TYPE_CHECKING:
    from .gate import Gate

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="preflight",
        description="Check face photos locally before uploading them to an identity-verification API.",
    )
    parser.add_argument("--version", action="version", version=f"preflight {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for module in _command_modules():
        module.register(sub)
    return parser


def _command_modules() -> list[Any]:
    """Every module in :mod:`preflight.commands` contributes one subcommand via ``register(sub)``."""
    from . import commands

    names = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    order = {"check": 0, "submit": 1, "screen": 2, "fix": 3, "annotate": 4, "serve": 5}
    names.sort(key=lambda n: (order.get(n, 99), n))
    return [importlib.import_module(f"{commands.__name__}.{name}") for name in names]


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", metavar="FILE_OR_PRESET",
        help="a TOML policy file, or a preset: progeny_selfie (default), progeny_document",
    )
    parser.add_argument("--locale", type=locale_argument, default="en",
                        help="language of the hints (en, de); default en")


def locale_argument(text: str) -> str:
    """An argparse type: a locale that has a hint catalogue ("de-AT" gives "de"); anything else is refused."""
    locale = guidance.find_locale(text)
    if locale is None:
        raise argparse.ArgumentTypeError(f"no hints in {text!r}; available: {', '.join(guidance.available_locales())}")
    return locale


def load_policy(value: str | None) -> Policy:
    if value is None:
        return Policy()
    if os.path.exists(value) or value.endswith(".toml"):
        return Policy.from_toml(value)
    return Policy.named(value)


def input_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as one photo (``None`` when it can be tried)."""
    if os.path.isdir(path):
        return f"{path} is a folder; give an image file (for a folder: preflight screen {path} --out results.csv)"
    if not os.path.isfile(path):
        return f"no such file: {path}"
    return None


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_output_path(path: str, *, create_folders: bool = False, source: str | None = None) -> None:
    """Fail before any work when no file can be written at ``path``.

    Raises :class:`~preflight.errors.OutputFileError` when ``path`` is empty or a folder, an existing
    file there cannot be overwritten, or its folder does not exist (with ``create_folders``, the
    folders that are missing will be created, so the nearest existing one is checked instead) or is
    not a writable folder, or it is the file ``source`` (the input would be lost). Write errors that
    only show up later are turned into the same error by :func:`output_error`.
    """
    if not path:
        raise OutputFileError("the output path is empty")
    if os.path.islink(path) and not os.path.exists(path):  # a dangling link is written through; a loop cannot be
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputFileError(f"cannot write {path}: it is a symlink loop") from None
        target = os.path.realpath(path)
        if not os.path.isdir(os.path.dirname(target)):
            raise OutputFileError(f"cannot write {path}: it links to {target}, in a folder that does not exist")
    if os.path.isdir(path):
        raise OutputFileError(f"cannot write {path}: it is a folder; give a file name")
    if os.path.exists(path):
        if source is not None and _same_file(path, source):
            raise OutputFileError(f"cannot write {path}: it is the input photo; give another name (the original "
                                  "stays untouched)")
        if not os.access(path, os.W_OK):
            raise OutputFileError(f"cannot write {path}: no permission to overwrite it")
        return
    folder = os.path.dirname(path) or os.curdir  # as the system resolves it (through links, then ..)
    if not os.path.isdir(folder):
        if not create_folders:
            what = "is not a folder" if os.path.lexists(folder) else "does not exist"
            raise OutputFileError(f"cannot write {path}: folder {folder} {what}")
        if ".." in Path(path).parts:  # missing/../out.csv: "missing" would be created only to step out of it
            raise OutputFileError(f"cannot write {path}: its folder does not exist, and '..' after a missing "
                                  "folder is ambiguous; give the path without '..'")
        existing = os.path.dirname(os.path.abspath(path))
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise OutputFileError(f"cannot write {path}: {existing} is not a folder")
        folder = existing
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFileError(f"cannot write {path}: no permission to write in folder {folder}")


def load_face_model(gate: Gate) -> None:
    """Load the gate's face model now, without MediaPipe's start-up log lines on the terminal.

    The lines ("Created TensorFlow Lite XNNPACK delegate", "W0000 ... feedback tensors") say nothing
    a user can act on; a model that fails to load still raises :class:`~preflight.errors.ModelError`.
    """
    if gate.policy.check_face:
        gate.load_model(quiet=True)


def output_error(path: str | os.PathLike[str], exc: OSError, doing: str = "write") -> OutputFileError:
    """The :class:`~preflight.errors.OutputFileError` to raise (``from exc``) when writing ``path`` failed."""
    return OutputFileError(f"cannot {doing} {os.fspath(path)}: {exc.strerror or exc}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except PreflightError as exc:  # a bad policy, a missing path, an unwritable output: usage errors
        print(f"preflight: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("preflight: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK if not sys.stdout.isatty() else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
