"""Inverting the GAR renderer on a photo (GAR §3.2, eq. 10) and pivotal tuning.

``invert(photo, state)`` -> a copy of the :class:`~faceeditor.fit.state.FaceState` with ``latent``
(z), ``noise`` (eps, one map per G layer), ``renderer_id``, ``renderer_tuning`` (pivotal-tuning
deltas of G) and, when ``optimize_geometry``, refined pose/identity/expression.

1. **Initialisation.** The 3DMM parameters come from the landmark fit (eq. 12, the state); the
   aligned crop and its condition map (normals + regions) are rendered from them; z = V(crop, cond)
   (the renderer-inverting network, eq. 11; ``v_init=False`` starts from z = 0 instead, the
   "w/o initial" ablation of GAR Table 2); noise starts at zero. The light is the state's SH
   (estimated on the crop's skin when the state has no photometric fit).
2. **Eq. 10.** Adam on z, eps and (for the first ``geometry_steps`` steps) a rotation/translation
   offset and identity/expression offsets of the head, through the differentiable condition
   renderer (:func:`faceeditor.neural.render.render_condition`). Loss: pixel MSE + L1 (weighted:
   face, rest of the head, background), a perceptual feature loss, ``w_noise * ||eps||^2``, and
   priors that keep the geometry near the landmark fit (its projected 68 points, the coefficient
   offsets). The feature loss uses the identity network R's encoder and the discriminator D's
   blocks (LPIPS-style), because ImageNet VGG -- the paper's choice -- is not available here.
3. **Pivotal tuning** (Roich et al. 2021, optional: ``pti_steps``): with z, eps and the geometry
   fixed (the pivot), G's Render Blocks at >= ``pti_min_resolution`` px (without the style affine
   weights) are fine-tuned on the photo for a bounded number of steps, with an identity term that
   keeps R's embedding of the face turned by +-``pti_yaw`` degrees near the photo's (so pose edits
   keep the person). The deltas are stored in the state (float16, ~1 MB).

``progress(stage, fraction, loss) -> bool`` is called every step (stages ``init``, ``invert``,
``tune``); returning False, or ``cancel()`` returning True, raises :class:`InversionCancelled`. A
``time_budget_s`` bounds the whole call (phase 1 gets ``phase1_budget`` of it, tuning the rest).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.cli import UserError
from faceeditor.fit.state import FaceState

Progress = Callable[[str, float, "float | None"], bool]


class InversionCancelled(UserError):
    """The user cancelled the inversion (progress callback or ``cancel``)."""


@dataclass
class InvertConfig:
    steps: int = 60  # eq. 10 steps (z, noise, geometry)
    geometry_steps: int = 25  # of which the first ones also move the head (0 = geometry fixed)
    optimize_geometry: bool = True
    pti_steps: int = 70  # pivotal-tuning steps (0 = off)
    pti_min_resolution: int = 16
    v_init: bool = True  # z from V (False: z = 0, the ablation)
    lr_z: float = 0.05
    lr_noise: float = 0.05
    lr_rotation: float = 0.004  # radians
    lr_translation: float = 0.05  # cm
    lr_identity: float = 0.02
    lr_expression: float = 0.01
    lr_pti: float = 1e-3
    w_mse: float = 10.0
    w_l1: float = 1.0
    w_feat_r: float = 1.0
    w_feat_d: float = 0.5
    w_noise: float = 0.05  # eq. 10's lambda_n
    w_landmarks: float = 5.0  # projected 68 points vs the landmark fit's, in eye distances (squared)
    w_coeff: float = 0.05  # squared identity/expression offsets
    w_pti_id: float = 0.5  # identity of the turned face vs the photo during tuning
    pti_yaw: float = 20.0
    weight_face: float = 1.0  # pixel-loss weights: face mask, rest of the head, background
    weight_head: float = 0.5
    weight_background: float = 0.2
    time_budget_s: float | None = 20.0
    phase1_budget: float = 0.45
    bf16: bool = True
    seed: int = 0


@dataclass
class InversionResult:
    """Diagnostics of one inversion (also stored in ``state.fit_info['inversion']``)."""

    psnr_db: float  # face mask, after everything
    psnr_db_init: float  # face mask, at the initial z (V or 0), zero noise
    psnr_db_phase1: float
    loss_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    pti_steps: int = 0


def _weights(cond: torch.Tensor, cfg: InvertConfig, valid: torch.Tensor | None) -> torch.Tensor:
    from faceeditor.neural.gar import face_mask, head_mask

    face, head = face_mask(cond), head_mask(cond)
    w = cfg.weight_background + (cfg.weight_head - cfg.weight_background) * head + \
        (cfg.weight_face - cfg.weight_head) * face
    return w if valid is None else w * valid


def _skin_sh(image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """SH (9,3) of the crop's skin (eroded), as the dataset estimated it."""
    from faceeditor.fit.photometric import estimate_sh

    skin = (cond[0, 3] > 0.5).float()
    skin = (-F.max_pool2d(-skin[None, None], 3, 1, 1))[0, 0] > 0
    if int(skin.sum()) < 50:
        from faceeditor.render.sh import neutral_sh

        return neutral_sh(0.9)
    sh, _ = estimate_sh(image[0].float().cpu(), cond[0, :3].float().cpu(), skin.cpu())
    return sh


def _has_photometric_light(state: FaceState) -> bool:
    return "albedo_rgb" in (state.fit_info or {})


def invert(photo: np.ndarray, state: FaceState, model=None, config: InvertConfig | None = None, nets=None,
           progress: Progress | None = None, cancel: Callable[[], bool] | None = None,
           return_result: bool = False):
    """Invert G on ``photo`` (uint8 HxWx3) for the face of ``state``; returns the new state (and an
    :class:`InversionResult` with ``return_result``)."""
    from faceeditor.morphable.pose import transform
    from faceeditor.neural import losses as L
    from faceeditor.neural.gar import face_mask, shading_map
    from faceeditor.neural.regressor import project_points
    from faceeditor.neural.render import crop_photo, load_gar, render_condition, tuning_deltas

    cfg = config or InvertConfig()
    t0 = time.perf_counter()
    if model is None:
        from faceeditor.morphable import load_face_model

        model = load_face_model()
    nets = nets or load_gar()
    G, V, D, dev = nets.G, nets.V, nets.D, nets.device
    R = _identity_net(dev)
    budget = cfg.time_budget_s if cfg.time_budget_s and cfg.time_budget_s > 0 else math.inf
    gen = torch.Generator().manual_seed(cfg.seed)

    def check(stage: str, fraction: float, loss: float | None = None) -> None:
        if cancel is not None and cancel():
            raise InversionCancelled(f"inversion cancelled during {stage}")
        if progress is not None and progress(stage, fraction, loss) is False:
            raise InversionCancelled(f"inversion cancelled during {stage}")

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    check("init", 0.0)
    target, view = crop_photo(photo, state, nets.size)
    target = target.to(dev).contiguous(memory_format=torch.channels_last)
    S = nets.size
    from faceeditor.neural.data import valid_mask
    from faceeditor.neural.align import scale_matrix

    valid = torch.from_numpy(valid_mask(scale_matrix(view.matrix, 256.0 / S), np.asarray(state.image_size), S))
    valid = valid[None, None].float().to(dev)
    # geometry in the crop frame (Q R, Q t) as base + offsets
    Q = torch.as_tensor(view.roll, dtype=torch.float32, device=dev)
    R0 = Q @ torch.as_tensor(np.asarray(state.rotation, np.float32), device=dev)
    t0c = Q @ torch.as_tensor(np.asarray(state.translation, np.float32), device=dev)
    ident0 = torch.as_tensor(np.asarray(state.identity, np.float32), device=dev)[None]
    expr0 = torch.as_tensor(np.asarray(state.expression, np.float32), device=dev)[None]
    d_rot = torch.zeros(1, 3, device=dev, requires_grad=True)
    d_t = torch.zeros(1, 3, device=dev, requires_grad=True)
    d_id = torch.zeros_like(ident0, requires_grad=True)
    d_ex = torch.zeros_like(expr0, requires_grad=True)
    cam = view.camera
    fparams = {"focal": torch.tensor([float(cam.focal_px)], device=dev),
               "principal": torch.tensor([cam.principal], device=dev, dtype=torch.float32)}

    def geometry(with_grad: bool):
        ctx = torch.enable_grad() if with_grad else torch.no_grad()
        with ctx:
            Rm = _axis_angle(d_rot) @ R0[None]
            t = t0c[None] + d_t
            ident, expr = ident0 + d_id, (expr0 + d_ex).clamp(0, 1)
            verts = transform(model.vertices(ident, expr), Rm, t)
            cond, region = render_condition(model, verts, cam)
            lm = project_points(model, {"rotation": Rm, "translation": t, "identity": ident, "expression": expr,
                                        **fparams}, index=model.landmarks68)
        return cond.contiguous(memory_format=torch.channels_last), lm

    cond, lm_init = geometry(False)
    lm_init = lm_init.detach()
    if _has_photometric_light(state):
        sh_crop = view.sh(state.sh).to(dev)
        sh_photo = np.asarray(state.sh, np.float32).reshape(9, 3)
    else:
        sh_crop = _skin_sh(target, cond).to(dev)
        from faceeditor.neural.regressor import relabel_sh

        sh_photo = relabel_sh(sh_crop.cpu().double().numpy(), view.roll).astype(np.float32)
    sh_b = sh_crop[None]
    shading = shading_map(cond, sh_b)
    weight = _weights(cond, cfg, valid)
    fmask = face_mask(cond)
    with torch.no_grad(), autocast():
        z_init = V(target, cond, return_features=False).float() if cfg.v_init else \
            torch.zeros(1, G.z_dim, device=dev)
        feats_r_t = [f.detach() for f in L.r_features(R, target)] if R is not None else None
        feats_d_t = [f.detach() for f in D(target, cond, shading, return_features=True)[1]] if D is not None else None
        emb_t = L.embed(R, target) if R is not None else None
        img0 = G(cond, shading, z_init, noise="zero")
    psnr_init = float(L.psnr_db(img0, target, fmask)[0])
    z = z_init.clone().requires_grad_(True)
    noise = [torch.zeros(1, 1, h, w, device=dev, requires_grad=True) for h, w in G.noise_shapes()]

    def image_loss(img, cond_, shading_) -> tuple[torch.Tensor, dict]:
        lmse = L.masked_mse(img, target, weight)
        ll1 = L.masked_l1(img, target, weight)
        loss = cfg.w_mse * lmse + cfg.w_l1 * ll1
        parts = {"mse": float(lmse.detach())}
        if feats_r_t is not None and cfg.w_feat_r > 0:
            lf = L.feature_distance(L.r_features(R, img), feats_r_t)
            loss = loss + cfg.w_feat_r * lf
        if feats_d_t is not None and cfg.w_feat_d > 0:
            lf = L.feature_distance(D(img, cond_, shading_, return_features=True)[1], feats_d_t)
            loss = loss + cfg.w_feat_d * lf
        return loss, parts

    # ------------------------------------------------------------------ phase 1: eq. 10
    groups = [{"params": [z], "lr": cfg.lr_z}, {"params": noise, "lr": cfg.lr_noise}]
    geo_steps = cfg.geometry_steps if cfg.optimize_geometry else 0
    if geo_steps > 0:
        groups += [{"params": [d_rot], "lr": cfg.lr_rotation}, {"params": [d_t], "lr": cfg.lr_translation},
                   {"params": [d_id], "lr": cfg.lr_identity}, {"params": [d_ex], "lr": cfg.lr_expression}]
    opt = torch.optim.Adam(groups, betas=(0.9, 0.99))
    curve: list[float] = []
    deadline1 = t0 + budget * cfg.phase1_budget if cfg.pti_steps > 0 else t0 + budget
    step = 0
    eye = L.EYE_FRACTION * S
    for step in range(cfg.steps):
        geo = step < geo_steps
        if geo:
            cond, lm = geometry(True)
            shading = shading_map(cond, sh_b)
        with autocast():
            img = G(cond, shading, z, noise=noise)
            loss, parts = image_loss(img, cond, shading)
            loss = loss + cfg.w_noise * L.noise_regularizer(noise)
            if geo:
                loss = loss + cfg.w_landmarks * ((lm - lm_init).norm(dim=-1) / eye).square().mean() \
                    + cfg.w_coeff * (d_id.square().mean() + d_ex.square().sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if geo and step == geo_steps - 1:  # geometry frozen from here on: its final condition
            cond, _ = geometry(False)
            shading = shading_map(cond, sh_b)
            weight = _weights(cond, cfg, valid)
            fmask = face_mask(cond)
        curve.append(round(float(loss.detach()), 5))
        check("invert", (step + 1) / max(1, cfg.steps), curve[-1])
        if time.perf_counter() > deadline1:
            break
    if geo_steps > 0 and step < geo_steps - 1:
        cond, _ = geometry(False)
        shading = shading_map(cond, sh_b)
        weight = _weights(cond, cfg, valid)
        fmask = face_mask(cond)
    z = z.detach()
    noise = [n.detach() for n in noise]
    with torch.no_grad(), autocast():
        img1 = G(cond, shading, z, noise=noise)
    psnr1 = float(L.psnr_db(img1, target, fmask)[0])
    n1 = step + 1
    # ------------------------------------------------------------------ phase 2: pivotal tuning
    tuning: dict[str, np.ndarray] = {}
    Gt = G
    n2 = 0
    if cfg.pti_steps > 0 and time.perf_counter() < t0 + budget:
        Gt = copy.deepcopy(G)
        names = [n for n, _ in Gt.tunable_parameters(cfg.pti_min_resolution) if "affine.weight" not in n]
        params = dict(Gt.named_parameters())
        for p in Gt.parameters():
            p.requires_grad_(False)
        for n in names:
            params[n].requires_grad_(True)
        opt = torch.optim.Adam([params[n] for n in names], lr=cfg.lr_pti, betas=(0.9, 0.99))
        turned = []
        if cfg.w_pti_id > 0 and R is not None and cfg.pti_yaw:
            for sgn in (1.0, -1.0):
                turned.append(_turned_condition(model, state, view, d_rot, d_t, d_id, d_ex, R0, t0c, ident0, expr0,
                                                sgn * cfg.pti_yaw, sh_b))
        w = Gt.mapping(z)
        for k in range(cfg.pti_steps):
            with autocast():
                img = Gt(cond, shading, w=w, noise=noise)
                loss, parts = image_loss(img, cond, shading)
                if turned:
                    c2, s2 = turned[k % len(turned)]
                    img2 = Gt(c2, s2, w=w, noise=noise)
                    loss = loss + cfg.w_pti_id * (L.embed(R, img2) - emb_t).norm(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n2 = k + 1
            curve.append(round(float(loss.detach()), 5))
            check("tune", (k + 1) / cfg.pti_steps, curve[-1])
            if time.perf_counter() > t0 + budget:
                break
        Gt.eval()
        for p in Gt.parameters():
            p.requires_grad_(False)
        tuning = tuning_deltas(Gt, G, names)
    with torch.no_grad(), autocast():
        final = Gt(cond, shading, z, noise=noise)
    psnr = float(L.psnr_db(final, target, fmask)[0])
    seconds = time.perf_counter() - t0
    out = state.copy()
    if geo_steps > 0:
        with torch.no_grad():
            Rm = (_axis_angle(d_rot) @ R0[None])[0]
            out.rotation = (Q.t() @ Rm).cpu().numpy().astype(np.float32)
            out.translation = (Q.t() @ (t0c + d_t[0])).cpu().numpy().astype(np.float32)
            out.identity = (ident0 + d_id)[0].cpu().numpy().astype(np.float32)
            out.expression = (expr0 + d_ex).clamp(0, 1)[0].cpu().numpy().astype(np.float32)
    if not _has_photometric_light(state):
        out.sh = sh_photo
    out.latent = z[0].cpu().numpy().astype(np.float32)
    out.noise = [n[0, 0].cpu().numpy().astype(np.float16) for n in noise]
    out.renderer_id = nets.renderer_id
    out.renderer_tuning = tuning
    res = InversionResult(round(psnr, 3), round(psnr_init, 3), round(psnr1, 3), curve, round(seconds, 3), n1, n2)
    out.fit_info = dict(out.fit_info, inversion={"psnr_db": res.psnr_db, "psnr_db_init": res.psnr_db_init,
                                                 "psnr_db_phase1": res.psnr_db_phase1, "steps": n1,
                                                 "pti_steps": n2, "v_init": cfg.v_init})
    out.timings_ms = dict(out.timings_ms, invert=seconds * 1000.0)
    check("done", 1.0, curve[-1] if curve else None)
    return (out, res) if return_result else out


def _axis_angle(v: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (B,3,3) of axis-angle vectors (B,3) (Rodrigues; smooth at 0)."""
    theta = v.norm(dim=1, keepdim=True).clamp(min=1e-8)
    k = v / theta
    K = torch.zeros(v.shape[0], 3, 3, device=v.device, dtype=v.dtype)
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(1, 2)
    s, c = torch.sin(theta)[:, :, None], torch.cos(theta)[:, :, None]
    eye = torch.eye(3, device=v.device, dtype=v.dtype)[None]
    return eye + s * K + (1 - c) * (K @ K)


@torch.no_grad()
def _turned_condition(model, state, view, d_rot, d_t, d_id, d_ex, R0, t0c, ident0, expr0, yaw: float, sh_b):
    """Condition and shading of the (optimised) head turned by ``yaw`` about its centre, in the crop frame."""
    from faceeditor.morphable.pose import euler_to_matrix, transform
    from faceeditor.neural.gar import shading_map
    from faceeditor.neural.render import render_condition

    Rm = _axis_angle(d_rot) @ R0[None]
    t = t0c[None] + d_t
    Ro = euler_to_matrix(yaw, 0.0, 0.0).to(Rm)
    verts = transform(model.vertices(ident0 + d_id, (expr0 + d_ex).clamp(0, 1)), Ro @ Rm, t)
    cond, _ = render_condition(model, verts, view.camera)
    cond = cond.contiguous(memory_format=torch.channels_last)
    return cond, shading_map(cond, sh_b)


def _identity_net(device):
    """R (frozen) for the feature and identity terms, or None when it is not trained yet."""
    from faceeditor.neural import checkpoints

    if not checkpoints.available("identity_net"):
        return None
    R = checkpoints.load_network("identity_net", device)
    for p in R.parameters():
        p.requires_grad_(False)
    return R
