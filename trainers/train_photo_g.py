"""Train G_p, the photo-conditioned head renderer (:mod:`faceeditor.neural.photo_g`), self-supervised
by rotate-and-render round trips on the prepared dataset (:mod:`trainers.photo_g_data`).

    python -m trainers.train_photo_g                   # CPU default (~2.5 h on 2 cores)
    python -m trainers.train_photo_g --minutes 30      # stop early (resumable: run again to go on)
    python -m trainers.train_photo_g --preset gpu

Each step makes ``fresh`` new round trips (two rasterizations per sample) and mixes them with
round trips replayed from a pool (fp16, on the CPU), so the rasterizer does not dominate the step.
Losses (weighted by the pixels inside the photo, holes up-weighted): on ``base + residual``
L1, multi-scale gradient L1, SSIM and identity through R (GAR eq. 8, ``resources/identity_net.pt``
when present); L1 on ``composite = base + alpha * residual``; alpha taught where the base is
wrong (keep the photo's pixels unless they are); with ``--pairs`` a share of each batch (``--pair-frac``)
is same-person reenactment pairs (:mod:`trainers.photo_g_pairs`: A edited by the mesh compositor to
B's pose, expression and light, with the real B as target; the alpha is taught on round trips only;
``--no-pair-alpha``: the pairs' composite L1 does not move the alpha either; ``--pair-colour``: B takes the
base's mean colour, :func:`colour_matched`); with ``--w-adv`` > 0 also adversarially, against
the conditional patch discriminator D_p (:mod:`trainers.photo_g_adv`), weighted by the holes. Writes ``<out>/last.pt`` (resumable), ``log.jsonl``, ``samples.png``
(rows: target, textured input, hole mask, base, output, alpha) and ``photo_g.pt`` (weights in the
shipped format) for :class:`faceeditor.neural.photo_renderer.PhotoNeuralRenderer`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.morphable import load_face_model
from faceeditor.neural.checkpoints import available, load_network, save_weights
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.layers import autocast, count_parameters
from faceeditor.neural.losses import embed
from faceeditor.neural.photo_g import NAME, PhotoG, PhotoGConfig
from faceeditor.neural.photo_rep import CONF, REP_CHANNELS, TEXTURED
from trainers import photo_g_adv
from trainers.common import (
    DATA_LICENSE,
    DATA_SOURCES,
    REPO_DIR,
    JsonLog,
    command_line,
    config_dict,
    export_weights,
    load_checkpoint,
    parse_config,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_cpu,
)
from trainers.loop import lr_at
from trainers.photo_g_data import Shards, flip, gradient_loss, round_trip, ssim_loss
from trainers.photo_g_pairs import PairSet


@dataclasses.dataclass
class Config:
    out: Path = REPO_DIR / "cache" / "train" / "photo_g"
    data: Path = REPO_DIR / "cache" / "dataset"
    size: int = 128
    batch: int = 8
    fresh: int = 4  # new round trips per step; the rest of the batch is replayed from the pool
    pool: int = 512
    steps: int = 6000
    minutes: float = 150.0
    lr: float = 2e-3
    max_yaw: float = 40.0
    w_l1: float = 1.0
    w_grad: float = 1.0
    w_ssim: float = 0.5
    w_id: float = 0.1
    w_alpha: float = 0.1
    alpha_err: float = 0.1  # |base - target| at which alpha's target reaches 1
    hole_weight: float = 4.0
    w_adv: float = 0.0  # adversarial weight against D_p (0: no D); a run resumed with it > 0 adds D_p
    d_lr: float = 2e-4
    d_widths: str = "32,64,128"
    widths: str = "16,32,64,128,192"
    inject: str = "8,16,32,64,96"
    extra_layers: str = "0,0,0,1,1"
    pairs: Path | None = None  # same-person pairs (python -m trainers.photo_g_pairs), e.g. cache/photo_g_pairs
    pair_frac: float = 0.5  # the share of each batch drawn from ``pairs`` when given
    pair_alpha: bool = True  # pairs' composite L1 also trains the alpha (False: only round trips open it)
    pair_colour: bool = False  # pairs' targets take the base's mean colour (B's camera white balance is not A's)
    limit: int = 0
    val: int = 8
    sample_every: int = 250
    ckpt_every: int = 100
    threads: int = 2
    bf16: bool = True
    device: str = "cpu"
    seed: int = 0
    export: bool = False  # also write resources/photo_g.pt + manifest (only once it wins the benchmarks)


PRESETS = {
    "gpu": {
        "device": "cuda",
        "batch": 32,
        "fresh": 32,
        "steps": 40000,
        "size": 256,
        "threads": 8,
        "widths": "32,64,96,160,256",
        "inject": "16,32,48,80,128",
        "minutes": 600.0,
    }
}


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def build(cfg: Config) -> PhotoG:
    return PhotoG(
        _ints(cfg.widths),
        _ints(cfg.inject),
        _ints(cfg.extra_layers),
        PhotoGConfig.w_dim,
        PhotoGConfig.nim_hidden,
        size=cfg.size,
    )


def losses(
    G: PhotoG, s: dict[str, torch.Tensor], cfg: Config, R: torch.nn.Module | None, D: photo_g_adv.PatchD | None = None
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """The weighted loss of one batch of round trips, its parts and G_p's image (base + residual).

    The residual image ``base + residual`` is compared with the crop (L1, gradients, SSIM, identity
    through R), so the residual learns everywhere; the alpha is taught where the base is wrong
    (binary cross-entropy to ``|base - target|`` ramped over ``alpha_err``) and the composite
    ``base + alpha * residual`` gets an L1 term, so alpha only opens where G_p's pixels help; with
    ``D`` the image also gets D_p's non-saturating loss (:func:`trainers.photo_g_adv.g_loss`).
    """
    out = G(s["rep"].float())
    y, t = out["image"].float(), s["target"]
    if cfg.pair_colour and "alpha_w" in s:
        seen = s["valid"] * (1 - s["hole"])
        t = torch.where(s["alpha_w"] > 0, t, colour_matched(t, out["base"].float().detach(), seen))
    w = s["valid"] * (1.0 + cfg.hole_weight * s["hole"])
    l1 = ((y - t).abs() * w).sum() / (w.sum() * 3).clamp(min=1)
    lg = gradient_loss(y, t, w)
    ls = ssim_loss(y, t, w)
    comp = out["composite"].float()
    if not cfg.pair_alpha and "alpha_w" in s:  # on pairs the alpha is held: their L1 trains the residual only
        held = out["base"].float() + out["alpha"].float().detach() * (y - out["base"].float())
        comp = torch.where(s["alpha_w"] > 0, comp, held)
    lc = ((comp - t).abs() * w).sum() / (w.sum() * 3).clamp(min=1)
    err = ((out["base"] - t).abs().mean(1, keepdim=True) / cfg.alpha_err).clamp(0, 1)
    aw = s["valid"] * s["alpha_w"] if "alpha_w" in s else s["valid"]
    la = F.binary_cross_entropy(out["alpha"].float().clamp(1e-4, 1 - 1e-4), err, weight=aw)
    loss = cfg.w_l1 * (l1 + lc) + cfg.w_grad * lg + cfg.w_ssim * ls + cfg.w_alpha * la
    logs = {
        "l1": l1.item(),
        "l1_comp": lc.item(),
        "grad": lg.item(),
        "ssim": ls.item(),
        "alpha_bce": la.item(),
        "alpha": out["alpha"].mean().item(),
    }
    if R is not None and cfg.w_id > 0:
        with torch.no_grad():
            et = embed(R, t)
        lid = (embed(R, y.clamp(0, 1)) - et).norm(dim=1).mean()
        loss = loss + cfg.w_id * lid
        logs["id"] = lid.item()
    if D is not None:
        ladv = photo_g_adv.g_loss(D, y, s["rep"].float(), s["hole"] * s["valid"])
        loss = loss + cfg.w_adv * ladv
        logs["g_adv"] = ladv.item()
    return loss, logs, y


def colour_matched(target: torch.Tensor, base: torch.Tensor, seen: torch.Tensor, limit: float = 1.4) -> torch.Tensor:
    """``target`` (B,3,H,W) times a per-image, per-channel gain (within ``1/limit``..``limit``) that gives
    it the mean colour of ``base`` over the ``seen`` pixels (B,1,H,W): a same-person pair's photo B
    was taken with another camera, white balance and exposure than A, which the edit of A cannot
    know; asked to reproduce it, G_p learned to hedge towards grey (session 11's fine-tune)."""
    num = (base * seen).sum((2, 3), keepdim=True)
    den = (target * seen).sum((2, 3), keepdim=True).clamp(min=1e-3)
    gain = (num / den).clamp(1.0 / limit, limit)
    return (target * gain).clamp(0.0, 1.0)


class Pool:
    """Round trips kept for replay (fp16)."""

    def __init__(self, size: int) -> None:
        self.size, self.items = size, []

    def add(self, s: dict[str, torch.Tensor]) -> None:
        for i in range(s["rep"].shape[0]):
            item = {k: v[i].half().cpu() for k, v in s.items()}
            if len(self.items) < self.size:
                self.items.append(item)
            else:
                self.items[int(np.random.randint(self.size))] = item

    def draw(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        idx = np.random.randint(len(self.items), size=n)
        return {k: torch.stack([self.items[i][k] for i in idx]).float().to(device) for k in self.items[0]}


def samples_grid(G: PhotoG, val: dict[str, torch.Tensor], path: Path, bf16: bool) -> float:
    """Write the samples grid; returns the val L1 on the holes."""
    G.eval()
    with torch.no_grad(), autocast(val["rep"].device, bf16):
        out = G(val["rep"], noise=False)
    G.train()
    rep, y = val["rep"], out["composite"].float().clamp(0, 1)
    rows = [
        val["target"],
        rep[:, TEXTURED],
        rep[:, CONF].expand(-1, 3, -1, -1),
        out["base"].clamp(0, 1),
        y,
        out["alpha"].float().expand(-1, 3, -1, -1),
    ]
    grid = torch.cat([torch.cat(list(r.float().cpu()), 2) for r in rows], 1)
    img = (grid.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), img[:, :, ::-1])
    h = val["hole"] * val["valid"]
    return float(((y - val["target"]).abs() * h).sum() / (h.sum() * 3).clamp(min=1))


def train(cfg: Config) -> dict:
    seed_everything(cfg.seed)
    print(setup_cpu(cfg.threads), flush=True)
    dev = torch.device(cfg.device if cfg.device != "cuda" or torch.cuda.is_available() else "cpu")
    cfg.out.mkdir(parents=True, exist_ok=True)
    log = JsonLog(cfg.out / "log.jsonl")
    model = load_face_model().to(dev)
    table = RegionTable.of(model)
    data = Shards.load(cfg.data, "train", cfg.size, cfg.limit)
    vdata = Shards.load(cfg.data, "val", cfg.size, cfg.val)
    print(f"train samples {len(data)}, val {len(vdata)}", flush=True)
    G = build(cfg).to(dev)
    print(f"G_p parameters {count_parameters(G)}", flush=True)
    R = load_network("identity_net", dev) if available("identity_net") and cfg.w_id > 0 else None
    if R is not None:
        for p in R.parameters():
            p.requires_grad_(False)
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    gen = torch.Generator().manual_seed(cfg.seed)
    val = round_trip(
        model, table, vdata.batch(np.arange(len(vdata)), dev), torch.Generator().manual_seed(123), cfg.max_yaw
    )
    D, d_opt = None, None
    if cfg.w_adv > 0:
        D = photo_g_adv.PatchD(REP_CHANNELS, _ints(cfg.d_widths)).to(dev)
        d_opt = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(0.0, 0.99))
    step, spent = _resume(cfg.out / "last.pt", G, opt, gen, D, d_opt)
    pool = Pool(cfg.pool)
    pairs, n_pair = _pairs(cfg)
    t0 = time.time() - spent
    limit = cfg.minutes * 60.0
    avg: dict[str, float] = {}
    while step < cfg.steps and time.time() - t0 < limit:
        for gp in opt.param_groups:
            gp["lr"] = lr_at(step, cfg.steps, cfg.lr, warmup=100)
        idx = torch.randint(len(data), (cfg.fresh,), generator=gen).numpy()
        s = round_trip(model, table, data.batch(idx, dev), gen, cfg.max_yaw)
        if cfg.batch - n_pair > cfg.fresh and pool.items:
            old = pool.draw(cfg.batch - n_pair - cfg.fresh, dev)
            pool.add(s)
            s = {k: torch.cat([s[k], old[k]]) for k in s}
        else:
            pool.add(s)
        if pairs is not None:
            s["alpha_w"] = torch.ones(s["rep"].shape[0], 1, 1, 1, device=dev)
            more = pairs.draw(n_pair, gen, dev)
            s = {k: torch.cat([s[k], more[k]]) for k in s}
        s = flip(s, torch.rand(s["rep"].shape[0], generator=gen).to(dev) < 0.5)
        with autocast(dev, cfg.bf16):
            loss, logs, y = losses(G, s, cfg, R, D)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(G.parameters(), 5.0)
        opt.step()
        if D is not None:
            with autocast(dev, cfg.bf16):
                ld = photo_g_adv.d_loss(D, s["target"], y, s["rep"].float(), s["hole"] * s["valid"])
            d_opt.zero_grad(set_to_none=True)
            ld.backward()
            d_opt.step()
            logs["d_hinge"] = ld.item()
        step += 1
        for k, v in {"loss": loss.item(), **logs}.items():
            avg[k] = v if k not in avg else 0.95 * avg[k] + 0.05 * v
        if step % 25 == 0:
            log(step=step, seconds=round(time.time() - t0, 1), **{k: round(v, 5) for k, v in avg.items()})
        if step % cfg.ckpt_every == 0:
            _save(cfg, G, opt, gen, step, time.time() - t0, D, d_opt)
        if step % cfg.sample_every == 0:
            log(step=step, val_hole_l1=round(samples_grid(G, val, cfg.out / "samples.png", cfg.bf16), 5))
    _save(cfg, G, opt, gen, step, time.time() - t0, D, d_opt)
    hole = samples_grid(G, val, cfg.out / "samples.png", cfg.bf16)
    save_weights(cfg.out / "photo_g.pt", G, G.arch)
    result = {"step": step, "seconds": round(time.time() - t0, 1), "val_hole_l1": round(hole, 5), **avg}
    log(final=True, **result)
    if cfg.export:
        export(G, cfg, result, len(data), 0 if pairs is None else len(pairs))
    return result


def _pairs(cfg: Config) -> tuple[PairSet | None, int]:
    """The same-person pairs (when ``--pairs`` is given) and how many of each batch they fill."""
    if cfg.pairs is None or cfg.pair_frac <= 0:
        return None, 0
    pairs = PairSet.load(cfg.pairs)
    n_pair = min(cfg.batch - 1, round(cfg.batch * cfg.pair_frac))
    print(f"same-person pairs {len(pairs)}, {n_pair} per batch", flush=True)
    return pairs, n_pair


def export(G: PhotoG, cfg: Config, result: dict, n_train: int, n_pairs: int = 0) -> None:
    """``resources/photo_g.pt`` and its manifest (command, config, data, metrics, license)."""
    manifest = {
        "network": "G_p: photo-conditioned GAR renderer, Tax-free encoder injection (faceeditor/neural/photo_g.py)",
        "trainer": "trainers/train_photo_g.py",
        "command": command_line(),
        "config": config_dict(cfg),
        "data": {
            "dataset": "trainers/prepare_dataset.py shards",
            "train_images": n_train,
            "pairs": "trainers/photo_g_pairs.py (LFW training persons)" if n_pairs else None,
            "train_pairs": n_pairs,
            "sources": DATA_SOURCES,
        },
        "metrics_val": result,
        "input": "rep(p), 18 channels at 256 px (faceeditor/neural/photo_rep.py)",
        "license": DATA_LICENSE,
    }
    path, mpath = export_weights(G, NAME, G.arch, manifest)
    print(f"wrote {path} and {mpath}", flush=True)


def _resume(
    path: Path, G: PhotoG, opt: torch.optim.Optimizer, gen: torch.Generator, D: torch.nn.Module | None = None,
    d_opt: torch.optim.Optimizer | None = None,
) -> tuple[int, float]:
    """Load ``last.pt`` into G_p, its optimizer and the generator (and D_p when both have one: a run
    that adds D_p to a checkpoint without one starts D_p fresh)."""
    state = load_checkpoint(path)
    if state is None:
        return 0, 0.0
    G.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    if D is not None and d_opt is not None and state.get("d_model") is not None:
        D.load_state_dict(state["d_model"])
        d_opt.load_state_dict(state["d_opt"])
    gen.set_state(state["gen"])
    set_rng_state(state["rng"])
    print(f"resumed from {path} at step {state['step']}", flush=True)
    return int(state["step"]), float(state["seconds"])


def _save(
    cfg: Config, G: PhotoG, opt: torch.optim.Optimizer, gen: torch.Generator, step: int, seconds: float,
    D: torch.nn.Module | None = None, d_opt: torch.optim.Optimizer | None = None,
) -> None:
    save_checkpoint(
        cfg.out / "last.pt",
        model=G.state_dict(),
        opt=opt.state_dict(),
        step=step,
        seconds=seconds,
        gen=gen.get_state(),
        rng=rng_state(),
        config=config_dict(cfg),
        arch=G.arch,
        d_model=None if D is None else D.state_dict(),
        d_opt=None if d_opt is None else d_opt.state_dict(),
    )


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(Config, argv, PRESETS, description=__doc__ or "")
    return train(cfg)


if __name__ == "__main__":
    main()
