"""Inverting the GAR renderer on a photo (GAR §3.2, eq. 10) and pivotal tuning.

``invert(photo, state)`` -> a copy of the :class:`~faceeditor.core.state.FaceState` with
``state.neural`` (:class:`~faceeditor.core.state.NeuralCode`: z, eps (one map per G layer), the
renderer id and pivotal-tuning deltas of G) and, when ``optimize_geometry``, refined
pose/identity/expression. The steps:

1. **Initialisation** (:meth:`_Inversion.initial_code`). The 3DMM parameters come from the landmark
   fit (eq. 12, the state); the aligned crop (:mod:`faceeditor.neural.crop`) and its condition map
   (normals + regions) are rendered from them; z = V(crop, cond) (the renderer-inverting network,
   eq. 11; ``v_init=False`` is the "w/o initial" ablation of GAR Table 2: z starts at 0, or at
   the paper's "random initialization" ``z_init_std * N(0, I)``); noise starts at zero (or, with
   ``noise_init_std``, at random maps). Every random draw comes from one ``torch.Generator``
   seeded with ``InvertConfig.seed``; with the defaults there is none (V's z, zero noise). The
   light is the state's SH (estimated on the crop's skin, :func:`skin_sh`, when the state has no
   photometric fit).
2. **Eq. 10** (:meth:`_Inversion.fit_code`). Adam on z, eps and (for the first ``geometry_steps``
   steps) the head's offsets (:class:`~faceeditor.neural.crop_head.CropHead`), through the
   differentiable condition renderer (:func:`faceeditor.neural.condition.render_condition`).
   Loss (:class:`_ImageLoss`): pixel MSE + L1 (weighted: face, rest of the head, background), a
   perceptual feature loss, ``w_noise * ||eps||^2``, and priors that keep the geometry near the
   landmark fit (its projected 68 points, the coefficient offsets). The feature loss uses the
   identity network R's encoder and the discriminator D's blocks (LPIPS-style), because ImageNet
   VGG -- the paper's choice -- is not available here.
3. **Pivotal tuning** (:meth:`_Inversion.tune`; Roich et al. 2021, optional: ``pti_steps``): with
   z, eps and the geometry fixed (the pivot), G's Render Blocks at >= ``pti_min_resolution`` px
   (without the style affine weights) are fine-tuned on the photo for a bounded number of steps,
   with an identity term that keeps R's embedding of the face turned by +-``pti_yaw`` degrees
   near the photo's (so pose edits keep the person). The deltas are stored in the state
   (float16, ~1 MB; :mod:`faceeditor.neural.tuning`).

``progress(stage, fraction, loss) -> bool`` is called every step (stages ``init``, ``invert``,
``tune``, ``done``); returning False, or ``cancel()`` returning True, raises
:class:`~faceeditor.core.errors.Cancelled`. A ``time_budget_s`` bounds the whole call (phase 1
gets ``phase1_budget`` of it, tuning the rest).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.progress import CancelCheck, Progress, check_cancel, check_progress
from faceeditor.core.state import FaceState, NeuralCode
from faceeditor.fit.sh_light import estimate_sh
from faceeditor.morphable import load_face_model
from faceeditor.morphable.model import FaceModel
from faceeditor.neural import losses as L
from faceeditor.neural.align import scale_matrix
from faceeditor.neural.crop import TEMPLATE_PX, CropView, crop_photo
from faceeditor.neural.crop_head import CropHead
from faceeditor.neural.data import valid_mask
from faceeditor.neural.gar import face_mask, head_mask, normals_of, region_of, shading_map
from faceeditor.neural.gar_nets import GarNets, load_gar
from faceeditor.neural.labels import SKIN
from faceeditor.neural.layers import autocast
from faceeditor.neural.regressor import relabel_sh
from faceeditor.neural.tuning import tuning_deltas
from faceeditor.render.sh import neutral_sh


@dataclass
class InvertConfig:
    steps: int = 60  # eq. 10 steps (z, noise, geometry)
    geometry_steps: int = 25  # of which the first ones also move the head (0 = geometry fixed)
    optimize_geometry: bool = True
    pti_steps: int = 70  # pivotal-tuning steps (0 = off)
    pti_min_resolution: int = 16
    v_init: bool = True  # z from V (False: the ablation, z from z_init_std)
    z_init_std: float = 0.0  # without V: z = 0, or z_init_std * N(0, I) drawn with `seed` (GAR's random init)
    noise_init_std: float = 0.0  # initial noise maps: 0 = zeros, else noise_init_std * N(0, 1) drawn with `seed`
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
    seed: int = 0  # every random draw of the inversion (random z, random initial noise)

    @property
    def head_steps(self) -> int:
        """Eq. 10 steps that also move the head (0 when the geometry is fixed)."""
        return self.geometry_steps if self.optimize_geometry else 0


@dataclass
class InversionResult:
    """Diagnostics of one inversion (also stored in ``state.fit_info['inversion']``)."""

    psnr_db: float  # face mask, after everything
    psnr_db_init: float  # face mask, at the initial z (V, 0 or random), zero noise
    psnr_db_phase1: float
    loss_curve: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    pti_steps: int = 0


@dataclass
class _Clock:
    """The time budget: the call's start, its end and the end of phase 1 (perf_counter seconds)."""

    start: float
    end: float
    phase1_end: float

    @classmethod
    def starting(cls, start: float, cfg: InvertConfig) -> _Clock:
        budget = cfg.time_budget_s if cfg.time_budget_s and cfg.time_budget_s > 0 else math.inf
        return cls(start, start + budget, start + budget * cfg.phase1_budget if cfg.pti_steps > 0 else start + budget)

    @staticmethod
    def past(deadline: float) -> bool:
        return time.perf_counter() > deadline


@dataclass
class _Reporter:
    """Progress and cancellation of one inversion."""

    progress: Progress | None
    cancel: CancelCheck | None

    def __call__(self, stage: str, fraction: float, loss: float | None = None) -> None:
        check_cancel(self.cancel, task=f"inversion ({stage})")
        check_progress(self.progress, stage, fraction, loss, task="inversion")


@dataclass
class _Condition:
    """G's input for one geometry and how the pixel loss weighs it."""

    cond: torch.Tensor  # (1,8,S,S) channels-last
    shading: torch.Tensor  # (1,3,S,S)
    weight: torch.Tensor  # (1,1,S,S) pixel-loss weights (0 outside the photo)
    face: torch.Tensor  # (1,1,S,S) face mask (PSNR)

    @classmethod
    def of(cls, cond: torch.Tensor, sh: torch.Tensor, cfg: InvertConfig, valid: torch.Tensor | None) -> _Condition:
        return cls(cond, shading_map(cond, sh), pixel_weights(cond, cfg, valid), face_mask(cond))


@dataclass
class _Code:
    """What eq. 10 optimises besides the geometry: z (1,z_dim) and the noise maps (1,1,H,W)."""

    z: torch.Tensor
    noise: list[torch.Tensor]

    def detached(self) -> _Code:
        return _Code(self.z.detach(), [n.detach() for n in self.noise])


def pixel_weights(cond: torch.Tensor, cfg: InvertConfig, valid: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel loss weights: face, rest of the head, background (times the valid-pixel mask)."""
    face, head = face_mask(cond), head_mask(cond)
    w = cfg.weight_background + (cfg.weight_head - cfg.weight_background) * head + \
        (cfg.weight_face - cfg.weight_head) * face
    return w if valid is None else w * valid


def skin_sh(image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """SH (9,3) of the crop's skin (eroded), as the dataset estimated it."""
    skin = (region_of(cond, SKIN)[0, 0] > 0.5).float()
    skin = (-F.max_pool2d(-skin[None, None], 3, 1, 1))[0, 0] > 0
    if int(skin.sum()) < 50:
        return neutral_sh(0.9)
    sh, _ = estimate_sh(image[0].float().cpu(), normals_of(cond)[0].float().cpu(), skin.cpu())
    return sh


def _has_photometric_light(state: FaceState) -> bool:
    return "albedo_rgb" in (state.fit_info or {})


class _ImageLoss:
    """Eq. 10's image terms against the photo crop: weighted MSE + L1 and the feature distances in
    R's encoder and D's blocks; and the identity term of pivotal tuning."""

    def __init__(self, cfg: InvertConfig, target: torch.Tensor, R: torch.nn.Module | None,
                 D: torch.nn.Module | None, c: _Condition) -> None:
        self.cfg, self.target, self.R, self.D = cfg, target, R, D
        with torch.no_grad(), autocast(target.device, cfg.bf16):
            self.r_target = [f.detach() for f in L.r_features(R, target)] if R is not None else None
            self.d_target = [f.detach() for f in D(target, c.cond, c.shading, return_features=True)[1]] \
                if D is not None else None
            self.embedding = L.embed(R, target) if R is not None else None

    def __call__(self, img: torch.Tensor, cond: torch.Tensor, shading: torch.Tensor,
                 weight: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        loss = cfg.w_mse * L.masked_mse(img, self.target, weight) + cfg.w_l1 * L.masked_l1(img, self.target, weight)
        if self.r_target is not None and cfg.w_feat_r > 0:
            loss = loss + cfg.w_feat_r * L.feature_distance(L.r_features(self.R, img), self.r_target)
        if self.d_target is not None and cfg.w_feat_d > 0:
            loss = loss + cfg.w_feat_d * L.feature_distance(self.D(img, cond, shading, return_features=True)[1],
                                                            self.d_target)
        return loss

    def identity(self, img: torch.Tensor) -> torch.Tensor:
        """Distance of R's embedding of ``img`` to the photo's."""
        return (L.embed(self.R, img) - self.embedding).norm(dim=1).mean()


class _Inversion:
    """One inversion's shared context; its methods are the steps (see the module docstring)."""

    def __init__(self, photo: np.ndarray, state: FaceState, model: FaceModel, cfg: InvertConfig, nets: GarNets,
                 report: _Reporter, clock: _Clock) -> None:
        self.cfg, self.nets, self.state, self.report, self.clock = cfg, nets, state, report, clock
        self.dev = dev = nets.device
        self.R = nets.identity_net()
        report("init", 0.0)
        target, self.view = crop_photo(photo, state, nets.size)
        self.target = target.to(dev).contiguous(memory_format=torch.channels_last)
        self.valid = self._valid_pixels(self.view, state, nets.size).to(dev)
        self.head = CropHead(model, state, self.view, dev)
        cond, lm = self.head.render(False)
        self.lm_init = lm.detach()
        self.sh, self.photo_sh = self._light(cond)
        self.c = _Condition.of(cond, self.sh, cfg, self.valid)
        self.loss = _ImageLoss(cfg, self.target, self.R, nets.D, self.c)
        self.curve: list[float] = []

    @staticmethod
    def _valid_pixels(view: CropView, state: FaceState, size: int) -> torch.Tensor:
        """(1,1,S,S) 1 where the crop pixel's centre lies inside the photo."""
        align = scale_matrix(view.matrix, float(TEMPLATE_PX) / size)
        return torch.from_numpy(valid_mask(align, np.asarray(state.image_size), size))[None, None].float()

    def _light(self, cond: torch.Tensor) -> tuple[torch.Tensor, np.ndarray | None]:
        """The SH light (1,9,3) in the crop frame, and the photo-frame SH to store when it was estimated here."""
        if _has_photometric_light(self.state):
            return self.view.sh(self.state.sh).to(self.dev)[None], None
        sh_crop = skin_sh(self.target, cond).to(self.dev)
        return sh_crop[None], relabel_sh(sh_crop.cpu().double().numpy(), self.view.roll).astype(np.float32)

    def render(self, G: torch.nn.Module, code: _Code, noise: list[torch.Tensor] | str | None = None) -> torch.Tensor:
        """G's image of the current condition (no gradient)."""
        with torch.no_grad(), autocast(self.dev, self.cfg.bf16):
            return G(self.c.cond, self.c.shading, code.z, noise=code.noise if noise is None else noise)

    def psnr(self, img: torch.Tensor) -> float:
        return float(L.psnr_db(img, self.target, self.c.face)[0])

    def initial_code(self) -> tuple[_Code, float]:
        """z from V (else 0 or a random draw) and the initial noise maps; the face PSNR at that z
        with zero noise. Every random draw comes from a generator seeded with ``cfg.seed``."""
        cfg, G, dev = self.cfg, self.nets.G, self.dev
        gen = torch.Generator().manual_seed(cfg.seed)
        if cfg.v_init:
            with torch.no_grad(), autocast(dev, cfg.bf16):
                z = self.nets.V(self.target, self.c.cond, return_features=False).float()
        elif cfg.z_init_std > 0:
            z = (cfg.z_init_std * torch.randn(1, G.z_dim, generator=gen)).to(dev)
        else:
            z = torch.zeros(1, G.z_dim, device=dev)
        if cfg.noise_init_std > 0:
            noise = [(cfg.noise_init_std * torch.randn(1, 1, h, w, generator=gen)).to(dev) for h, w in G.noise_shapes()]
        else:
            noise = [torch.zeros(1, 1, h, w, device=dev) for h, w in G.noise_shapes()]
        psnr = self.psnr(self.render(G, _Code(z, noise), noise="zero"))
        return _Code(z.clone().requires_grad_(True), [n.requires_grad_(True) for n in noise]), psnr

    def fit_code(self, code: _Code) -> int:
        """Eq. 10: Adam on z, eps and, for the first ``cfg.head_steps`` steps, the head's offsets.
        Leaves the final geometry's condition in ``self.c``; returns the number of steps run."""
        cfg, G, head = self.cfg, self.nets.G, self.head
        groups = [{"params": [code.z], "lr": cfg.lr_z}, {"params": code.noise, "lr": cfg.lr_noise}]
        head_steps = cfg.head_steps
        if head_steps > 0:
            groups += head.param_groups(cfg.lr_rotation, cfg.lr_translation, cfg.lr_identity, cfg.lr_expression)
        opt = torch.optim.Adam(groups, betas=(0.9, 0.99))
        eye = L.EYE_FRACTION * self.nets.size
        step = 0
        for step in range(cfg.steps):
            moves_head = step < head_steps
            cond, shading = self.c.cond, self.c.shading
            if moves_head:
                cond, lm = head.render(True)
                shading = shading_map(cond, self.sh)
            with autocast(self.dev, cfg.bf16):
                img = G(cond, shading, code.z, noise=code.noise)
                loss = self.loss(img, cond, shading, self.c.weight) + cfg.w_noise * L.noise_regularizer(code.noise)
                if moves_head:
                    loss = loss + cfg.w_landmarks * ((lm - self.lm_init).norm(dim=-1) / eye).square().mean() \
                        + cfg.w_coeff * head.shape_penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if moves_head and step == head_steps - 1:  # geometry frozen from here on: its final condition
                self.freeze_head()
            self.curve.append(round(float(loss.detach()), 5))
            self.report("invert", (step + 1) / max(1, cfg.steps), self.curve[-1])
            if self.clock.past(self.clock.phase1_end):
                break
        if head_steps > 0 and step < head_steps - 1:
            self.freeze_head()
        return step + 1

    def freeze_head(self) -> None:
        """The condition of the head as it is now, for the rest of the inversion."""
        self.c = _Condition.of(self.head.render(False)[0], self.sh, self.cfg, self.valid)

    def tune(self, code: _Code) -> tuple[torch.nn.Module, dict[str, np.ndarray], int]:
        """Pivotal tuning of a copy of G around ``code``: (tuned G, its float16 deltas, steps run)."""
        cfg, G = self.cfg, self.nets.G
        Gt = copy.deepcopy(G)
        names = [n for n, _ in Gt.tunable_parameters(cfg.pti_min_resolution) if "affine.weight" not in n]
        params = dict(Gt.named_parameters())
        for p in Gt.parameters():
            p.requires_grad_(False)
        for n in names:
            params[n].requires_grad_(True)
        opt = torch.optim.Adam([params[n] for n in names], lr=cfg.lr_pti, betas=(0.9, 0.99))
        turned = []
        if cfg.w_pti_id > 0 and self.R is not None and cfg.pti_yaw:
            turned = [self.head.turned(sign * cfg.pti_yaw, self.sh) for sign in (1.0, -1.0)]
        w = Gt.mapping(code.z)
        steps = 0
        for k in range(cfg.pti_steps):
            with autocast(self.dev, cfg.bf16):
                img = Gt(self.c.cond, self.c.shading, w=w, noise=code.noise)
                loss = self.loss(img, self.c.cond, self.c.shading, self.c.weight)
                if turned:
                    cond2, shading2 = turned[k % len(turned)]
                    loss = loss + cfg.w_pti_id * self.loss.identity(Gt(cond2, shading2, w=w, noise=code.noise))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps = k + 1
            self.curve.append(round(float(loss.detach()), 5))
            self.report("tune", (k + 1) / cfg.pti_steps, self.curve[-1])
            if self.clock.past(self.clock.end):
                break
        Gt.eval()
        for p in Gt.parameters():
            p.requires_grad_(False)
        return Gt, tuning_deltas(Gt, G, names), steps

    def inverted_state(self, code: _Code, tuning: dict[str, np.ndarray], res: InversionResult,
                       seconds: float) -> FaceState:
        """A copy of the input state with the code, the tuning, the refined head and the diagnostics."""
        out = self.state.copy()
        if self.cfg.head_steps > 0:
            self.head.write(out)
        if self.photo_sh is not None:
            out.sh = self.photo_sh
        out.neural = NeuralCode(latent=code.z[0].cpu().numpy().astype(np.float32),
                                noise=[n[0, 0].cpu().numpy().astype(np.float16) for n in code.noise],
                                renderer_id=self.nets.renderer_id, tuning=tuning)
        out.fit_info = dict(out.fit_info, inversion={"psnr_db": res.psnr_db, "psnr_db_init": res.psnr_db_init,
                                                     "psnr_db_phase1": res.psnr_db_phase1, "steps": res.steps,
                                                     "pti_steps": res.pti_steps, "v_init": self.cfg.v_init})
        out.timings_ms = dict(out.timings_ms, invert=seconds * 1000.0)
        return out


def invert(photo: np.ndarray, state: FaceState, model: FaceModel | None = None, config: InvertConfig | None = None,
           nets: GarNets | None = None, progress: Progress | None = None, cancel: CancelCheck | None = None,
           return_result: bool = False):
    """Invert G on ``photo`` (uint8 HxWx3) for the face of ``state``; returns the new state (and an
    :class:`InversionResult` with ``return_result``). ``nets``: the loaded renderer (loaded from
    ``resources/`` when not given)."""
    cfg = config or InvertConfig()
    start = time.perf_counter()
    model = model if model is not None else load_face_model()
    nets = nets or load_gar()
    clock = _Clock.starting(start, cfg)
    inv = _Inversion(photo, state, model, cfg, nets, _Reporter(progress, cancel), clock)
    code, psnr_init = inv.initial_code()
    steps = inv.fit_code(code)
    code = code.detached()
    psnr_phase1 = inv.psnr(inv.render(nets.G, code))
    G, tuning, pti_steps = nets.G, {}, 0
    if cfg.pti_steps > 0 and time.perf_counter() < clock.end:
        G, tuning, pti_steps = inv.tune(code)
    psnr = inv.psnr(inv.render(G, code))
    seconds = time.perf_counter() - start
    res = InversionResult(round(psnr, 3), round(psnr_init, 3), round(psnr_phase1, 3), inv.curve, round(seconds, 3),
                          steps, pti_steps)
    out = inv.inverted_state(code, tuning, res, seconds)
    inv.report("done", 1.0, inv.curve[-1] if inv.curve else None)
    return (out, res) if return_result else out
