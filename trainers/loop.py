"""The resumable training loop of the supervision networks N, FR and R (``trainers/train_*.py``).

AdamW with linear warm-up and cosine decay, bf16 autocast, gradient clipping, periodic evaluation,
checkpoints in ``<out>/last.pt`` (model, optimiser, step, generator and RNG states, config) and a
wall-clock limit; a run restarted with the same ``--out`` resumes from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faceeditor.neural.layers import autocast
from trainers.common import (
    JsonLog,
    ProgressBar,
    config_dict,
    fmt_time,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def lr_at(step: int, total: int, base: float, warmup: int = 200, final: float = 0.02) -> float:
    """Linear warm-up then cosine decay to ``final * base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final + (1 - final) * 0.5 * (1 + np.cos(np.pi * p)))


@dataclasses.dataclass
class LoopState:
    """What :func:`train_loop` carries from step to step (``step``, the time and ``gen`` go to ``last.pt``)."""

    step: int
    t_start: float  # time.time() of the start, less the seconds of the runs resumed
    gen: torch.Generator  # the batches' random draws
    run_avg: dict[str, float] = dataclasses.field(default_factory=dict)  # running means of the losses

    def seconds(self) -> float:
        return time.time() - self.t_start


def _adamw(model: torch.nn.Module, cfg: Any, param_groups: list[dict] | None) -> torch.optim.AdamW:
    """AdamW over ``param_groups`` (default: weight decay on matrices and kernels, none on vectors)."""
    if param_groups is None:
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        param_groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(0.9, 0.99))


def _start_or_resume(ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, cfg: Any,
                     rank: int) -> LoopState:
    step, spent = 0, 0.0
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    state = load_checkpoint(ckpt)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, spent = state["step"], state.get("seconds", 0.0)
        gen.set_state(state["gen"])
        set_rng_state(state["rng"])
        if rank == 0:
            print(f"resumed from {ckpt} at step {step} ({fmt_time(spent)} trained)", flush=True)
    return LoopState(step=step, t_start=time.time() - spent, gen=gen)


def _save(ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, st: LoopState, cfg: Any,
          rank: int) -> None:
    if rank == 0:
        save_checkpoint(ckpt, model=model.state_dict(), opt=opt.state_dict(), step=st.step, seconds=st.seconds(),
                        gen=st.gen.get_state(), rng=rng_state(), config=config_dict(cfg))


def _optimizer_step(net: torch.nn.Module, model: torch.nn.Module, opt: torch.optim.Optimizer, batch, loss_fn,
                    cfg: Any, device: torch.device) -> tuple[torch.Tensor, dict, float]:
    """Loss under autocast, backward, gradient clipping (norm 5), one AdamW step -> (loss, logs, grad norm)."""
    with autocast(device=device, enabled=cfg.bf16):
        loss, logs = loss_fn(net, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0))
    opt.step()
    return loss, logs, gnorm


def _evaluate(model: torch.nn.Module, eval_fn) -> dict:
    model.eval()
    with torch.no_grad():
        ev = eval_fn(model)
    return ev


def train_loop(*, cfg: Any, model: torch.nn.Module, batch_fn, loss_fn, eval_fn, out: Path, log: JsonLog,
               device: torch.device, rank: int = 0, world: int = 1, param_groups: list[dict] | None = None) -> dict:
    """Generic resumable loop: AdamW, warm-up + cosine LR, bf16 autocast, gradient clipping,
    periodic evaluation and checkpoints (``out/last.pt``), a wall-clock limit.

    ``batch_fn(step, generator) -> batch`` (already on ``device``), ``loss_fn(model, batch) ->
    (loss, {name: float})``, ``eval_fn(model) -> {name: float}``. ``cfg`` needs ``steps, lr,
    weight_decay, bf16, seed, eval_every, ckpt_every, max_minutes``. ``param_groups`` (optional)
    are AdamW groups that may carry an ``lr_scale`` multiplying the scheduled rate (default: weight
    decay on matrices and kernels, none on vectors). Returns the final evaluation.
    """
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) \
        if world > 1 else model
    opt = _adamw(model, cfg, param_groups)
    ckpt = out / "last.pt"
    st = _start_or_resume(ckpt, model, opt, cfg, rank)
    bar = ProgressBar(cfg.steps, "train", done=st.step, every=60.0) if rank == 0 else None
    model.train()
    limit = cfg.max_minutes * 60.0
    while st.step < cfg.steps:
        lr = lr_at(st.step, cfg.steps, cfg.lr, warmup=min(300, cfg.steps // 10))
        for gp in opt.param_groups:
            gp["lr"] = lr * gp.get("lr_scale", 1.0)
        loss, logs, gnorm = _optimizer_step(net, model, opt, batch_fn(st.step, st.gen), loss_fn, cfg, device)
        st.step += 1
        for k, v in {"loss": loss.item(), **logs}.items():
            st.run_avg[k] = v if k not in st.run_avg else 0.98 * st.run_avg[k] + 0.02 * v
        if bar is not None:
            bar.update(1, extra=" ".join(f"{k}={v:.4g}" for k, v in list(st.run_avg.items())[:4]))
        if st.step % 50 == 0 and rank == 0:
            log(quiet=True, step=st.step, lr=lr, grad_norm=gnorm, seconds=round(st.seconds(), 1),
                **{k: round(v, 5) for k, v in st.run_avg.items()})
        if st.step % cfg.ckpt_every == 0 or st.step == cfg.steps:
            _save(ckpt, model, opt, st, cfg, rank)
        if cfg.eval_every and st.step % cfg.eval_every == 0 and st.step < cfg.steps and rank == 0:
            ev = _evaluate(model, eval_fn)
            model.train()
            log(step=st.step, seconds=round(st.seconds(), 1), **{f"val_{k}": v for k, v in ev.items()})
        if st.seconds() > limit:
            if rank == 0:
                print(f"stopping at step {st.step}: over the {cfg.max_minutes} min limit", flush=True)
            _save(ckpt, model, opt, st, cfg, rank)
            break
    return _final_evaluation(model, eval_fn, st, log, rank)


def _final_evaluation(model: torch.nn.Module, eval_fn, st: LoopState, log: JsonLog, rank: int) -> dict:
    """Rank 0: the evaluation after the loop, with the training seconds and steps, logged as final."""
    model.eval()
    ev: dict = {}
    if rank == 0:
        ev = _evaluate(model, eval_fn)
        ev["train_seconds"] = round(st.seconds(), 1)
        ev["steps"] = st.step
        log(step=st.step, final=True, **{f"val_{k}": v for k, v in ev.items()})
    return ev
