"""``faceeditor demo [-o OUTDIR] [--photo P]``: the whole engine on the embedded sample portrait.

No display needed: detects and fits the face of scikit-image's astronaut photo (or ``--photo``),
writes what ``faceeditor fit`` writes (parameters, textured OBJ, overlay), then three edits at
full resolution (head turn, smile, relight) and a before/after strip, into OUTDIR (default
``./out/demo``). The head turn is also drawn by the photo-conditioned neural renderer G_p when it
is shipped (``resources/photo_g.pt``; feed-forward: ``edit_turn_left_neural.png``) and by the GAR
renderer when it is trained (``resources/gar_*.pt``: inverted on the face first, GAR eq. 10,
``--gar-seconds`` budget: ``edit_turn_left_gar.png``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from faceeditor.core.paths import sample_image_path
from faceeditor.edit.geometry import photo_light
from faceeditor.edit.params import EditParams
from faceeditor.io import load_image, save_image
from faceeditor.morphable import load_face_model

NAME = "demo"
HELP = "run the engine on the embedded sample portrait and write the results (no display needed)"

EDITS = {  # name -> EditParams fields; the relight moves the photo's own light (same strength)
    "turn_left": {"yaw": 15.0},
    "smile": {"expression": {"mouthSmile_L": 0.7, "mouthSmile_R": 0.7}},
    "relight": {"light_direction": (50.0, 25.0)},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--outdir", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    parser.add_argument("--photo", type=Path, default=None, help="use this photo instead of the sample")
    parser.add_argument("--gar-seconds", type=float, default=10.0,
                        help="time budget of the GAR renderer's inversion (0 = skip the GAR edit)")


def _heavy() -> SimpleNamespace:
    """The fitter, its exports and the renderers (OpenCV, mediapipe, the networks): imported
    when the demo runs, not when the command line builds its parser (which imports every command)."""
    from faceeditor.fit.export import write_face_mesh
    from faceeditor.fit.overlay import draw_fit_overlay
    from faceeditor.fit.params_json import write_params_json
    from faceeditor.fit.pipeline import fit_photo
    from faceeditor.jobs.renderers import make_renderer
    from faceeditor.neural.gar_nets import available, load_gar
    from faceeditor.neural.gar_renderer import GarRenderer
    from faceeditor.neural.invert import InvertConfig, invert
    from faceeditor.neural.photo_renderer import photo_g_available

    return SimpleNamespace(write_face_mesh=write_face_mesh, draw_fit_overlay=draw_fit_overlay,
                           write_params_json=write_params_json, fit_photo=fit_photo, make_renderer=make_renderer,
                           gar_available=available, load_gar=load_gar, InvertConfig=InvertConfig, invert=invert,
                           GarRenderer=GarRenderer, photo_g_available=photo_g_available)


def run(args: argparse.Namespace) -> int:
    heavy = _heavy()
    photo = args.photo or sample_image_path()
    out = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    image = load_image(photo)
    rgb = image.pixels
    print(f"photo: {photo} ({rgb.shape[1]}x{rgb.shape[0]})")
    t0 = time.perf_counter()
    state = heavy.fit_photo(rgb)[0]
    pose = state.pose_degrees
    print(f"fitted in {(time.perf_counter() - t0) * 1000:.0f} ms: yaw {pose['yaw']:+.1f}, pitch {pose['pitch']:+.1f}, "
          f"roll {pose['roll']:+.1f} deg, focal {state.focal_px:.0f} px")
    model = load_face_model()
    heavy.write_params_json(out / "params.json", state, model)
    heavy.write_face_mesh(out, "mesh", state, model)
    save_image(out / "overlay.png", heavy.draw_fit_overlay(rgb, state, model))
    renderer = heavy.make_renderer("mesh", rgb, state, model)
    strip = [rgb]
    for name, fields in EDITS.items():
        edit = EditParams.from_dict({k: v for k, v in fields.items() if k != "light_direction"})
        if "light_direction" in fields:
            edit.light = photo_light(state)
            edit.light.azimuth, edit.light.elevation = fields["light_direction"]
        t1 = time.perf_counter()
        edited = renderer.render(edit)
        print(f"edit {name}: {(time.perf_counter() - t1) * 1000:.0f} ms")
        save_image(out / f"edit_{name}.png", edited, like=image)
        strip.append(edited)
    save_image(out / "before_after.png", np.concatenate(strip, axis=1))
    print(f"wrote {out}/: params.json mesh.obj mesh.mtl mesh.png overlay.png edit_*.png before_after.png")
    turn = EditParams.from_dict(EDITS["turn_left"])
    if heavy.photo_g_available():
        t1 = time.perf_counter()
        edited = heavy.make_renderer("neural", rgb, state, model).render(turn)
        print(f"edit turn_left (neural renderer G_p): {(time.perf_counter() - t1) * 1000:.0f} ms")
        save_image(out / "edit_turn_left_neural.png", edited, like=image)
    else:
        print("neural renderer: not shipped (python -m trainers.train_photo_g --export); skipped")
    if args.gar_seconds > 0:
        _gar_edit(rgb, image, state, model, out, args.gar_seconds)
    return 0


def _gar_edit(rgb: np.ndarray, image, state, model, out: Path, seconds: float) -> None:
    """Invert the shipped GAR renderer on the face and render the head turn through it."""
    heavy = _heavy()
    if not heavy.gar_available():
        print("GAR renderer: not trained (python -m trainers.train_gar); skipped")
        return
    nets = heavy.load_gar("cpu")
    t0 = time.perf_counter()
    inverted, res = heavy.invert(rgb, state, model, heavy.InvertConfig(time_budget_s=seconds), nets,
                                 return_result=True)
    print(f"GAR renderer: inverted in {time.perf_counter() - t0:.1f} s, face PSNR {res.psnr_db_init:.1f} dB "
          f"(V) -> {res.psnr_db:.1f} dB")
    t1 = time.perf_counter()
    edited = heavy.GarRenderer(rgb, inverted, model, nets).render(EditParams.from_dict(EDITS["turn_left"]))
    print(f"edit turn_left (GAR): {(time.perf_counter() - t1) * 1000:.0f} ms")
    save_image(out / "edit_turn_left_gar.png", edited, like=image)
