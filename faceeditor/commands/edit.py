"""``faceeditor edit PHOTO -o OUT [--face N] [--yaw ..] [--expr ..] [--preset ..] [--light-* ..]``.

Fits the face, applies the edit with the mesh compositor and writes the edited photo at full
resolution, in the format of OUT's extension, with the input's ICC profile, EXIF and (JPEG to
JPEG) quality.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.errors import FaceEditorError, FaceTooSmallError, NoFaceError
from faceeditor.edit.args import add_edit_arguments, base_edit

NAME = "edit"
HELP = "edit a face in a photo (pose, expression, light) and write the result at full resolution"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", type=Path, help="image file (JPEG, PNG, WebP, TIFF, BMP)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="edited photo; format from the extension")
    parser.add_argument("--face", default=None, metavar="N",
                        help="which face: 1 = largest (as `faceeditor detect` numbers them; default), or 'all'")
    parser.add_argument("--quality", type=int, default=None, metavar="Q",
                        help="JPEG/WebP quality 1-100 (default: the input JPEG's, else 95)")
    parser.add_argument("--save-params", type=Path, default=None, metavar="P.json",
                        help="also write the edit parameters used (EditParams JSON, one face)")
    parser.add_argument("--force", action="store_true", help="allow OUT to be the input photo itself")
    add_edit_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # the edit job pulls in the fitter and the renderers (OpenCV, mediapipe, the neural renderer):
    # imported here, not when the command line builds its parser
    from faceeditor.jobs.photo_edit import edit_file, parse_face

    face = parse_face(args.face)
    base = base_edit(args)  # option errors before any slow work
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise FaceEditorError("--quality must be in 1..100")
    if args.output.exists() and args.photo.exists() and os.path.samefile(args.output, args.photo) and not args.force:
        raise FaceEditorError(f"{args.output} is the input photo; pass --force to overwrite it")
    if not args.output.parent.is_dir():
        raise FaceEditorError(f"folder {args.output.parent} does not exist")
    try:
        res = edit_file(args.photo, args.output, base, args, face, args.quality)
    except (NoFaceError, FaceTooSmallError) as exc:  # name the photo, as batch and fit do
        raise type(exc)(f"{args.photo}: {exc}") from None
    w, h = res.size
    print(f"{args.photo}: {w}x{h}, {res.faces} face(s) edited (fit {res.fit_ms:.0f} ms, render {res.render_ms:.0f} ms)")
    if args.save_params is not None and res.edits:
        atomic_write_text(args.save_params, json.dumps(res.edits[0], indent=2) + "\n")
        print(f"wrote {args.save_params}")
    print(f"wrote {res.path}")
    return 0
