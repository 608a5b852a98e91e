"""Train the GAR renderer G, its discriminator D and the renderer-inverting network V (GAR §3).

    python -m trainers.train_gar                         # CPU default (128 px, a few hours on 2 cores)
    python -m trainers.train_gar --preset quick          # smoke test (a few steps, no export)
    python -m trainers.train_gar --preset gpu            # 256 px, wider nets, batch 32 (CUDA, bf16)
    torchrun --nproc_per_node 4 -m trainers.train_gar --preset gpu   # several GPUs (DDP)
    python -m trainers.train_gar --card out/bench/gar.json   # (re)write the model card with bench numbers

Recommended on this CPU (jemalloc halves page-fault churn; the machine is shared):
``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 nice -n 5 python -m trainers.train_gar``.

Data: the aligned crops of ``trainers/prepare_dataset.py`` (:mod:`faceeditor.neural.data`) with
their fitted normal map, region map and SH light. Each step (batch B):

* **G step** (one G call on a concatenated batch): B random-z renders of dataset geometries
  (conditions ``c = [n, regions]``, shading ``s`` = SH on n) with random noise; on "aux" steps
  also eq. 7 pairs (same c, new z) and eq. 8 pairs (same identity and z, another pose/expression
  rendered on the fly); and B *reconstructions* of real crops: ``G(c, s, M(V(x, c)), noise=0)``.
  Losses: non-saturating adversarial (DiffAugment) on renders and reconstructions; eq. 6 normal
  consistency through N on the face mask; eq. 7 landmark consistency through FR (pairs, plus the
  absolute distance to the conditioning geometry's projected landmarks); eq. 8 identity
  consistency through R; reconstruction L1 + D-feature (pix2pixHD-style) + R-identity distance;
  eq. 11 for V (``||V(G(z)) - z||^2`` and V's per-layer features vs G's); a prior keeping V's codes
  N(0,I)-like; and a penalty on G's unlit residual on the skin (so light goes through ``A * s``).
* **D step**: logistic loss on the reals vs the G step's renders and reconstructions (DiffAugment),
  lazy R1 every ``r1_every`` steps.
* EMA of G and V (half-life ``ema_kimg`` thousand images, ramped up).

Checkpoints ``<out>/last.pt`` (resumable), JSONL log ``<out>/log.jsonl``, sample grids
``<out>/samples_<kimg>.png`` (rows: val faces; columns: photo, reconstruction (V -> G_ema), three
random z, relit from the left and the right, the reconstruction turned by yaw +20 deg). At the end
G_ema, V_ema and D go to ``resources/gar_{generator,inverter,discriminator}.pt`` with manifests and
the last grid to ``resources/gar_samples.png``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.morphable import load_face_model  # noqa: E402
from trainers.common import (  # noqa: E402
    JsonLog,
    ProgressBar,
    config_dict,
    fmt_time,
    load_checkpoint,
    parse_config,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    setup_cpu,
    setup_device,
)
from trainers.gar_config import PRESETS, GarConfig  # noqa: E402
from trainers.gar_data import GarData  # noqa: E402
from trainers.gar_eval import evaluate, sample_grid, save_png  # noqa: E402
from trainers.gar_export import TrainingSummary, export, set_history, write_model_card  # noqa: E402
from trainers.gar_nets import build_nets, load_aux  # noqa: E402
from trainers.gar_steps import (  # noqa: E402
    GarRun,
    Losses,
    StepInputs,
    StepTimes,
    discriminator_step,
    draw_inputs,
    ema_step,
    generator_step,
)

GRID_ROWS = 8  # validation faces in the sample grids
FINAL_EVAL_LIMIT = 256  # validation crops of the final evaluation
LOG_EVERY = 25  # steps between the quiet JSONL lines (running means and timings)
BAR_KEYS = ("adv", "d", "rec_l1", "normal", "id")


@dataclass
class TrainState:
    """What changes from step to step (``step``, ``nimg``, ``gen`` and the time go to ``last.pt``)."""

    step: int
    nimg: int  # real images shown to D, over all processes
    gen: torch.Generator  # every random draw of the steps
    t_start: float  # time.time() of the start, less the seconds of the runs resumed
    next_sample: int  # nimg of the next sample grid
    next_eval: int  # nimg of the next evaluation
    bar: ProgressBar | None  # rank 0 only
    avg: Losses = field(default_factory=dict)  # running means of the step losses
    times: StepTimes = field(default_factory=StepTimes)

    def seconds(self) -> float:
        return time.time() - self.t_start


# ----------------------------------------------------------------------------- set-up
def setup(cfg: GarConfig) -> GarRun:
    """Seeds, threads and device; the train/val crops, the face model, N/FR/R and fresh G/V/D."""
    seed_everything(cfg.seed)
    print(setup_cpu(cfg.threads), flush=True)
    dev, rank, world = setup_device(cfg.device)
    root = cfg.dataset_root()
    train = GarData(root, "train", cfg.size)
    try:
        val = GarData(root, "val", cfg.size)
    except ValueError:  # a tiny dataset without val persons (smoke tests)
        print("warning: no val split: evaluating on training crops", flush=True)
        val = train
    print(f"train {train.n} val {val.n} crops ({cfg.size} px)", flush=True)
    model = load_face_model(dev)
    aux = load_aux(cfg.aux, dev)
    nets = build_nets(cfg, dev, world)
    out = Path(cfg.out)
    return GarRun(cfg=cfg, dev=dev, rank=rank, world=world, root=root, train=train, val=val, model=model, aux=aux,
                  nets=nets, out=out, log=JsonLog(out / "log.jsonl"))


def checkpoint_path(run: GarRun) -> Path:
    return run.out / "last.pt"


def start_or_resume(run: GarRun) -> TrainState:
    """The training state of a fresh run (its config logged), or of ``<out>/last.pt``'s run."""
    cfg = run.cfg
    step, nimg, spent = 0, 0, 0.0
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + run.rank)
    ckpt = checkpoint_path(run)
    state = load_checkpoint(ckpt)
    if state is not None:
        run.nets.load_state_dicts(state)
        step, nimg, spent = state["step"], state["nimg"], state["seconds"]
        gen.set_state(state["gen"])
        set_rng_state(state["rng"])
        if run.rank == 0:
            print(f"resumed from {ckpt} at step {step}, {nimg / 1000:.1f} kimg ({fmt_time(spent)} trained)", flush=True)
    elif run.rank == 0:
        run.log(config=config_dict(cfg), params=run.nets.parameter_counts(), aux=run.aux.names(), cpu=setup_cpu(0))
    every_sample, every_eval = int(cfg.sample_every * 1000), int(cfg.eval_every * 1000)
    bar = ProgressBar(total_images(cfg), "train", done=nimg, every=60.0) if run.rank == 0 else None
    return TrainState(step=step, nimg=nimg, gen=gen, t_start=time.time() - spent,
                      next_sample=(nimg // every_sample + 1) * every_sample,
                      next_eval=(nimg // every_eval + 1) * every_eval, bar=bar)


def total_images(cfg: GarConfig) -> int:
    return int(cfg.kimg * 1000)


def save(run: GarRun, st: TrainState) -> None:
    """``<out>/last.pt`` (rank 0): networks, optimisers, progress, generator and global RNG states, config."""
    if run.rank == 0:
        save_checkpoint(checkpoint_path(run), **run.nets.state_dicts(), step=st.step, nimg=st.nimg,
                        seconds=st.seconds(), gen=st.gen.get_state(), rng=rng_state(), config=config_dict(run.cfg))


# ----------------------------------------------------------------------------- the loop
def train_step(run: GarRun, st: TrainState) -> tuple[StepInputs, Losses]:
    """One step: the draws, the G/V step, the D step (timed per phase)."""
    t0 = time.perf_counter()
    inp = draw_inputs(run, st.gen, st.step)
    st.times.data += time.perf_counter() - t0
    renders, logs = generator_step(run, inp, st.gen, st.times)
    t1 = time.perf_counter()
    logs.update(discriminator_step(run, inp, renders, st.gen, st.step))
    st.times.d += time.perf_counter() - t1
    st.times.n += 1
    return inp, logs


def record_step(run: GarRun, st: TrainState, logs: Losses) -> None:
    """Running means, the progress bar and every ``LOG_EVERY`` steps a quiet log line with timings."""
    for k, v in logs.items():
        st.avg[k] = v if k not in st.avg else 0.97 * st.avg[k] + 0.03 * v
    if st.bar is not None:
        st.bar.update(run.step_images, extra=" ".join(f"{k}={st.avg[k]:.3g}" for k in BAR_KEYS if k in st.avg))
    if run.rank == 0 and st.step % LOG_EVERY == 0:
        ms = st.times.milliseconds()
        st.times = StepTimes()
        run.log(quiet=True, step=st.step, kimg=round(st.nimg / 1000, 2), seconds=round(st.seconds(), 1),
                **{k: round(v, 5) for k, v in st.avg.items()}, **ms)


def evaluate_and_sample(run: GarRun, st: TrainState, val_idx: np.ndarray, grid_idx: np.ndarray) -> None:
    """Periodic validation metrics and sample grids of G_ema / V_ema (rank 0)."""
    cfg, nets = run.cfg, run.nets
    if run.rank != 0:
        return
    if st.nimg >= st.next_eval and st.nimg < total_images(cfg):
        st.next_eval += int(cfg.eval_every * 1000)
        ev = evaluate(nets.G_ema, nets.V_ema, run.aux, run.model, run.val, val_idx, run.dev)
        run.log(step=st.step, kimg=round(st.nimg / 1000, 2), seconds=round(st.seconds(), 1),
                **{f"val_{k}": v for k, v in ev.items()})
    if st.nimg >= st.next_sample:
        st.next_sample += int(cfg.sample_every * 1000)
        grid = sample_grid(nets.G_ema, nets.V_ema, run.val, run.model, grid_idx, run.dev)
        save_png(run.out / f"samples_{st.nimg // 1000:05d}.png", grid)


def train(run: GarRun, st: TrainState) -> None:
    """Steps until ``kimg`` thousand images or the wall-clock limit; checkpoints on the way and at the end."""
    cfg = run.cfg
    val_idx = np.arange(min(cfg.val_limit, run.val.n))
    grid_idx = grid_rows(run.val)
    limit = cfg.max_minutes * 60.0
    run.nets.train()
    while st.nimg < total_images(cfg):
        inp, logs = train_step(run, st)
        st.step += 1
        st.nimg += run.step_images
        ema_step(run, inp, st.nimg)
        record_step(run, st, logs)
        if st.step % cfg.ckpt_every == 0:
            save(run, st)
        evaluate_and_sample(run, st, val_idx, grid_idx)
        if st.seconds() > limit:
            if run.rank == 0:
                print(f"stopping at {st.nimg / 1000:.1f} kimg: over the {cfg.max_minutes} min limit", flush=True)
            break
    save(run, st)


def grid_rows(val: GarData) -> np.ndarray:
    return np.linspace(0, val.n - 1, min(GRID_ROWS, val.n)).astype(int)


def finish(run: GarRun, st: TrainState) -> None:
    """Final evaluation, samples grid and log line (rank 0); the export to ``resources/`` when asked."""
    nets, val = run.nets, run.val
    seconds = st.seconds()
    ev = evaluate(nets.G_ema, nets.V_ema, run.aux, run.model, val, np.arange(min(FINAL_EVAL_LIMIT, val.n)), run.dev)
    grid = sample_grid(nets.G_ema, nets.V_ema, val, run.model, grid_rows(val), run.dev)
    save_png(run.out / "samples_final.png", grid)
    run.log(step=st.step, kimg=round(st.nimg / 1000, 2), seconds=round(seconds, 1), final=True,
            **{f"val_{k}": v for k, v in ev.items()})
    print("final val:", ev, flush=True)
    if run.cfg.export:
        summary = TrainingSummary(steps=st.step, images_seen=st.nimg, seconds=seconds, train_images=run.train.n,
                                  val_images=val.n, parameters=nets.parameter_counts(), metrics_val=ev)
        export(run.cfg, nets.G_ema, nets.V_ema, nets.D, summary, run.root, grid)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(GarConfig, argv, PRESETS, description=__doc__)
    if cfg.card:
        if cfg.history:
            set_history(cfg.history)
        write_model_card(Path(cfg.card))
        return 0
    run = setup(cfg)
    st = start_or_resume(run)
    train(run, st)
    if run.rank == 0:
        finish(run, st)
    return 0


if __name__ == "__main__":
    sys.exit(main())
