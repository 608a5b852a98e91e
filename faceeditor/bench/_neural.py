"""The measurements of ``faceeditor bench neural`` (:mod:`faceeditor.bench.neural`), imported when it runs."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from faceeditor.bench import _realism as R
from faceeditor.bench._util import time_ms
from faceeditor.core.device import configure_threads
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.pose import euler_to_matrix
from faceeditor.edit.presets import macro_weights
from faceeditor.face.detect import FaceDetector
from faceeditor.fit.pipeline import fit_photo
from faceeditor.io import load_rgb
from faceeditor.morphable import load_face_model
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.checkpoints import load_network
from faceeditor.neural.crop import crop_photo
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.layers import autocast
from faceeditor.neural.losses import aux_input
from faceeditor.neural.photo_g import PhotoG
from faceeditor.neural.photo_renderer import load_photo_g
from faceeditor.neural.photo_rep import correspondence, push_pull_fill, rasterize_view, representation, warp
from faceeditor.render.sh import directional_sh

ATTRIBUTES = ("id", "exp", "illum", "angle")
MACROS = ("blink", "mouth_open", "smile", "surprise")


@dataclass
class CropFace:
    """One photo's face in its 256 crop: the crop, camera, fitted parameters and the fitted view."""

    image: torch.Tensor  # (1,3,S,S)
    focal: torch.Tensor  # (1,)
    principal: torch.Tensor  # (1,2)
    params: dict[str, torch.Tensor]  # identity (1,100), expression (1,53), rotation (1,3,3), translation (1,3), sh
    src: object  # HeadView of the fitted head


def crop_face(model: FaceModel, table: RegionTable, rgb: np.ndarray, state, size: int = 256) -> CropFace:
    img, view = crop_photo(rgb, state, size)
    Q = torch.as_tensor(view.roll, dtype=torch.float32)
    p = {
        "identity": torch.as_tensor(np.asarray(state.identity, np.float32))[None],
        "expression": torch.as_tensor(np.asarray(state.expression, np.float32))[None],
        "rotation": (Q @ torch.as_tensor(np.asarray(state.rotation, np.float32)))[None],
        "translation": (Q @ torch.as_tensor(np.asarray(state.translation, np.float32)))[None],
        "sh": view.sh(state.sh)[None],
    }
    f = torch.tensor([float(view.camera.focal_px)])
    c = torch.tensor([view.camera.principal], dtype=torch.float32)
    verts = model.vertices(p["identity"], p["expression"]) @ p["rotation"].transpose(1, 2) + p["translation"][:, None]
    return CropFace(img, f, c, p, rasterize_view(model, table, verts, f, c, size))


@torch.no_grad()
def render_params(
    G: PhotoG, model: FaceModel, table: RegionTable, face: CropFace, p: dict[str, torch.Tensor], rep_only: bool = False
) -> torch.Tensor:
    """G_p's crop (1,3,S,S) of the photo's face at parameters ``p`` (as in training: the warped
    photo is the crop off the head and a smooth fill on it)."""
    S = face.image.shape[-1]
    verts = model.vertices(p["identity"], p["expression"]) @ p["rotation"].transpose(1, 2) + p["translation"][:, None]
    view = rasterize_view(model, table, verts, face.focal, face.principal, S)
    grid, conf = correspondence(view, face.src, table)
    tex = warp(face.image, grid)
    head = (view.region > 0)[:, None].float()
    warped = head * push_pull_fill(tex, conf) + (1 - head) * face.image
    rep = representation(tex, conf, view, p["sh"], warped)
    if rep_only:
        return rep
    with autocast("cpu"):
        return G(rep, noise=False)["composite"].float().clamp(0, 1)


def sample_attribute(
    name: str, base: dict[str, torch.Tensor], rng: np.random.Generator, names: list[str]
) -> dict[str, torch.Tensor]:
    """A random value of one attribute around the photo's own (identity offsets N(0, 0.7); an
    expression macro; a directional light; a head turn of up to 30 degrees)."""
    if name == "id":
        return {"identity": base["identity"] + torch.from_numpy(rng.normal(0, 0.7, (1, 100)).astype(np.float32))}
    if name == "exp":
        e = base["expression"].clone()
        for k, v in macro_weights(MACROS[rng.integers(len(MACROS))], float(rng.uniform(0.4, 1.0))).items():
            e[0, names.index(k)] = v
        return {"expression": e}
    if name == "illum":
        az, el = float(rng.uniform(-70, 70)), float(rng.uniform(-30, 50))
        d = torch.tensor(
            [
                np.sin(np.radians(az)) * np.cos(np.radians(el)),
                np.sin(np.radians(el)),
                np.cos(np.radians(az)) * np.cos(np.radians(el)),
            ],
            dtype=torch.float32,
        )
        sh = directional_sh(d, float(rng.uniform(0.6, 1.2)))
        return {"sh": (sh.reshape(1, 9, 3) + base["sh"] * 0.5).float()}
    yaw, pitch = float(rng.uniform(-30, 30)), float(rng.uniform(-12, 12))
    return {"rotation": (euler_to_matrix(yaw, pitch, 0.0)[0].float() @ base["rotation"][0])[None]}


def fr_reading(FR: torch.nn.Module, images: torch.Tensor) -> dict[str, np.ndarray]:
    """FR's identity, expression, SH and rotation of crops (B,3,S,S)."""
    with torch.no_grad(), autocast("cpu"):
        raw = FR(aux_input(images)).float()
    p = FR.decode(raw, size=128)
    return {
        "id": p.identity.numpy(),
        "exp": p.expression.numpy(),
        "illum": p.sh.reshape(-1, 27).numpy(),
        "angle": p.rotation.reshape(-1, 9).numpy(),
    }


def disentanglement(readings: dict[str, list[dict[str, np.ndarray]]]) -> dict[str, float]:
    """003 eq. 11 from FR's readings: ``readings[i]`` holds one dict per setting (arrays (values, D))."""
    allv = {k: np.concatenate([r[k] for rs in readings.values() for r in rs]) for k in ATTRIBUTES}
    norm = {k: float(np.linalg.norm(allv[k].mean(0))) + 1e-8 for k in ATTRIBUTES}
    out = {}
    for i in ATTRIBUTES:
        sig = {
            k: float(np.mean([np.linalg.norm(r[k] - r[k].mean(0), axis=1).mean() for r in readings[i]])) / norm[k]
            for k in ATTRIBUTES
        }
        out[f"ds_{i}"] = float(np.prod([sig[i] / max(sig[j], 1e-12) for j in ATTRIBUTES if j != i]))
    return out


def measure(args: argparse.Namespace) -> dict:
    configure_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    G = load_photo_g(args.weights)
    FR = load_network("face_regressor", "cpu")
    model = load_face_model()
    table = RegionTable.of(model)
    names = list(model.expression_names)
    files = R.photos_under(args.data)
    if not files:
        raise FaceEditorError(f"no photos under {args.data}")
    detector = FaceDetector()
    readings: dict[str, list[dict[str, np.ndarray]]] = {a: [] for a in ATTRIBUTES}
    faces: list[CropFace] = []
    first = None
    for i in rng.permutation(len(files)):
        if len(faces) >= args.n:
            break
        fitted = _fit(files[i], detector, model)
        if fitted is None:
            continue
        first = first or fitted
        face = crop_face(model, table, *fitted, size=int(G.arch.get("size", 256)))
        faces.append(face)
        for attr in ATTRIBUTES:
            for _ in range(args.sets):
                others = dict(face.params)
                for o in ATTRIBUTES:
                    if o != attr:
                        others.update(sample_attribute(o, face.params, rng, names))
                imgs = [
                    render_params(G, model, table, face, {**others, **sample_attribute(attr, face.params, rng, names)})
                    for _ in range(args.values)
                ]
                readings[attr].append(fr_reading(FR, torch.cat(imgs)))
    if not faces:
        raise FaceEditorError("no usable face in the photos")
    out = {k: round(v, 4) for k, v in disentanglement(readings).items()}
    out.update(timing(G, model, table, crop_face(model, table, *first, size=256)))
    out["photos"] = len(faces)
    out["threads"] = torch.get_num_threads()
    return out


def timing(G: PhotoG, model: FaceModel, table: RegionTable, face: CropFace) -> dict[str, float]:
    """G_p's forward at 256 px: median wall time at the run's threads, CPU time per forward on one
    thread (what it costs when the cores are free), the representation's wall time and the load."""
    rep = render_params(G, model, table, face, face.params, rep_only=True)

    def forward() -> None:
        with torch.no_grad(), autocast("cpu"):
            G(rep, noise=False)

    ms = time_ms(forward, repeats=20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    forward()
    c0 = time.process_time()
    for _ in range(10):
        forward()
    cpu_ms = (time.process_time() - c0) * 100.0
    torch.set_num_threads(threads)
    rep_ms = time_ms(lambda: render_params(G, model, table, face, face.params, rep_only=True), repeats=5, warmup=1)
    return {
        "render_ms_256": round(ms, 2),
        "render_cpu_ms_256_1thread": round(cpu_ms, 2),
        "rep_ms_256": round(rep_ms, 2),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def _fit(path, detector: FaceDetector, model: FaceModel) -> tuple[np.ndarray, object] | None:
    """(photo, fitted state of its largest face), None when it has no usable face."""
    try:
        rgb = load_rgb(path)
        faces = [f for f in detector.detect(rgb) if f.landmarks is not None]
        if not faces:
            return None
        state = fit_photo(rgb, face_index=0, faces=faces[:1], model=model, detector=detector)[0]
    except FaceEditorError:
        return None
    return rgb, state
