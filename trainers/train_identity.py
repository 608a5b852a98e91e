"""Train R, the identity network (:mod:`faceeditor.neural.identity`), distilled from dlib's descriptor.

    python -m trainers.train_identity [--steps 1200] [--batch 16] [--threads 1] [--out cache/train/identity]
    python -m trainers.train_identity --preset small     # the light CNN from scratch (needs far more steps)
    python -m trainers.train_identity --preset gpu
    torchrun --nproc_per_node 4 -m trainers.train_identity --preset gpu

The teacher is dlib's 128-D descriptor of each photo, computed on the original photo with dlib's
own 5-point alignment (``trainers/prepare_dataset.py``). The default student has dlib's own
architecture (``resnet29``) behind a fixed resampling of our aligned 128 px crop to dlib's chip
geometry, and starts from dlib's weights converted to torch (:func:`convert_dlib_resnet`, checked
against dlib to 1e-6); distillation then adapts it to our crops (their alignment, the 128 px
resolution, JPEG). Loss: the L2 distance to the teacher's vector, ``1 - cos``, and a relational
term matching every in-batch pairwise distance to the teacher's (plus, with ``--w-pair``, a
margin loss on LFW identities; each batch holds ``pairs_per_batch`` same-person pairs).
Augmentation: colour jitter, +-3 px shifts (flips optional: dlib's descriptor is not
flip-invariant). The verification threshold is chosen on training-person pairs and stored in the
manifest. Weights: ``resources/identity_net.pt`` (fp16).

Measured on this 2-core CPU (1 thread, beside another trainer): 1,200 steps in 5 min; val
verification 0.987 vs the teacher's 0.989 (``resources/identity_net.manifest.json``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from faceeditor.neural.data import decoded, load_table  # noqa: E402
from faceeditor.neural.evaluate import (  # noqa: E402
    TRAIN_PAIRS_PER_PERSON,
    VAL_PAIRS_PER_PERSON,
    evaluate_identity,
    lfw_pairs,
)
from faceeditor.neural.identity import NAME, IdentityNet  # noqa: E402
from faceeditor.neural.layers import count_parameters  # noqa: E402
from trainers.common import (  # noqa: E402
    JsonLog,
    RunConfig,
    color_jitter,
    config_dict,
    export_network,
    images_to_tensor,
    parse_config,
    random_shift,
    seed_everything,
    setup_cpu,
    setup_device,
)
from trainers.dlib_weights import convert_dlib_resnet  # noqa: E402
from trainers.loop import train_loop  # noqa: E402


@dataclass
class Config(RunConfig):
    out: Path = REPO_DIR / "cache" / "train" / "identity"
    data: str = ""
    backbone: str = "resnet29"  # resnet29 (dlib's architecture) or small
    init: str = "dlib"  # dlib: start resnet29 from dlib's converted weights; none: random
    widths: str = "32,64,128,256"  # small backbone only
    blocks: int = 1
    hidden: int = 512
    dropout: float = 0.0
    batch: int = 16
    pairs_per_batch: int = 4  # same-person pairs (2 images each) in every batch
    steps: int = 1200
    lr: float = 2e-3  # with init=dlib: relative to each tensor's rms (see main)
    weight_decay: float = 0.0
    w_cos: float = 1.0
    w_rel: float = 1.0
    w_pair: float = 0.0
    margin_same: float = 0.45
    margin_diff: float = 0.75
    flip: float = 0.0  # probability of a horizontal flip (the teacher's descriptor is not flip-invariant)
    jitter: float = 0.1  # colour jitter strength
    shift: int = 3
    val_limit: int = 0  # unused: verification always runs on every val pair

    HELP = {"pairs_per_batch": "same-person LFW pairs per batch", "w_rel": "weight of the pairwise-distance "
            "distillation term", "w_pair": "weight of the identity margin loss", "backbone": "resnet29 or small",
            "init": "dlib (converted teacher weights, resnet29 only) or none"}


PRESETS = {
    # distil from scratch into the small CNN (reached 0.66 verification after 500 steps on 5k images
    # on the CPU: it needs a GPU and far more steps)
    "small": {"backbone": "small", "init": "none", "batch": 32, "pairs_per_batch": 8, "steps": 6000, "lr": 2e-3,
              "weight_decay": 5e-4, "w_pair": 0.3, "flip": 0.5, "jitter": 0.2, "shift": 4},
    "gpu": {"batch": 64, "pairs_per_batch": 16, "steps": 6000, "threads": 8},
    "quick": {"steps": 30, "eval_every": 0, "export": False},
}


@dataclass
class IdentityData:
    """Both splits' crops and labels, the teacher's descriptors of the training crops and the
    training rows of every LFW person with >= 2 training images (for the same-person pairs)."""

    images: dict[str, np.ndarray]  # split -> (N,128,128,3) uint8 crops (memory-mapped)
    arrays: dict[str, dict[str, np.ndarray]]  # split -> per-sample labels
    pairs: dict[str, tuple]  # split -> LFW verification pairs
    descriptor: torch.Tensor  # (N_train, 128) dlib's descriptor (the teacher)
    person_id: torch.Tensor  # (N_train,)
    multi: list[np.ndarray]  # rows of each train person with >= 2 LFW images

    @property
    def n_train(self) -> int:
        return len(self.images["train"])


def load_identity_data(root: Path | None, seed: int) -> IdentityData:
    tables = {s: load_table(root, s, 128, blobs=("image",)) for s in ("train", "val")}
    images = {s: decoded(tables[s], "image", s, root) for s in tables}
    arr = {s: tables[s].arrays for s in tables}
    pairs = {"train": lfw_pairs(arr["train"], seed + 1, TRAIN_PAIRS_PER_PERSON),
             "val": lfw_pairs(arr["val"], seed, VAL_PAIRS_PER_PERSON)}
    tr = arr["train"]
    persons: dict[int, list[int]] = {}
    for i in np.nonzero(tr["source"] == "lfw")[0]:
        persons.setdefault(int(tr["person_id"][i]), []).append(int(i))
    multi = [np.array(v) for v in persons.values() if len(v) >= 2]
    return IdentityData(images=images, arrays=arr, pairs=pairs, descriptor=torch.from_numpy(tr["descriptor"]).float(),
                        person_id=torch.from_numpy(tr["person_id"]), multi=multi)


def verification(net: torch.nn.Module, data: IdentityData, seed: int) -> dict:
    """Verification on the val pairs (threshold chosen on training-person pairs), vs the teacher."""
    return evaluate_identity(net, data.images["val"], data.arrays["val"], data.arrays["train"], data.images["train"],
                             None, seed)


def identity_batch(cfg: Config, data: IdentityData, dev: torch.device, step: int, g: torch.Generator) -> dict:
    """``pairs_per_batch`` same-person pairs, the rest random crops; flips, shifts, colour jitter."""
    P = min(cfg.pairs_per_batch, cfg.batch // 2) if data.multi else 0  # no LFW person with 2 photos: no pairs
    chosen = torch.randint(0, len(data.multi), (P,), generator=g).tolist() if P else []
    idx = []
    for c in chosen:
        m = data.multi[c]
        a, b = torch.randperm(len(m), generator=g)[:2].tolist()
        idx += [int(m[a]), int(m[b])]
    idx += torch.randint(0, data.n_train, (cfg.batch - len(idx),), generator=g).tolist()
    idx = np.array(idx)
    img = images_to_tensor(data.images["train"][idx])
    flip = torch.rand(len(idx), generator=g) < cfg.flip
    if flip.any():
        img[flip] = img[flip].flip(-1)
    shifts = torch.randint(-cfg.shift, cfg.shift + 1, (len(idx), 2), generator=g)
    img = color_jitter(random_shift(img, shifts), g, cfg.jitter)
    it = torch.from_numpy(idx)
    return {"image": img.to(dev), "desc": data.descriptor[it].to(dev), "pid": data.person_id[it].to(dev)}


def identity_loss(cfg: Config, model: torch.nn.Module, b: dict) -> tuple[torch.Tensor, dict]:
    """L2 to the teacher's vector + ``1 - cos`` + the in-batch pairwise-distance match (+ margin loss)."""
    y = model(b["image"]).float()
    t = b["desc"]
    l2 = (y - t).norm(dim=1).mean()
    cos = (1 - F.cosine_similarity(y, t, dim=1)).mean()
    dy = torch.cdist(y, y)
    dt = torch.cdist(t, t)
    off = ~torch.eye(len(y), dtype=torch.bool, device=y.device)
    rel = (dy - dt).abs()[off].mean()
    same = (b["pid"][:, None] == b["pid"][None, :]) & off
    diff = (b["pid"][:, None] != b["pid"][None, :])
    lp = F.relu(dy - cfg.margin_same)[same].mean() if same.any() else y.new_zeros(())
    ln = F.relu(cfg.margin_diff - dy)[diff].mean()
    loss = l2 + cfg.w_cos * cos + cfg.w_rel * rel + (cfg.w_pair * (lp + ln) if cfg.w_pair else 0.0)
    return loss, {"l2": l2.item(), "rel": rel.item(), "cos": cos.item(), "pair": (lp + ln).item()}


def build_net(cfg: Config, dev: torch.device) -> IdentityNet:
    widths = tuple(int(w) for w in cfg.widths.split(","))
    net = IdentityNet(cfg.backbone, widths, cfg.blocks, 128, cfg.hidden, cfg.dropout)
    if cfg.backbone == "resnet29" and cfg.init == "dlib":
        net.net.load_state_dict(convert_dlib_resnet())
    return net.to(dev).to(memory_format=torch.channels_last)


def rms_param_groups(cfg: Config, net: torch.nn.Module) -> list[dict] | None:
    """With init=dlib: one AdamW group per tensor with ``lr_scale`` = its rms (None: the default groups).
    dlib's kernels are tiny (rms 1e-3..1e-2, biases ~1e-7) and rescaled by large affine gains: a
    plain Adam step of a fixed size would wreck them."""
    if cfg.init != "dlib":
        return None
    return [{"params": [p], "weight_decay": cfg.weight_decay if p.ndim > 1 else 0.0,
             "lr_scale": float(p.detach().float().pow(2).mean().sqrt().clamp(min=1e-4))}
            for p in net.parameters()]


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(Config, argv, PRESETS, description=__doc__)
    seed_everything(cfg.seed)
    print(setup_cpu(cfg.threads), flush=True)
    dev, rank, world = setup_device(cfg.device)
    root = Path(cfg.data) if cfg.data else None
    data = load_identity_data(root, cfg.seed)
    print(f"train {data.n_train} val {len(data.images['val'])} images; {len(data.multi)} train persons with >= 2 "
          f"images; pairs train {len(data.pairs['train'][0])} val {len(data.pairs['val'][0])}; "
          f"teacher norm {float(data.descriptor.norm(dim=1).mean()):.3f}", flush=True)
    net = build_net(cfg, dev)
    out = Path(cfg.out)
    log = JsonLog(out / "log.jsonl")
    log(config=config_dict(cfg), params=count_parameters(net))
    if rank == 0 and not (out / "last.pt").is_file():
        net.eval()
        log(step=0, **{f"val_{k}": v for k, v in verification(net, data, cfg.seed).items()})
    ev = train_loop(cfg=cfg, model=net, batch_fn=partial(identity_batch, cfg, data, dev),
                    loss_fn=partial(identity_loss, cfg), eval_fn=partial(verification, data=data, seed=cfg.seed),
                    out=out, log=log, device=dev, rank=rank, world=world, param_groups=rms_param_groups(cfg, net))
    if rank == 0:
        net = net.cpu().eval()
        full = verification(net, data, cfg.seed)
        print("final val:", full, flush=True)
        if cfg.export:
            export_network(net, NAME, cfg, root, data.n_train, len(data.images["val"]), full, ev,
                           network="R: identity network distilled from dlib's 128-D descriptor "
                                   "(faceeditor/neural/identity.py)",
                           trainer="trainers/train_identity.py", threshold=full["id_threshold"],
                           teacher="dlib_face_recognition_resnet_model_v1 (face_recognition_models 0.3.0, "
                                   "CC0/Boost)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
