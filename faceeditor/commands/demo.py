"""``faceeditor demo [-o OUTDIR]``: the whole engine on the embedded sample portrait, no window needed.

Runs every stage that exists on scikit-image's astronaut photo and writes the results to
OUTDIR (default ``./out/demo``): detection overlay and JSON, and, as the later stages land,
the fitted head, its exports and edited photos.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "demo"
HELP = "run the engine on the embedded sample portrait and write the results (no display needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--outdir", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--photo", type=Path, default=None, help="use this photo instead of the sample")


def run(args: argparse.Namespace) -> int:
    from faceeditor.face.detect import detect_faces
    from faceeditor.face.overlay import draw_faces
    from faceeditor.io import load_image, save_image
    from faceeditor.paths import sample_image_path

    photo = args.photo or sample_image_path()
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    image = load_image(photo)
    print(f"photo: {photo} ({image.pixels.shape[1]}x{image.pixels.shape[0]})")
    t0 = time.perf_counter()
    faces = detect_faces(image.pixels)
    print(f"detected {len(faces)} face(s) in {(time.perf_counter() - t0) * 1000:.0f} ms")
    for i, f in enumerate(faces):
        x0, y0, x1, y1 = f.box
        print(f"  face {i + 1}: box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}), score {f.score:.3f}")
    save_image(out / "detection.png", draw_faces(image.pixels, faces))
    print(f"wrote {out / 'detection.png'}")
    return 0
