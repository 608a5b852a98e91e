"""One GAR training step (GAR §3): the step's random draws, the G/V step with its losses, the D step.

* **Draws**: a real batch (D's reals and the reconstruction path) and ``fake_batch`` random-z renders
  of dataset geometries; on "aux" steps also eq. 7 pairs (same c, new z) and eq. 8 pairs (same
  identity and z, another pose and expression rendered on the fly), then G's per-layer noise.
* **G/V step** (one G call): non-saturating adversarial loss on the renders (DiffAugment); the
  reconstructions ``G(c, s, M(V(x, c)), noise=0)`` against the photo (L1, D features, adversarial);
  eq. 11 for V; a prior keeping V's codes N(0,I)-like; a penalty on G's unlit residual on the skin;
  on aux steps eq. 6 (N), eq. 7 (FR, pairs and absolute) and eq. 8 (R, pairs and reconstruction).
* **D step**: logistic loss on the reals vs the renders and reconstructions (DiffAugment), lazy R1.

Every random draw comes from the run's generator in a fixed order, so a seed fixes the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from faceeditor.morphable.model import FaceModel
from faceeditor.neural import losses as L
from faceeditor.neural.discriminator import diff_augment
from faceeditor.neural.gar import face_mask, normals_of, region_of, shading_map
from faceeditor.neural.labels import SKIN
from faceeditor.neural.layers import autocast
from faceeditor.neural.regressor import project_points
from trainers.common import JsonLog
from trainers.gar_config import GarConfig
from trainers.gar_data import GarBatch, GarData, GeometryParams, render_conditions
from trainers.gar_nets import AuxNets, GarNets, ema_beta, ema_update, requires_grad

Losses = dict[str, float]  # named loss values of one step, as logged


@dataclass
class GarRun:
    """What every step of a run shares: config, device, data, the face model and the networks."""

    cfg: GarConfig
    dev: torch.device
    rank: int
    world: int
    root: Path | None  # dataset folder (None: the default)
    train: GarData
    val: GarData
    model: FaceModel
    aux: AuxNets
    nets: GarNets
    out: Path
    log: JsonLog

    @property
    def step_images(self) -> int:
        """Real images shown to D per step, over all processes."""
        return self.cfg.batch * self.world


@dataclass
class StepInputs:
    """One step's draws. The rows of ``cond``/``shading``/``z`` are the ``fake_batch`` random-z renders,
    then on aux steps ``n_pair`` eq. 7 pairs (same c, new z) and as many eq. 8 pairs (same z)."""

    real: GarBatch
    cond: torch.Tensor
    shading: torch.Tensor
    z: torch.Tensor
    noise: list[torch.Tensor]
    aux_step: bool
    n_pair: int
    pair_params: GeometryParams | None  # geometry of the first n_pair renders (aux steps)


@dataclass
class StepTimes:
    """Seconds per phase summed over the ``n`` steps since the last log line."""

    data: float = 0.0
    g_fwd: float = 0.0
    g_bwd: float = 0.0
    d: float = 0.0
    n: int = 0

    def milliseconds(self) -> dict[str, float]:
        """``ms_<phase>``: mean milliseconds per step."""
        return {f"ms_{k}": round(1000 * getattr(self, k) / max(self.n, 1), 1) for k in ("data", "g_fwd", "g_bwd", "d")}


@dataclass
class Renders:
    """G's outputs of a step: random-z renders (rows as :class:`StepInputs`) and reconstructions."""

    fake: torch.Tensor
    rec: torch.Tensor


def pick_rows(n_rows: int, n: int, gen: torch.Generator) -> np.ndarray:
    """``n`` random dataset rows (with replacement), sorted."""
    return np.sort(torch.randint(0, n_rows, (n,), generator=gen).numpy())


def augment_for_d(cfg: GarConfig, gen: torch.Generator, x: torch.Tensor, c: torch.Tensor, s: torch.Tensor):
    """D's input: DiffAugment of image, condition and shading alike (when ``aug_p`` > 0)."""
    return diff_augment(x, c, s, gen, cfg.aug_p) if cfg.aug_p > 0 else (x, c, s)


def draw_inputs(run: GarRun, gen: torch.Generator, step: int) -> StepInputs:
    """The real batch, the renders' conditions and latents, and G's noise (draws in a fixed order)."""
    cfg, dev, train = run.cfg, run.dev, run.train
    Bf = Ba = cfg.fake_batch  # renders; on aux steps as many eq. 7 and eq. 8 pairs
    aux_step = bool(run.aux) and step % cfg.aux_every == 0
    real = train.batch(pick_rows(train.n, cfg.batch, gen), dev)
    fi = pick_rows(train.n, Bf, gen)
    fake_c = train.batch(fi, dev)
    cond, shading = fake_c.cond, fake_c.shading
    z = torch.randn(Bf, cfg.z_dim, generator=gen).to(dev)
    n_pair, p_id = 0, None
    if aux_step:
        # eq. 7 pairs: same geometry, new z; eq. 8 pairs: same alpha and z, new beta and theta
        p_id = train.params(fi[:Ba], dev)
        yaw = (torch.rand(Ba, generator=gen) * 2 - 1) * cfg.id_yaw
        pitch = (torch.rand(Ba, generator=gen) * 2 - 1) * cfg.id_yaw * 0.5
        other = train.params(pick_rows(train.n, Ba, gen), dev)["expression"]
        mix = torch.rand(Ba, 1, generator=gen).to(dev)
        cond_id = render_conditions(run.model, p_id, cfg.size, yaw, pitch,
                                    mix * other + (1 - mix) * p_id["expression"])
        cond_id = cond_id.to(dev).contiguous(memory_format=torch.channels_last)
        shade_id = shading_map(cond_id, fake_c.sh[:Ba])
        cond = torch.cat([cond, cond[:Ba], cond_id])
        shading = torch.cat([shading, shading[:Ba], shade_id])
        z = torch.cat([z, torch.randn(Ba, cfg.z_dim, generator=gen).to(dev), z[:Ba]])
        n_pair = Ba
    noise = run.nets.G.make_noise(z.shape[0], "random", gen, dev)
    return StepInputs(real=real, cond=cond, shading=shading, z=z, noise=noise, aux_step=aux_step, n_pair=n_pair,
                      pair_params=p_id)


def generator_losses(run: GarRun, inp: StepInputs, gen: torch.Generator) -> tuple[Renders, torch.Tensor, Losses]:
    """G's and V's loss of the step (run under autocast, D frozen)."""
    cfg, D, real = run.cfg, run.nets.D, inp.real
    o = run.nets.gv_run(inp.cond, inp.shading, inp.z, real.image, real.cond, real.shading, inp.noise)
    nb, z_rec = o["nb"], o["z_rec"]
    img = o["image"]
    fake, rec = img[:nb], img[nb:]
    x, c, s = augment_for_d(cfg, gen, fake, inp.cond, inp.shading)
    l_adv = L.g_nonsaturating(D(x, c, s))
    # reconstructions: D unaugmented, so its features compare with the photo's
    logits_rec, dfeat = D(rec, real.cond, real.shading, return_features=True)
    with torch.no_grad():
        _, dfeat_real = D(real.image, real.cond, real.shading, return_features=True)
    l_rec_adv = L.g_nonsaturating(logits_rec)
    weight = real.valid * 0.9 + 0.1
    l_rec = L.masked_l1(rec, real.image, weight)
    l_rec_feat = L.feature_distance(dfeat, dfeat_real)
    loss = cfg.w_adv * l_adv + cfg.w_rec_adv * l_rec_adv + cfg.w_rec_l1 * l_rec + cfg.w_rec_feat * l_rec_feat
    # eq. 11 on the renders (V saw them without gradient into G)
    l_vz, l_vf = L.inverter_loss(o["z_hat"], inp.z, o["v_feats"], [f[:nb] for f in o["features"]])
    l_prior = L.latent_prior(z_rec)
    skin = (region_of(inp.cond, SKIN) > 0.5).float()
    l_res = (o["residual"][:nb].abs().mean(1, keepdim=True) * skin).sum() / skin.sum().clamp(min=1.0)
    loss = loss + cfg.w_v_z * l_vz + cfg.w_v_feat * l_vf + cfg.w_v_prior * l_prior + cfg.w_residual * l_res
    logs = {"adv": l_adv.item(), "rec_l1": l_rec.item(), "rec_feat": l_rec_feat.item(), "v_z": l_vz.item(),
            "v_feat": float(l_vf.detach()), "res": l_res.item()}
    renders = Renders(fake=fake, rec=rec)
    if inp.aux_step:
        loss = add_auxiliary_losses(run, inp, renders, loss, logs)
    return renders, loss, logs


def add_auxiliary_losses(run: GarRun, inp: StepInputs, r: Renders, loss: torch.Tensor, logs: Losses) -> torch.Tensor:
    """``loss`` plus eq. 6 (N on the renders' face), eq. 7 (FR landmarks of the pairs, and vs the
    conditioning geometry's), eq. 8 (R of the pairs) and R(reconstruction) vs R(photo), in this order;
    their values go to ``logs``."""
    cfg, aux, model = run.cfg, run.aux, run.model
    Bf = Ba = cfg.fake_batch
    B, n_pair = cfg.batch, inp.n_pair
    main_ = r.fake[:Ba]
    fmask = face_mask(inp.cond[:Ba])
    if aux.N is not None:
        l_n = L.normal_consistency(aux.N, main_, normals_of(inp.cond[:Ba]), fmask)
        loss = loss + cfg.w_normal * l_n
        logs["normal"] = l_n.item()
    if aux.FR is not None:
        lm = L.landmarks68(aux.FR, model, torch.cat([main_, r.fake[Bf:Bf + n_pair]]))
        l_pair = L.landmark_distance(lm[:Ba], lm[Ba:], cfg.size)
        ref = project_points(model, inp.pair_params, index=model.landmarks68)
        l_abs = L.landmark_distance(lm[:Ba], ref, cfg.size)
        loss = loss + cfg.w_ldmk * l_pair + cfg.w_ldmk_abs * l_abs
        logs.update(ldmk=l_pair.item(), ldmk_abs=l_abs.item())
    if aux.R is not None:
        e = L.embed(aux.R, torch.cat([main_, r.fake[Bf + n_pair:], r.rec, inp.real.image]))
        l_id = (e[:Ba] - e[Ba:2 * Ba]).norm(dim=1).mean()
        l_rid = (e[2 * Ba:2 * Ba + B] - e[2 * Ba + B:].detach()).norm(dim=1).mean()
        loss = loss + cfg.w_id * l_id + cfg.w_rec_id * l_rid
        logs.update(id=l_id.item(), rec_id=l_rid.item())
    return loss


def apply_gradients(opt: torch.optim.Optimizer, loss: torch.Tensor, modules: tuple[nn.Module, ...]) -> None:
    """Backward, non-finite gradients zeroed, one optimiser step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for m in modules:
        for p in m.parameters():
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
    opt.step()


def generator_step(run: GarRun, inp: StepInputs, gen: torch.Generator, times: StepTimes) -> tuple[Renders, Losses]:
    """The G/V step with D frozen: forward under autocast, backward, one Adam step of G and V."""
    nets = run.nets
    t0 = time.perf_counter()
    requires_grad(nets.D, False)
    with autocast(device=run.dev, enabled=run.cfg.bf16):
        renders, loss, logs = generator_losses(run, inp, gen)
    t1 = time.perf_counter()
    apply_gradients(nets.opt_g, loss, (nets.G, nets.V))
    t2 = time.perf_counter()
    requires_grad(nets.D, True)
    times.g_fwd += t1 - t0
    times.g_bwd += t2 - t1
    return renders, logs


def discriminator_step(run: GarRun, inp: StepInputs, r: Renders, gen: torch.Generator, step: int) -> Losses:
    """D's logistic loss on the reals vs renders and reconstructions, with lazy R1 (every ``r1_every``
    steps, in the same forward, weighted ``r1_gamma / 2 * r1_every``)."""
    cfg, nets, real = run.cfg, run.nets, inp.real
    do_r1 = step % cfg.r1_every == 0 and cfg.r1_gamma > 0
    xr = real.image.detach().requires_grad_(do_r1)
    nb = r.fake.shape[0]
    with autocast(device=run.dev, enabled=cfg.bf16):
        fakes = torch.cat([r.fake, r.rec]).detach()
        x, c, s = augment_for_d(cfg, gen, torch.cat([fakes, xr]), torch.cat([inp.cond[:nb], real.cond, real.cond]),
                                torch.cat([inp.shading[:nb], real.shading, real.shading]))
        nf = fakes.shape[0]
        logits = nets.d_run(x, c, s, segments=(nf, cfg.batch))
        l_d = L.d_logistic(logits[nf:], logits[:nf])
        r1 = L.r1_penalty(logits[nf:], xr) if do_r1 else None
    loss_d = l_d if r1 is None else l_d + r1 * (cfg.r1_gamma / 2 * cfg.r1_every)
    apply_gradients(nets.opt_d, loss_d, (nets.D,))
    logs = {"d": l_d.item()}
    if r1 is not None:
        logs["r1"] = r1.item()
    return logs


def ema_step(run: GarRun, inp: StepInputs, nimg: int) -> None:
    """EMA of G and V after a step (``nimg`` images seen so far) and G's running mean of w."""
    nets = run.nets
    beta = ema_beta(run.cfg, nimg, run.step_images)
    ema_update(nets.G_ema, nets.G, beta)
    ema_update(nets.V_ema, nets.V, beta)
    nets.G.update_w_avg(inp.z[:run.cfg.fake_batch].detach())
