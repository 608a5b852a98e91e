"""Shared trainer utilities: typed dataclass configs on the command line, seeding, CPU set-up,
a progress bar with ETA, JSONL logs, resumable checkpoints and the resource manifests (the generic
training loop of N, FR and R: :mod:`trainers.loop`).

A trainer declares ``@dataclass class Config`` with documented, typed fields; ``parse_config``
turns every field into a ``--kebab-case`` option (bools get ``--x/--no-x``) and ``--preset`` picks a
named set of overrides (e.g. ``gpu``: larger model and batch, documented in each trainer).
Checkpoints (``<out>/last.pt``) hold the model, optimiser, step, RNG states and config, are
written atomically, and a run restarted with the same ``--out`` resumes from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import numpy as np
import torch

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.core.paths import resources_dir  # noqa: E402
from faceeditor.neural.checkpoints import save_weights  # noqa: E402
from faceeditor.neural.data import read_index  # noqa: E402
from faceeditor.neural.evaluate import images_to_tensor  # noqa: E402,F401  (re-exported for the trainers)

C = TypeVar("C")
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"


# ----------------------------------------------------------------------------- configs
def _arg_type(tp: Any):
    if tp in (int, float, str):
        return tp
    if tp is Path or tp == "Path":
        return Path
    origin = getattr(tp, "__args__", None)
    if origin:  # Optional[X] / X | None
        inner = [a for a in origin if a is not type(None)]
        if len(inner) == 1:
            return _arg_type(inner[0])
    return str


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One ``--option`` per dataclass field (help = the field's comment in ``cls.HELP`` if given)."""
    hints = get_type_hints(cls)
    helps = getattr(cls, "HELP", {})
    for f in dataclasses.fields(cls):
        name = "--" + f.name.replace("_", "-")
        tp = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        h = f"{helps.get(f.name, '')} (default: {default})"
        if tp is bool:
            parser.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=h)
        else:
            parser.add_argument(name, type=_arg_type(tp), default=None, help=h)


def parse_config(cls: type[C], argv: list[str] | None = None, presets: dict[str, dict] | None = None,
                 description: str = "") -> C:
    """Config from the command line: defaults, then ``--preset NAME``'s overrides, then options."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    if presets:
        parser.add_argument("--preset", choices=sorted(presets), default=None,
                            help="named overrides: " + "; ".join(f"{k}: {v}" for k, v in presets.items()))
    add_config_arguments(parser, cls)
    ns = parser.parse_args(argv)
    kw: dict[str, Any] = {}
    if presets and getattr(ns, "preset", None):
        kw.update(presets[ns.preset])
    for f in dataclasses.fields(cls):
        v = getattr(ns, f.name)
        if v is not None:
            kw[f.name] = v
    return cls(**kw)  # type: ignore[call-arg]


def config_dict(cfg: Any) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()}


@dataclasses.dataclass
class RunConfig:
    """Runtime fields shared by the supervision-network trainers (their configs extend it)."""

    bf16: bool = True
    threads: int = 2
    device: str = "auto"
    seed: int = 0
    eval_every: int = 1000
    ckpt_every: int = 250
    val_limit: int = 600
    max_minutes: float = 115.0
    export: bool = True


# ----------------------------------------------------------------------------- runtime
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def setup_cpu(threads: int) -> str:
    """Set torch's thread count; returns a line describing threads, jemalloc and bf16 support."""
    if threads > 0:
        torch.set_num_threads(threads)
    jem = JEMALLOC in os.environ.get("LD_PRELOAD", "")
    return f"torch threads={torch.get_num_threads()} jemalloc={'on' if jem else 'off'} device=cpu"


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", _module_name()] + sys.argv[1:])


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else Path(sys.argv[0]).stem


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- progress / logs
class ProgressBar:
    """A one-line progress bar with rate and ETA on stderr (a new line every ``every`` s when not a TTY)."""

    def __init__(self, total: int, desc: str = "", done: int = 0, every: float = 30.0) -> None:
        self.total, self.desc, self.start_done = total, desc, done
        self.done = done
        self.t0 = time.time()
        self.last = 0.0
        self.every = every if not sys.stderr.isatty() else 0.5
        self.extra = ""

    def update(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        if extra:
            self.extra = extra
        now = time.time()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            self._print()

    def _print(self) -> None:
        el = time.time() - self.t0
        rate = (self.done - self.start_done) / max(el, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        frac = self.done / max(self.total, 1)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        line = (f"{self.desc} [{bar}] {self.done}/{self.total} {100 * frac:5.1f}% "
                f"{rate:.2f}/s elapsed {fmt_time(el)} eta {fmt_time(eta)} {self.extra}")
        end = "\r" if sys.stderr.isatty() and self.done < self.total else "\n"
        print(line, end=end, file=sys.stderr, flush=True)


def fmt_time(s: float) -> str:
    if not np.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class JsonLog:
    """Append-only JSONL log (one dict per line, with wall time) that also prints a short line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, quiet: bool = False, **rec: Any) -> None:
        rec = {"time": round(time.time(), 1), **rec}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if not quiet:
            print(" ".join(f"{k}={_fmt(v)}" for k, v in rec.items() if k != "time"), flush=True)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, **state: Any) -> None:
    """Atomic ``torch.save`` (write a temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def load_checkpoint(path: Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def export_weights(model: torch.nn.Module, name: str, arch: dict, manifest: dict, resources: Path | None = None,
                   half: bool = True) -> tuple[Path, Path]:
    """Write ``resources/<name>.pt`` (state dict, fp16 when ``half``, + arch) and ``<name>.manifest.json``."""
    res = Path(resources) if resources else resources_dir()
    path = res / f"{name}.pt"
    save_weights(path, model, arch, half=half)
    man = dict(manifest)
    man.update({"artifact": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    mpath = res / f"{name}.manifest.json"
    mpath.write_text(json.dumps(man, indent=2) + "\n")
    return path, mpath


DATA_SOURCES = ["../shared/data/lfw (research use, UMass LFW terms)",
                "../shared/data/utkface (non-commercial research only)"]
DATA_LICENSE = "weights derived from LFW and UTKFace: research / non-commercial use only"


def export_network(net: torch.nn.Module, name: str, cfg: Any, root: Path | None, n_train: int, n_val: int,
                   metrics: dict, loop: dict, **fields: Any) -> tuple[Path, Path]:
    """Export a network trained on the prepared dataset: ``resources/<name>.pt`` and a manifest with
    the command, the config, the data (sources, split, sizes), val metrics and training time;
    ``fields`` (``network``, ``trainer``, ``input``, ...) are added to the manifest."""
    idx = read_index(root)
    manifest = {**fields, "command": command_line(), "config": config_dict(cfg),
                "data": {"dataset": "trainers/prepare_dataset.py output", "samples": idx["samples"],
                         "sources": DATA_SOURCES, "split_seed": idx["split_seed"],
                         "val_fraction": idx["val_fraction"], "train_images": n_train, "val_images": n_val},
                "metrics_val": metrics, "train_seconds": loop.get("train_seconds"), "steps": loop.get("steps"),
                "input": fields.get("input", "aligned 128 px RGB crop in [0,1] (faceeditor/neural/align.py)"),
                "license": DATA_LICENSE}
    path, mpath = export_weights(net, name, net.arch, manifest)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {mpath}", flush=True)
    return path, mpath


# ----------------------------------------------------------------------------- batches and augmentation

def color_jitter(x: torch.Tensor, g: torch.Generator, strength: float = 0.2, gray_p: float = 0.1) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and gamma jitter, some images made gray."""
    B = x.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(B, 1, 1, 1, generator=g)).to(x)

    s = strength
    x = x * u(1 - s, 1 + s)
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * u(1 - s, 1 + s) + m
    gray = x.mean(1, keepdim=True)
    sat = u(1 - s, 1 + s)
    sat = torch.where(torch.rand(B, 1, 1, 1, generator=g).to(x) < gray_p, torch.zeros_like(sat), sat)
    x = (x - gray) * sat + gray
    x = x.clamp(0, 1) ** u(1 - s / 2, 1 + s / 2)
    return x.contiguous(memory_format=torch.channels_last)


def random_shift(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Translate each image (B,C,H,W) by integer ``shifts`` (B,2) = (dx, dy) pixels (edges replicated)."""
    m = int(shifts.abs().max()) if shifts.numel() else 0
    if m == 0:
        return x
    H, W = x.shape[-2:]
    pad = torch.nn.functional.pad(x, (m, m, m, m), mode="replicate")
    out = torch.empty_like(x)
    for i, (dx, dy) in enumerate(shifts.tolist()):
        out[i] = pad[i, :, m - dy:m - dy + H, m - dx:m - dx + W]
    return out.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- devices
def setup_device(device: str = "auto") -> tuple[torch.device, int, int]:
    """(device, rank, world size). Under ``torchrun`` (WORLD_SIZE > 1) joins the process group
    (NCCL on CUDA, gloo on CPU) and takes GPU LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev, rank, world
