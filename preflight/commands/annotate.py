"""``preflight annotate IN -o OUT.png``: draw the measurements and issues on the photo."""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any

from PIL import Image

from .._files import write_atomically
from ..annotate import annotate
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
from ..errors import OutputFileError
from ..gate import Gate

#: Pillow's format for each output extension accepted (the picture is 8-bit RGB).
PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
                   ".tif": "TIFF", ".tiff": "TIFF"}


def register(sub: Any) -> None:
    parser = sub.add_parser("annotate", help="draw the face box, eyes, pose and issues on a photo")
    parser.add_argument("input", metavar="IN", help="the image to annotate")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output picture: .png or .jpg (also .jpeg, .webp, .bmp, .gif, .tif, .tiff)")
    add_policy_arguments(parser)
    parser.set_defaults(func=run)


def picture_format(path: str) -> str:
    """Pillow's format name for an output picture path, from its extension (OutputFileError if none fits)."""
    ext = os.path.splitext(path)[1].lower()
    fmt = PICTURE_FORMATS.get(ext)
    if fmt is not None:
        Image.init()  # registers every plugin's writer
        if fmt in Image.SAVE:
            return fmt
    what = f"unsupported extension {ext!r}" if ext else "no file extension"
    raise OutputFileError(f"cannot write a picture to {path}: {what}; use {', '.join(PICTURE_FORMATS)}")


def run(args: argparse.Namespace) -> int:
    problem = input_problem(args.input)
    if problem:
        print(f"preflight: {problem}", file=sys.stderr)
        return EXIT_USAGE
    policy = load_policy(args.policy)
    check_output_path(args.output, source=args.input)  # before any work: a folder, a missing folder, no permission...
    fmt = picture_format(args.output)  # ... an extension Pillow cannot write
    with Gate(policy) as gate:
        load_face_model(gate)
        report = gate.check(args.input)
        picture = annotate(args.input, report, gate=gate)
    try:
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt)  # an encoder error is an OSError too
        write_atomically(args.output, buffer.getvalue())  # never half a picture after an interruption
    except OSError as exc:  # a full disk, a folder that vanished meanwhile
        raise output_error(args.output, exc) from exc
    print(f"{args.input}: {'PASS' if report.passed else 'FAIL'}; annotated picture written to {args.output}")
    return EXIT_OK if report.passed else EXIT_FAILED
