"""Fitting the Personal model (:mod:`faceeditor.neural.personal`) to 1-15 photos of one person.

Paper 001, "Optimization-Based": every photo's directional light (direction, colour, diffuse and
specular coefficients; here also ambient and shininess) is optimised jointly with the pipeline's
components by **RAdam**, under a **curriculum** ("each for 100 epochs, we learn to generate:
normals, textures, lighting, and fine-tune with all components active") and **coarse-to-fine**
targets ("starts by approximating a blurred image with MSE loss, then adds more detail").

Stages (:data:`STAGES`), each a fresh RAdam over its parameters, the lights trained throughout:
``normals`` (the UV normal-offset map; the mesh geometry is the landmark/photometric fit's and is
*not* refined), ``texture`` (diffuse and specular albedo), ``lighting`` (the lighting network, off
before), ``all``. The loss is the MSE of render and photo on the face skin of the fitted head in
a ``crop``-pixel square, both blurred by a Gaussian whose sigma falls linearly from ``blur_px`` to
0 at ``sharp_at`` of all steps (normalised convolution inside the mask). Two terms make the model
hold for photos it was not fitted on: the shared diffuse texture's change from the photos' albedo
is kept smooth (:func:`change_roughness`), and each photo has its own nearly free (small L1)
detail map for what only it shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.pose import transform
from faceeditor.core.progress import Progress, check_progress
from faceeditor.core.state import FaceState
from faceeditor.edit.geometry import photo_light
from faceeditor.edit.light import sh_colour
from faceeditor.edit.person_light import TRI_SKIN, triangle_classes
from faceeditor.fit.photometric import crop_camera, crop_photo
from faceeditor.fit.pipeline import fit_photo
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.neural.personal import (
    FitLog,
    PersonalConfig,
    PersonalLight,
    PersonalModel,
    Surface,
    face_tile_uv,
    photo_key,
)
from faceeditor.render.atlas import atlas_uvs, render_face_ids
from faceeditor.render.blinn_phong import shadow_visibility
from faceeditor.render.interpolate import interpolate_packed
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import direction_from_angles

STAGES = ("normals", "texture", "lighting", "all")
ERODE_PX = 2  # the face mask loses this many crop pixels at its outline (no background mixing)


@dataclass
class Target:
    """One photo prepared for the fit: its face pixels in a crop and the head that covers them."""

    image: torch.Tensor  # (3,H,W) crop of the photo in [0,1]
    mask: torch.Tensor  # (H,W) float: face skin pixels the loss sees
    pix: torch.Tensor  # (N,) flat crop pixels of the surface points
    surface: Surface  # the points (vis_geo updated during the fit)
    verts_cam: torch.Tensor  # (V,3) the fitted head in the camera frame (shadow maps)
    faces: torch.Tensor  # (F',3) the rendered triangles


def surface_points(model: FaceModel, state: FaceState, face_ids: torch.Tensor, face: torch.Tensor,
                   bary: torch.Tensor, verts_model: torch.Tensor | None = None,
                   verts_cam: torch.Tensor | None = None) -> Surface:
    """The :class:`Surface` at rasterized fragments (``face`` indexes ``face_ids``) of the fitted head."""
    vm = verts_model if verts_model is not None else model.vertices(
        torch.as_tensor(np.asarray(state.identity), dtype=torch.float32)[None],
        torch.as_tensor(np.asarray(state.expression), dtype=torch.float32)[None])
    R = torch.as_tensor(np.asarray(state.rotation), dtype=torch.float32)
    vc = verts_cam if verts_cam is not None else transform(
        vm, R[None], torch.as_tensor(np.asarray(state.translation), dtype=torch.float32)[None])
    tri = model.faces[face_ids]
    uv, uv_faces = atlas_uvs(model)
    zero = torch.zeros_like(face)
    nm = vertex_normals(vm, model.faces)
    return Surface(face_tile_uv(interpolate_packed(uv, uv_faces[face_ids], face, bary, zero)),
                   interpolate_packed(vm[0], tri, face, bary, zero),
                   F.normalize(interpolate_packed(nm[0], tri, face, bary, zero), dim=-1), R,
                   interpolate_packed(vc[0], tri, face, bary, zero))


@torch.no_grad()
def prepare(photo: np.ndarray, state: FaceState, model: FaceModel, crop: int) -> Target:
    """The fit's view of one photo: a ``crop``-pixel square around the face (:func:`crop_camera`)."""
    cam, box = crop_camera(state, crop)
    image = crop_photo(photo, box, crop)
    face_ids = render_face_ids(model)
    vm = model.vertices(torch.as_tensor(np.asarray(state.identity), dtype=torch.float32)[None],
                        torch.as_tensor(np.asarray(state.expression), dtype=torch.float32)[None])
    vc = transform(vm, torch.as_tensor(np.asarray(state.rotation), dtype=torch.float32)[None],
                   torch.as_tensor(np.asarray(state.translation), dtype=torch.float32)[None])
    tri = model.faces[face_ids]
    frags = rasterize(cam.project(vc), tri, crop, crop)
    skin = (triangle_classes(model, face_ids) == TRI_SKIN)[frags.face]
    mask = torch.zeros(crop * crop)
    mask[frags.pix[skin]] = 1.0
    mask = -F.max_pool2d(-mask.view(1, 1, crop, crop), 2 * ERODE_PX + 1, 1, ERODE_PX)[0, 0]
    keep = mask.view(-1)[frags.pix] > 0
    s = surface_points(model, state, face_ids, frags.face[keep], frags.bary[keep], vm, vc)
    return Target(image, mask, frags.pix[keep], s, vc[0], tri)


def initial_light(state: FaceState) -> PersonalLight:
    """The photometric fit's SH light as a Blinn-Phong light (:func:`faceeditor.edit.geometry.photo_light`)."""
    lp = photo_light(state)
    col = sh_colour(np.asarray(state.sh))
    col = col / max(float(np.mean(col)), 1e-6)
    d = direction_from_angles(lp.azimuth, lp.elevation).tolist()
    return PersonalLight(tuple(d), tuple(float(c) for c in col), max(lp.ambient, 0.05), max(lp.intensity, 0.05),
                         0.1, 16.0)


def initial_albedo(states: list[FaceState]) -> torch.Tensor | None:
    """(3,T,T) the photos' face-tile albedo, averaged with their texture confidences as weights."""
    acc, wsum = None, None
    for st in states:
        if st.texture is None:
            continue
        T = st.texture.shape[0] // 2
        tex = torch.from_numpy(st.texture[:T, :T].astype(np.float32) / 255.0).permute(2, 0, 1)
        conf = st.texture_confidence
        w = torch.ones(1, T, T) if conf is None else torch.from_numpy(conf[:T, :T].astype(np.float32) / 255.0)[None]
        w = w + 1e-3
        acc = tex * w if acc is None else acc + tex * w
        wsum = w if wsum is None else wsum + w
    return None if acc is None else acc / wsum


def _gauss(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (1,C,H,W)."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    C = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C)


def photo_loss(pred: torch.Tensor, t: Target, sigma: float) -> torch.Tensor:
    """MSE of the packed render ``pred`` (N,3) and the photo on ``t``'s face pixels, both blurred by
    ``sigma`` crop pixels inside the mask (coarse-to-fine; ``sigma < 0.3``: no blur)."""
    H, W = t.mask.shape
    if sigma < 0.3:
        return F.mse_loss(pred, t.image.view(3, -1)[:, t.pix].t())
    dense = torch.zeros(H * W, 3).index_put((t.pix,), pred).t().reshape(1, 3, H, W)
    m = t.mask[None, None]
    norm = _gauss(m, sigma).clamp(min=1e-4)
    a = _gauss(dense * m, sigma) / norm
    b = _gauss(t.image[None] * m, sigma) / norm
    return ((a - b) ** 2 * m).sum() / (3.0 * m.sum())


def change_roughness(model: PersonalModel) -> torch.Tensor:
    """Mean squared texel-to-texel gradient of the diffuse texture's change from its start (the photos'
    albedo): each photo's pixels reach only the few texels under them, so unregularised, texels
    between fit different photos and the texture turns to a mesh of stripes on a new view; a smooth
    change corrects light and colour and leaves the photos' detail."""
    d = model.tex_d - model.tex_d_start
    return (d[..., 1:, :] - d[..., :-1, :]).pow(2).mean() + (d[..., :, 1:] - d[..., :, :-1]).pow(2).mean()


def _stage_params(model: PersonalModel, stage: str, cfg: PersonalConfig) -> list[dict]:
    lights = [model.light_dir, model.light_logc, model.light_logk, model.light_logn]
    groups = [{"params": lights, "lr": cfg.lr}]
    if stage in ("normals", "all"):
        groups.append({"params": [model.tex_n], "lr": cfg.lr})
    if stage in ("texture", "all"):
        groups.append({"params": [model.tex_d, model.tex_s], "lr": cfg.lr})
        if model.tex_p is not None:
            groups.append({"params": [model.tex_p], "lr": cfg.lr})
    if stage in ("lighting", "all"):
        groups.append({"params": list(model.net.parameters()), "lr": cfg.lr_net})
    if stage == "light":  # a new photo of a fitted person: its light alone
        groups = [{"params": lights, "lr": cfg.lr}]
    return groups


def update_shadows(model: PersonalModel, targets: list[Target], indices: list[int], size: int) -> None:
    """Each target's shadow-map visibility of its photo's current light."""
    for t, i in zip(targets, indices):
        l = model.light_tensors(i)["direction"].detach()
        n_cam = t.surface.n_model @ t.surface.rotation.t()
        t.surface.vis_geo = shadow_visibility(t.verts_cam, t.faces, t.surface.x_cam, n_cam, l, size)


def run_stages(model: PersonalModel, targets: list[Target], indices: list[int], plan: list[tuple[str, int]],
               progress: Progress | None = None, log: FitLog | None = None) -> FitLog:
    """Optimise ``model`` on ``targets`` (photo ``indices[k]``'s light for ``targets[k]``) through
    ``plan`` [(stage, steps)], RAdam per stage; ``progress(stage, fraction, loss)`` returning False
    raises :class:`~faceeditor.core.errors.Cancelled`."""
    cfg = model.config
    log = log or FitLog()
    total = max(1, sum(n for _, n in plan))
    step = 0
    t0 = time.perf_counter()
    check_progress(progress, plan[0][0], 0.0, None, task="personalize")
    for stage, steps in plan:
        model.use_net = stage in ("lighting", "all") or (stage == "light" and model.use_net)
        opt = torch.optim.RAdam(_stage_params(model, stage, cfg))
        for k in range(steps):
            if step % cfg.shadow_every == 0:
                update_shadows(model, targets, indices, cfg.shadow_px)
            sigma = cfg.blur_px * max(0.0, 1.0 - step / max(cfg.sharp_at * total, 1.0))
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros(())
            for t, i in zip(targets, indices):
                light = model.light_tensors(i)
                pred = model.shade(t.surface, light, photo=i)
                loss = loss + photo_loss(pred, t, sigma) / len(targets)
                if model.use_net and cfg.net_weight > 0:
                    ao, vr = model.net_terms(t.surface, light["direction"])
                    loss = loss + cfg.net_weight * (((1 - ao) ** 2).mean() + ((1 - vr) ** 2).mean()) / len(targets)
            if stage in ("normals", "all"):
                loss = loss + cfg.normal_weight * model.tex_n.pow(2).mean()
            if stage in ("texture", "all") and cfg.smooth_weight > 0:
                loss = loss + cfg.smooth_weight * change_roughness(model)
            if stage in ("texture", "all") and model.tex_p is not None:
                loss = loss + cfg.detail_weight * model.tex_p.abs().mean()
            loss.backward()
            opt.step()
            step += 1
            log.losses.append(float(loss.detach()))
            log.stages.append(stage)
            check_progress(progress, stage, step / total, log.losses[-1], task="personalize")
    model.use_net = any(s in ("lighting", "all") for s, _ in plan) or model.use_net
    update_shadows(model, targets, indices, cfg.shadow_px)
    log.seconds += time.perf_counter() - t0
    return log


@torch.no_grad()
def psnr_db(model: PersonalModel, t: Target, i: int) -> float:
    """PSNR (dB) of the render of photo ``i`` against it on the target's face pixels."""
    pred = model.shade(t.surface, model.light_tensors(i), photo=i).clamp(0, 1)
    mse = float(F.mse_loss(pred, t.image.view(3, -1)[:, t.pix].t()))
    return 10.0 * float(np.log10(1.0 / max(mse, 1e-10)))


def fit_personal(photos: list[np.ndarray], states: list[FaceState], model: FaceModel,
                 config: PersonalConfig | None = None, progress: Progress | None = None) -> tuple[PersonalModel, FitLog]:
    """A :class:`PersonalModel` fitted to ``photos`` (uint8 HxWx3) of one person with their fitted
    ``states`` (:func:`faceeditor.fit.pipeline.fit_photo`), through the curriculum (:data:`STAGES`)."""
    if not 1 <= len(photos) == len(states):
        raise ValueError("give one fitted state per photo, at least one photo")
    cfg = config or PersonalConfig()
    torch.manual_seed(cfg.seed)
    net = PersonalModel(cfg, len(photos), initial_albedo(states))
    for i, (p, st) in enumerate(zip(photos, states)):
        net.keys[i] = photo_key(p)
        net.set_light(i, initial_light(st))
    targets = [prepare(p, st, model, cfg.crop) for p, st in zip(photos, states)]
    idx = list(range(len(photos)))
    log = run_stages(net, targets, idx, list(zip(STAGES, cfg.steps)), progress)
    log.psnr_db = [psnr_db(net, t, i) for t, i in zip(targets, idx)]
    net.info = {"fit_s": round(log.seconds, 2), "psnr_db": [round(v, 2) for v in log.psnr_db],
                "final_loss": log.losses[-1] if log.losses else None}
    return net, log


def add_photo(net: PersonalModel, photo: np.ndarray, state: FaceState, model: FaceModel, steps: int = 60,
              progress: Progress | None = None) -> int:
    """Fit a new photo's light alone (textures and network kept) and append it; returns its index."""
    i = net.n_photos
    with torch.no_grad():
        for name in ("light_dir", "light_logc", "light_logk", "light_logn"):
            old = getattr(net, name)
            setattr(net, name, torch.nn.Parameter(torch.cat([old.detach(), old.detach()[-1:]], 0)))
        if net.tex_p is not None:  # a photo the fit never saw has no detail of its own
            net.tex_p = torch.nn.Parameter(torch.cat([net.tex_p.detach(), torch.zeros_like(net.tex_p[:1])], 0))
    net.keys.append(photo_key(photo))
    net.set_light(i, initial_light(state))
    t = prepare(photo, state, model, net.config.crop)
    run_stages(net, [t], [i], [("light", steps)], progress)
    return i


def fit_photo_states(photos: list[np.ndarray], model: FaceModel, progress: Progress | None = None) -> list[FaceState]:
    """Each photo's largest face fitted (:func:`faceeditor.fit.pipeline.fit_photo`)."""
    out = []
    for k, p in enumerate(photos):
        check_progress(progress, "fit faces", k / len(photos), None, task="personalize")
        out.append(fit_photo(p, model=model)[0])
    return out


@torch.no_grad()
def render_crop(net: PersonalModel, t: Target, light: dict[str, torch.Tensor], photo: int | None = None) -> np.ndarray:
    """uint8 (H,W,3): the target's crop with its face pixels rendered by ``net`` under ``light``
    (``photo``: the fitted photo the target is, for its own detail map)."""
    s = t.surface
    n_cam = s.n_model @ s.rotation.t()
    s = Surface(s.uv, s.x_model, s.n_model, s.rotation, s.x_cam,
                shadow_visibility(t.verts_cam, t.faces, s.x_cam, n_cam, light["direction"], net.config.shadow_px))
    img = t.image.clone().view(3, -1)
    img[:, t.pix] = net.shade(s, light, photo=photo).clamp(0, 1).t()
    H, W = t.mask.shape
    return (img.view(3, H, W).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def preview(net: PersonalModel, photo: np.ndarray, state: FaceState, model: FaceModel, i: int) -> np.ndarray:
    """uint8 row: photo ``i``'s face crop | its Personal render | relit from the left | from the right."""
    t = prepare(photo, state, model, net.config.crop)
    own = net.light(i)
    tiles = [(t.image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8),
             render_crop(net, t, PersonalModel.as_tensors(own), i)]
    for az in (-55.0, 55.0):
        tiles.append(render_crop(net, t, PersonalModel.as_tensors(own.moved(az, 10.0)), i))
    return np.concatenate(tiles, 1)
