"""``faceeditor fit PHOTO -o OUTDIR``: fit the 3D head to a face and export it.

Writes into OUTDIR (created; with ``--all-faces`` one folder per face, ``face_1`` the largest):

    params.json                 pose, camera, identity, expression, light, 68 points (faceeditor.fit.params_json)
    mesh.obj, mesh.mtl, mesh.png  the textured head, camera frame by default (faceeditor.fit.export)
    overlay.png                 the photo with the fitted mesh and landmarks (faceeditor.fit.overlay)
    state/                      the full FaceState (state.json + state.npz) for `faceeditor edit`

With ``--all-faces`` OUTDIR/overlay.png shows every face. Faces are numbered as ``faceeditor
detect`` numbers them: 1 is the largest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from faceeditor.core.errors import FaceEditorError
from faceeditor.fit.export import write_face_mesh
from faceeditor.fit.overlay import draw_fit_overlay
from faceeditor.fit.params_json import write_params_json
from faceeditor.fit.pipeline import fit_photo
from faceeditor.io import load_image, save_image
from faceeditor.morphable.model import load_face_model

NAME = "fit"
HELP = "fit the 3D head to a face in a photo; write params.json, a textured OBJ mesh and an overlay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", type=Path, help="image file (JPEG, PNG, WebP, TIFF, BMP)")
    parser.add_argument("-o", "--outdir", type=Path, required=True, help="output folder (created)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all-faces", action="store_true", help="fit every face; one sub-folder face_N per face")
    which.add_argument("--face", type=int, default=None, metavar="N",
                       help="fit face N (1 = largest, as `faceeditor detect` numbers them; default 1)")
    parser.add_argument("--no-photometric", action="store_true",
                        help="landmark fit only: skip the photometric fit (faster; no photo texture)")
    parser.add_argument("--texture-size", type=int, default=512, metavar="T",
                        help="texture atlas tile side in pixels; the atlas is 4T x 2T (default 512)")
    parser.add_argument("--refine", type=int, default=0, metavar="N",
                        help="N steps of photometric geometry refinement through the differentiable renderer "
                             "(mean-face albedo, soft silhouettes; slower, off by default)")
    parser.add_argument("--mesh-frame", choices=("camera", "model"), default="camera",
                        help="mesh coordinates: camera frame, overlays the photo (default), or the un-posed model")


class _Progress:
    """Prints each new stage the pipeline reports (to stderr). Accepts ``(stage, fraction, ...)``."""

    def __init__(self) -> None:
        self.last: str | None = None

    def __call__(self, stage: object = None, *args: object, **kwargs: object) -> None:
        if stage is None:
            return
        text = str(stage)
        if text != self.last:
            self.last = text
            print(f"  ... {text}", file=sys.stderr, flush=True)


def _box_area(state) -> float:
    x0, y0, x1, y1 = state.face_box
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def _export(folder: Path, rgb, state, model, args: argparse.Namespace) -> list[str]:
    """Write one face's files into ``folder``; returns their names."""
    folder.mkdir(parents=True, exist_ok=True)
    write_params_json(folder / "params.json", state, model)
    files = write_face_mesh(folder, "mesh", state, model, frame=args.mesh_frame, texture_size=args.texture_size)
    save_image(folder / "overlay.png", draw_fit_overlay(rgb, state, model))
    state.save(folder / "state")
    return ["params.json", files.obj.name, files.mtl.name, files.png.name, "overlay.png", "state/"]


def _describe(label: str, state, export_ms: float, folder: Path, names: list[str]) -> str:
    p = state.pose_degrees
    t = state.translation
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in state.timings_ms.items()) or "no timings"
    x0, y0, x1, y1 = state.face_box
    return (f"  {label}: yaw {p['yaw']:+.1f}  pitch {p['pitch']:+.1f}  roll {p['roll']:+.1f} deg;  "
            f"focal {state.focal_px:.0f} px, distance {-float(t[2]):.0f} cm, "
            f"box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f})\n"
            f"    fit: {timings}; export {export_ms:.0f} ms\n"
            f"    -> {folder}/  {' '.join(names)}")


def run(args: argparse.Namespace) -> int:
    if args.face is not None and args.face < 1:
        raise FaceEditorError(f"--face counts from 1 (the largest face), got {args.face}")
    if not 16 <= args.texture_size <= 8192:
        raise FaceEditorError(f"--texture-size must be between 16 and 8192, got {args.texture_size}")
    out: Path = args.outdir
    if out.exists() and not out.is_dir():
        raise FaceEditorError(f"{out}: exists and is not a folder; choose another output folder")
    image = load_image(args.photo)
    rgb = image.pixels
    h, w = rgb.shape[:2]
    t0 = time.perf_counter()
    states = fit_photo(rgb, face_index=None if args.face is None else args.face - 1, all_faces=args.all_faces,
                       photometric=not args.no_photometric, texture_size=args.texture_size, progress=_Progress(),
                       refine_steps=max(0, args.refine))
    fit_ms = (time.perf_counter() - t0) * 1000.0
    if not states:
        raise FaceEditorError(f"{args.photo}: no face found in the {w}x{h} photo")
    if args.all_faces:
        states = sorted(states, key=_box_area, reverse=True)  # stable: the pipeline's order on ties
    model = load_face_model()
    print(f"{args.photo}: {w}x{h}, {len(states)} face(s) fitted in {fit_ms:.0f} ms")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i, state in enumerate(states):
            folder = out / f"face_{i + 1}" if args.all_faces else out
            t1 = time.perf_counter()
            names = _export(folder, rgb, state, model, args)
            export_ms = (time.perf_counter() - t1) * 1000.0
            label = f"face {i + 1}" if args.all_faces else f"face {args.face or 1}"
            print(_describe(label, state, export_ms, folder, names))
        if args.all_faces:
            save_image(out / "overlay.png", draw_fit_overlay(rgb, states, model))
            print(f"  all faces: {out / 'overlay.png'}")
    except OSError as exc:
        where = exc.filename or out
        raise FaceEditorError(f"{where}: cannot write ({exc.strerror or exc})") from exc
    return 0
