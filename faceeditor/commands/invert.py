"""``faceeditor invert PHOTO -o OUTDIR``: fit the face, invert the GAR renderer (GAR eq. 10) on it.

Writes into OUTDIR (created):

    state/            the FaceState with the latent code z, noise maps and pivotal-tuning deltas
                      (state.json + state.npz; ``faceeditor edit --renderer gar`` and the editor use it)
    inversion.png     the aligned face crop | G's reconstruction | the reconstruction turned by
                      yaw +20 deg | relit from the left (each at G's resolution)
    inversion.json    PSNR in the face mask (initial / after eq. 10 / after tuning), steps, seconds

Faces are numbered as ``faceeditor detect`` numbers them: 1 is the largest.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from faceeditor.core.atomic import atomic_write_text
from faceeditor.core.errors import FaceEditorError, RendererUnavailableError
from faceeditor.core.state import FaceState
from faceeditor.edit.geometry import photo_light
from faceeditor.edit.light import LightParams
from faceeditor.edit.params import EditParams
from faceeditor.io import load_image, save_image
from faceeditor.jobs.photo_edit import fit_faces
from faceeditor.morphable import load_face_model
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.crop import crop_photo
from faceeditor.neural.crop_render import render_edit
from faceeditor.neural.gar_nets import GarNets, available, load_gar
from faceeditor.neural.invert import InvertConfig, invert

NAME = "invert"
HELP = "invert the GAR renderer on a face (z, noise, pivotal tuning) and save the FaceState"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", type=Path, help="image file (JPEG, PNG, WebP, TIFF, BMP)")
    parser.add_argument("-o", "--outdir", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--face", type=int, default=1, metavar="N", help="face N (1 = largest; default 1)")
    parser.add_argument("--steps", type=int, default=None, help="eq. 10 optimisation steps")
    parser.add_argument("--pti-steps", type=int, default=None, help="pivotal-tuning steps (0 = off)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="S",
                        help="seconds for the whole inversion (default 20; 0 = no limit)")
    parser.add_argument("--no-v-init", action="store_true",
                        help="start z at 0 instead of V's estimate (ablation)")
    parser.add_argument("--fixed-geometry", action="store_true", help="keep the fitted pose and shape")
    parser.add_argument("--no-photometric", action="store_true", help="skip the photometric fit (SH from the crop)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _config(args: argparse.Namespace) -> InvertConfig:
    over = {"steps": args.steps, "pti_steps": args.pti_steps}
    cfg = dataclasses.replace(InvertConfig(), **{k: v for k, v in over.items() if v is not None})
    if args.time_budget is not None:
        cfg.time_budget_s = args.time_budget if args.time_budget > 0 else None
    cfg.v_init = not args.no_v_init
    cfg.optimize_geometry = not args.fixed_geometry
    return cfg


def _stage_printer():
    """A progress callback that prints each stage's name once (on stderr)."""
    last = [""]

    def progress(stage: str, fraction: float, loss: float | None = None) -> bool:
        if stage != last[0]:
            last[0] = stage
            print(f"  ... {stage}", file=sys.stderr, flush=True)
        return True

    return progress


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if not available():
        raise RendererUnavailableError("no trained GAR renderer in resources/ (python -m trainers.train_gar)")
    if args.face < 1:
        raise FaceEditorError("--face counts from 1 (the largest face)")
    cfg = _config(args)
    image = load_image(args.photo)
    model = load_face_model()
    nets = load_gar()
    t0 = time.perf_counter()
    state = fit_faces(image.pixels, args.face, photometric=not args.no_photometric)[0]
    t1 = time.perf_counter()
    out, res = invert(image.pixels, state, model, cfg, nets, progress=_stage_printer(), return_result=True)
    args.outdir.mkdir(parents=True, exist_ok=True)
    out.save(args.outdir / "state")
    save_image(args.outdir / "inversion.png", _panel(image.pixels, out, model, nets))
    info = {"photo": str(args.photo), "face": args.face, "fit_s": round(t1 - t0, 3), "invert_s": res.seconds,
            "psnr_db_init": res.psnr_db_init, "psnr_db_phase1": res.psnr_db_phase1, "psnr_db": res.psnr_db,
            "steps": res.steps, "pti_steps": res.pti_steps, "v_init": cfg.v_init,
            "renderer_id": out.neural.renderer_id}
    atomic_write_text(args.outdir / "inversion.json", json.dumps(info, indent=2) + "\n")
    print(f"{args.photo}: face {args.face} fitted in {t1 - t0:.1f} s, inverted in {res.seconds:.1f} s "
          f"({res.steps} + {res.pti_steps} tuning steps): PSNR {res.psnr_db_init:.1f} -> {res.psnr_db_phase1:.1f} "
          f"-> {res.psnr_db:.1f} dB (face)")
    print(f"wrote {args.outdir / 'state'}, {args.outdir / 'inversion.png'}, {args.outdir / 'inversion.json'}")
    return 0


def _panel(photo: np.ndarray, state: FaceState, model: FaceModel, nets: GarNets) -> np.ndarray:
    """crop | reconstruction | yaw +20 | relit from the left, uint8."""
    crop, _ = crop_photo(photo, state, nets.size)
    tiles = [crop]
    for edit in (EditParams(), EditParams(yaw=20.0)):
        tiles.append(render_edit(model, state, edit, nets)[0].cpu())
    light = photo_light(state)
    left = LightParams.from_dict({**light.to_dict(), "azimuth": -60.0, "elevation": 10.0, "sh": None})
    tiles.append(render_edit(model, state, EditParams(light=left), nets)[0].cpu())
    return np.concatenate([(t[0].permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
                           for t in tiles], 1)
