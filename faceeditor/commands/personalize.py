"""``faceeditor personalize PHOTO [PHOTO ...] -o DIR``: fit one person's Personal renderer (paper 001).

1-15 photos of one person (a folder counts as its photos). Each photo's largest face is fitted
(:func:`faceeditor.fit.pipeline.fit_photo`), then the Personal model (:mod:`faceeditor.neural.personal`:
diffuse and specular UV albedo, a lighting network for ambient occlusion and self-shadowing, one
Blinn-Phong light per photo) is fitted by RAdam through the curriculum normals -> texture ->
lighting -> all on coarse-to-fine targets (:mod:`faceeditor.neural.personal_fit`). Writes into DIR:

    personal.pt, personal.json   weights; config, per-photo keys and lights, photos, PSNR, seconds
    states/NN/                   each photo's FaceState (``faceeditor edit --renderer personal`` reuses them)
    personal.png                 per photo: face crop | Personal render | relit from the left | from the right
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from faceeditor.bench._util import PHOTO_EXTS
from faceeditor.core.errors import FaceEditorError
from faceeditor.io import load_rgb, save_image
from faceeditor.morphable import load_face_model
from faceeditor.neural.personal import PersonalConfig
from faceeditor.neural.personal_fit import fit_personal, fit_photo_states, preview

NAME = "personalize"
HELP = "fit the Personal renderer (Blinn-Phong + learned shadows, paper 001) to 1-15 photos of one person"
MAX_PHOTOS = 15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", type=Path, nargs="+", help="photos of one person, or folders of them")
    parser.add_argument("-o", "--outdir", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--crop", type=int, default=None, help="fit resolution in px (default 128)")
    parser.add_argument("--steps", type=str, default=None, metavar="A,B,C,D",
                        help="curriculum steps: normals,texture,lighting,all (default 60,80,60,80)")
    parser.add_argument("--seed", type=int, default=0)


def photo_files(paths: list[Path]) -> list[Path]:
    """The photos named, folders expanded to the photos in them (sorted)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in PHOTO_EXTS)
        elif p.is_file():
            out.append(p)
        else:
            raise FaceEditorError(f"{p}: no such file or folder")
    if not 1 <= len(out) <= MAX_PHOTOS:
        raise FaceEditorError(f"give 1 to {MAX_PHOTOS} photos of one person (got {len(out)})")
    return out


def _config(args: argparse.Namespace) -> PersonalConfig:
    cfg = PersonalConfig(seed=args.seed)
    if args.crop is not None:
        cfg = dataclasses.replace(cfg, crop=args.crop)
    if args.steps is not None:
        try:
            steps = tuple(int(s) for s in args.steps.split(","))
        except ValueError:
            steps = ()
        if len(steps) != 4 or min(steps) < 0:
            raise FaceEditorError("--steps takes four non-negative counts: normals,texture,lighting,all")
        cfg = dataclasses.replace(cfg, steps=steps)
    return cfg


def _printer():
    """Progress on stderr: each stage once, the loss every 40 steps."""
    seen = {"stage": "", "n": 0}

    def progress(stage: str, fraction: float, loss: float | None = None) -> bool:
        seen["n"] += 1
        if stage != seen["stage"] or (loss is not None and seen["n"] % 40 == 0):
            seen["stage"] = stage
            tail = "" if loss is None else f" loss {loss:.5f}"
            print(f"  ... {stage} {100 * fraction:3.0f}%{tail}", file=sys.stderr, flush=True)
        return True

    return progress


def run(args: argparse.Namespace) -> int:
    files = photo_files(args.photos)
    cfg = _config(args)
    model = load_face_model()
    photos = [load_rgb(f) for f in files]
    states = fit_photo_states(photos, model)
    net, log = fit_personal(photos, states, model, cfg, _printer())
    args.outdir.mkdir(parents=True, exist_ok=True)
    for i, st in enumerate(states):
        st.save(args.outdir / "states" / f"{i:02d}")
    net.save(args.outdir, {"files": [str(f) for f in files], "states": [f"states/{i:02d}" for i in range(len(files))]})
    save_image(args.outdir / "personal.png", np.concatenate(
        [preview(net, p, st, model, i) for i, (p, st) in enumerate(zip(photos, states))], 0))
    psnr = ", ".join(f"{v:.1f}" for v in log.psnr_db)
    print(f"{len(files)} photo(s): fitted in {log.seconds:.1f} s ({len(log.losses)} RAdam steps), "
          f"PSNR on the face {psnr} dB")
    print(f"wrote {args.outdir} (personal.pt, personal.json, states/, personal.png)")
    return 0

