"""The GAR trainer's products: G_ema, V_ema and D in ``resources/`` with manifests, and the model card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from faceeditor.core.paths import resources_dir
from faceeditor.neural import checkpoints
from faceeditor.neural.data import read_index
from trainers.common import DATA_LICENSE, DATA_SOURCES, command_line, config_dict, export_weights
from trainers.gar_config import GarConfig
from trainers.gar_eval import save_png

NETWORKS = (("gar_generator", "G: generative adversarial renderer (faceeditor/neural/gar.py), EMA"),
            ("gar_inverter", "V: renderer-inverting network (faceeditor/neural/inverter.py), EMA"),
            ("gar_discriminator", "D: conditional residual discriminator (faceeditor/neural/discriminator.py), "
                                  "used for the inversion's feature loss"))


@dataclass
class TrainingSummary:
    """What the manifests record of a finished run."""

    steps: int
    images_seen: int
    seconds: float
    train_images: int
    val_images: int
    parameters: dict[str, int]  # G, V, D
    metrics_val: dict[str, float]


def export(cfg: GarConfig, G: nn.Module, V: nn.Module, D: nn.Module, summary: TrainingSummary, root: Path | None,
           grid: np.ndarray) -> None:
    """``resources/gar_{generator,inverter,discriminator}.pt`` with manifests, the samples grid and the card."""
    idx = read_index(root)
    s = summary
    common = {
        "trainer": "trainers/train_gar.py", "command": command_line(), "config": config_dict(cfg),
        "data": {"dataset": "trainers/prepare_dataset.py output", "samples": idx.get("samples"),
                 "sources": DATA_SOURCES, "train_images": s.train_images, "val_images": s.val_images},
        "training": {"steps": s.steps, "images_seen": s.images_seen, "kimg": round(s.images_seen / 1000, 1),
                     "seconds": round(s.seconds, 1), "hours": round(s.seconds / 3600, 2), "device": "cpu" if not
                     torch.cuda.is_available() else torch.cuda.get_device_name()},
        "parameters": s.parameters, "metrics_val": s.metrics_val,
        "input": "aligned 128 px crop (faceeditor/neural/align.py); condition = normals + regions, shading = SH on n",
        "license": DATA_LICENSE,
    }
    for (name, what), net in zip(NETWORKS, (G, V, D)):
        p, mp = export_weights(net, name, net.arch, {"network": what, **common})
        print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB) and {mp}", flush=True)
    save_png(resources_dir() / "gar_samples.png", grid)
    write_model_card(None)


def set_history(text: str) -> None:
    """Record how the shipped weights were trained across resumed runs in G's manifest."""
    path = resources_dir() / "gar_generator.manifest.json"
    man = json.loads(path.read_text())
    man["history"] = text
    path.write_text(json.dumps(man, indent=2) + "\n")


def write_model_card(bench_json: Path | None) -> Path:
    """``resources/gar.md``: what G/V/D are, how they were trained, samples grid, benchmark numbers."""
    res = resources_dir()
    man = checkpoints.manifest("gar_generator")
    bench_path = res / "gar_bench.json"
    if bench_json is not None:
        bench = json.loads(Path(bench_json).read_text())
        bench_path.write_text(json.dumps(bench, indent=2) + "\n")
    bench = json.loads(bench_path.read_text()) if bench_path.is_file() else {}
    tr = man.get("training", {})
    cfg = man.get("config", {})
    lines = [
        "# GAR renderer (G), inverter (V) and discriminator (D): model card", "",
        "Files: `gar_generator.pt` (G, EMA), `gar_inverter.pt` (V, EMA), `gar_discriminator.pt` (D), each with a",
        "`.manifest.json` (command, config, data, metrics); `gar_samples.png` (samples grid); `gar_bench.json`.", "",
        "## What it is", "",
        "G(n, s, z, eps) renders an aligned 128 px face crop from a normal map + region labels (the geometry of the",
        "fitted ICT head), an SH shading map s, a latent z (256-D) and per-layer noise: StyleGAN2-style Render Blocks",
        "with modulated/demodulated convolutions (GAR eq. 1-3) and Normal Injection Modules (eq. 4); the output is",
        "`A * s + B` so lighting is an explicit, local input. V inverts G (eq. 11). D is a conditional residual",
        "discriminator (image + normals/regions + shading). See faceeditor/neural/{gar,inverter,discriminator}.py.", "",
        "## Training", "",
        f"- command: `{man.get('command', '?')}`",
        f"- images seen (real images shown to D): {tr.get('images_seen', '?')} ({tr.get('kimg', '?')} kimg) in "
        f"{tr.get('steps', '?')} steps, {tr.get('hours', '?')} h on {tr.get('device', '?')}",
        f"- batch {cfg.get('batch', '?')}, size {cfg.get('size', '?')} px, bf16 autocast + channels-last, "
        f"parameters {man.get('parameters', {})}",
        f"- data: {man.get('data', {}).get('train_images', '?')} train / {man.get('data', {}).get('val_images', '?')} "
        "val aligned crops of LFW + UTKFace (trainers/prepare_dataset.py), split by person",
        f"- validation at the end: {man.get('metrics_val', {})}",
        *([f"- history: {man['history']}"] if man.get("history") else []), "",
        "Larger configuration (GPU): `python -m trainers.train_gar --preset gpu` (256 px, wider G/D/V, batch 32,",
        "3000 kimg; `torchrun --nproc_per_node K` for DDP); dataset crops exist at 256 px.", "",
        "## Samples", "",
        "![samples](gar_samples.png)", "",
        "Rows: validation faces (unseen persons). Columns: photo crop, reconstruction V -> G (zero noise), three",
        "random z, relit from the left and from the right (same z), the reconstruction turned by yaw +20 deg.", "",
        "## Benchmark (`faceeditor bench gar`)", "",
    ]
    if bench:
        lines += ["| key | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in bench.items()]
    else:
        lines.append("(not run yet)")
    lines += ["", "## Limits", "",
              "Trained on ~20k low-resolution crops for a few hundred thousand images on a 2-core CPU: random-z",
              "samples are blurry and far from StyleGAN quality; the inversion leans on V and on pivotal tuning of",
              "G's >= 16 px Render Blocks per photo. Use: research / non-commercial (LFW, UTKFace terms)."]
    path = res / "gar.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}", flush=True)
    return path
