"""``faceeditor detect PHOTO [-o OVERLAY.png] [--json OUT.json]``: find faces and their landmarks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from faceeditor.core.atomic import atomic_write_text
from faceeditor.face.detect import MIN_FACE_PX, FaceTooSmallError, detect_faces
from faceeditor.face.overlay import draw_faces
from faceeditor.io import load_image, save_image

NAME = "detect"
HELP = "find the faces in a photo: boxes, scores, 478 mesh + 68 landmarks (optional overlay and JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", type=Path, help="image file (JPEG, PNG, WebP, TIFF, BMP)")
    parser.add_argument("-o", "--overlay", type=Path, default=None, metavar="OUT.png",
                        help="write the photo with boxes and landmarks drawn on it")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                        help="write boxes, scores and landmarks (full-resolution pixels) as JSON")
    parser.add_argument("--max-faces", type=int, default=8, help="at most this many faces (default 8)")
    parser.add_argument("--min-size", type=float, default=None, metavar="PX",
                        help="faces with a smaller box side are reported as too small (default 40)")


def _describe(i: int, face, min_px: float) -> str:
    x0, y0, x1, y1 = face.box
    text = (f"  face {i + 1}: box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})  size {face.size:.0f} px"
            f"  score {face.score:.3f}")
    if face.source != "detector":
        text += f"  (found by {face.source})"
    if face.too_small:
        text += f"  TOO SMALL to fit (need {min_px:.0f} px)"
    return text


def run(args: argparse.Namespace) -> int:
    image = load_image(args.photo)
    rgb = image.pixels
    h, w = rgb.shape[:2]
    min_px = MIN_FACE_PX if args.min_size is None else args.min_size
    error: FaceTooSmallError | None = None
    try:
        faces = detect_faces(rgb, max_faces=max(1, args.max_faces), min_face_px=min_px, include_small=True)
    except FaceTooSmallError as exc:  # still show and write what was found, then fail
        faces, error = exc.faces, exc
    print(f"{args.photo}: {w}x{h}, {len(faces)} face(s)")
    for i, face in enumerate(faces):
        print(_describe(i, face, min_px))
    if args.overlay is not None:
        save_image(args.overlay, draw_faces(rgb, faces))
        print(f"wrote {args.overlay}")
    if args.json is not None:
        doc = {"image": str(args.photo), "width": w, "height": h, "min_face_px": min_px,
               "convention": "continuous pixels, top-left corner of pixel (0,0) at (0,0); z: mediapipe "
                             "relative depth in x's pixel scale; faces largest first",
               "faces": [f.to_dict() for f in faces]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, json.dumps(doc) + "\n")
        print(f"wrote {args.json}")
    if error is not None:
        raise error
    return 0
