"""Typed configuration of the GAR trainer (``trainers/train_gar.py``): options, presets, widths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent


@dataclass
class GarConfig:
    """Every option of ``python -m trainers.train_gar`` (one ``--kebab-case`` flag per field)."""

    out: Path = REPO_DIR / "cache" / "gar"
    data: str = ""  # dataset folder (default cache/dataset)
    size: int = 128
    z_dim: int = 256
    g_channels: str = "4:192,8:192,16:128,32:64,64:32,128:16"
    d_channels: str = "128:16,64:32,32:64,16:128,8:160,4:160"
    v_channels: str = "128:24,64:48,32:96,16:128,8:192,4:192"
    nim_hidden: int = 24
    batch: int = 8  # real images per step (D's reals and the reconstruction path)
    fake_batch: int = 4  # random-z renders per step (plus eq. 7/8 pairs on aux steps)
    kimg: float = 300.0  # real images shown to D
    lr_g: float = 2e-3
    lr_d: float = 2e-3
    lr_v: float = 1e-3
    r1_gamma: float = 1.0
    r1_every: int = 16
    ema_kimg: float = 5.0
    ema_rampup: float = 0.05
    aug_p: float = 0.3  # DiffAugment probability (colour + translation)
    aux: str = "auto"  # N/FR/R: auto (use when trained) | random (untrained, smoke tests) | off
    aux_every: int = 2  # eq. 6-8 and the identity term every k steps, on half the batch
    w_adv: float = 1.0
    w_normal: float = 2.0  # eq. 6
    w_ldmk: float = 2.0  # eq. 7 (pairs)
    w_ldmk_abs: float = 1.0  # FR landmarks vs the conditioning geometry's
    w_id: float = 1.0  # eq. 8
    w_rec_l1: float = 5.0
    w_rec_feat: float = 1.0  # D features
    w_rec_adv: float = 0.5
    w_rec_id: float = 1.0  # R(rec) vs R(photo), aux steps
    w_v_z: float = 1.0  # eq. 11
    w_v_feat: float = 0.5
    w_v_prior: float = 0.1
    w_residual: float = 0.2  # |B| on the skin
    id_yaw: float = 25.0  # eq. 8 pairs: yaw offset range (degrees), pitch half of it
    bf16: bool = True
    threads: int = 2
    device: str = "auto"
    seed: int = 0
    sample_every: float = 20.0  # kimg between sample grids
    eval_every: float = 20.0  # kimg between evaluations
    ckpt_every: int = 200  # steps
    val_limit: int = 64
    max_minutes: float = 300.0
    export: bool = True
    card: str = ""  # only (re)write resources/gar.md from this bench JSON and exit
    history: str = ""  # with --card: how the shipped run came about (earlier runs it resumed), kept in G's manifest

    HELP = {"kimg": "thousands of real images shown to D", "aux": "auxiliary networks N/FR/R: auto|random|off",
            "g_channels": "G widths per resolution", "max_minutes": "wall-clock limit (resumable)",
            "card": "write the model card from a `faceeditor bench gar --json` file and exit",
            "history": "with --card: text on the runs behind the shipped weights (stored in G's manifest)"}

    def dataset_root(self) -> Path | None:
        """The prepared dataset's folder, None for the default (``faceeditor.neural.data.default_root``)."""
        return Path(self.data) if self.data else None


PRESETS = {
    "gpu": {"size": 256, "batch": 32, "kimg": 3000.0, "g_channels": "4:256,8:256,16:256,32:128,64:64,128:32,256:16",
            "d_channels": "256:16,128:32,64:64,32:128,16:256,8:256,4:256",
            "v_channels": "256:16,128:32,64:64,32:128,16:256,8:256,4:256", "threads": 8, "ema_kimg": 10.0,
            "max_minutes": 1440.0},
    "quick": {"kimg": 0.08, "sample_every": 0.04, "eval_every": 0.04, "val_limit": 8, "export": False,
              "ckpt_every": 5, "aux": "auto"},
}


RELIGHT_INTENSITY, RELIGHT_AMBIENT = 0.9, 0.35  # sample grid's relit columns (shading 0.35 .. 1.25)


def parse_channels(text: str) -> dict[int, int]:
    """``"4:192,8:192"`` -> {resolution: channels}."""
    return {int(a): int(b) for a, b in (p.split(":") for p in text.split(",") if p)}
