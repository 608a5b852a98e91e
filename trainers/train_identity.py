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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from trainers.common import (JsonLog, RunConfig, color_jitter, config_dict, export_network,  # noqa: E402
                             images_to_tensor, parse_config, random_shift, seed_everything, setup_cpu,
                             setup_device, train_loop)


# ----------------------------------------------------------------------------- dlib weights
class _DlibReader:
    """Reader for dlib's serialisation: integers are a header byte (bytes to follow, bit 7 = sign)
    then little-endian bytes; tensors (version 2) are 4 dims then raw little-endian float32."""

    def __init__(self, data: bytes) -> None:
        self.b, self.i = data, 0

    def int(self) -> int:
        h = self.b[self.i]
        n = h & 0x0F
        v = int.from_bytes(self.b[self.i + 1:self.i + 1 + n], "little")
        self.i += 1 + n
        return -v if h & 0x80 else v

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise ValueError("unsupported dlib tensor version")
        dims = [self.int() for _ in range(4)]
        n = int(np.prod(dims))
        a = np.frombuffer(self.b, "<f4", n, self.i).reshape(dims).copy()
        self.i += 4 * n
        return a


def convert_dlib_resnet(path: Path | None = None) -> dict[str, torch.Tensor]:
    """State dict of :class:`faceeditor.neural.identity.DlibResNet` from dlib's
    ``dlib_face_recognition_resnet_model_v1.dat`` (default: face_recognition_models' copy): its
    layers are stored input to output, each after its name (``con_4``: params = filters then biases, then filters, rows, cols, strides,
    paddings; ``affine_``: gamma then beta; ``fc_2``: outputs, inputs, (inputs x outputs) weights)."""
    if path is None:
        from faceeditor.face.identity import models_dir

        path = models_dir() / "dlib_face_recognition_resnet_model_v1.dat"
    import re

    from faceeditor.neural.identity import RESNET29, DlibResNet

    data = Path(path).read_bytes()
    convs, affines, fc = [], [], None
    for m in re.finditer(rb"\x05con_4|\x07affine_|\x04fc_2", data):
        r = _DlibReader(data)
        r.i = m.end()
        tag = m.group()[1:]
        if tag == b"con_4":
            params = r.tensor().ravel()
            nf, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
            convs.append((params, nf, nr, nc, (sy, sx), (py, px)))
        elif tag == b"affine_":
            p = r.tensor().ravel()
            affines.append((p[: len(p) // 2], p[len(p) // 2:]))
        else:
            n_out, n_in = r.int(), r.int()
            fc = r.tensor().reshape(n_in, n_out)
    net = DlibResNet()
    sd = net.state_dict()
    conv_keys = ["stem"] + [f"blocks.{i}.conv{j}" for i in range(len(RESNET29)) for j in (1, 2)]
    aff_keys = ["stem_aff"] + [f"blocks.{i}.aff{j}" for i in range(len(RESNET29)) for j in (1, 2)]
    if len(convs) != len(conv_keys) or len(affines) != len(aff_keys) or fc is None:
        raise ValueError(f"unexpected dlib network: {len(convs)} convs, {len(affines)} affine layers")
    for key, (params, nf, nr, nc, stride, pad) in zip(conv_keys, convs):
        w = sd[f"{key}.weight"]
        mod = net.get_submodule(key)
        if (nf, nr, nc) != tuple(w.shape[:1]) + tuple(w.shape[2:]) or stride != mod.stride or pad != mod.padding:
            raise ValueError(f"layer {key}: dlib has {nf}x{nr}x{nc} stride {stride} pad {pad}, torch {tuple(w.shape)} "
                             f"stride {mod.stride} pad {mod.padding}")
        sd[f"{key}.weight"] = torch.from_numpy(params[: w.numel()].reshape(w.shape))
        sd[f"{key}.bias"] = torch.from_numpy(params[w.numel():])
    for key, (g, b) in zip(aff_keys, affines):
        sd[f"{key}.weight"], sd[f"{key}.bias"] = torch.from_numpy(g), torch.from_numpy(b)
    sd["fc.weight"] = torch.from_numpy(np.ascontiguousarray(fc.T))
    return sd


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


def main(argv: list[str] | None = None) -> int:
    from faceeditor.neural.data import decoded, load_table
    from faceeditor.neural.evaluate import TRAIN_PAIRS_PER_PERSON, VAL_PAIRS_PER_PERSON, evaluate_identity, lfw_pairs
    from faceeditor.neural.identity import NAME, IdentityNet

    def verification(net) -> dict:
        return evaluate_identity(net, images["val"], arr["val"], arr["train"], images["train"], None, cfg.seed)

    cfg = parse_config(Config, argv, PRESETS, description=__doc__)
    seed_everything(cfg.seed)
    print(setup_cpu(cfg.threads), flush=True)
    dev, rank, world = setup_device(cfg.device)
    root = Path(cfg.data) if cfg.data else None
    tables = {s: load_table(root, s, 128, blobs=("image",)) for s in ("train", "val")}
    images = {s: decoded(tables[s], "image", s, root) for s in tables}
    arr = {s: tables[s].arrays for s in tables}
    pairs = {"train": lfw_pairs(arr["train"], cfg.seed + 1, TRAIN_PAIRS_PER_PERSON),
             "val": lfw_pairs(arr["val"], cfg.seed, VAL_PAIRS_PER_PERSON)}
    tr = arr["train"]
    n_train = len(images["train"])
    desc = torch.from_numpy(tr["descriptor"]).float()
    pid = torch.from_numpy(tr["person_id"])
    # persons with >= 2 LFW training images, for the same-person pairs of each batch
    groups: dict[int, list[int]] = {}
    for i in np.nonzero(tr["source"] == "lfw")[0]:
        groups.setdefault(int(tr["person_id"][i]), []).append(int(i))
    multi = [np.array(v) for v in groups.values() if len(v) >= 2]
    print(f"train {n_train} val {len(images['val'])} images; {len(multi)} train persons with >= 2 images; "
          f"pairs train {len(pairs['train'][0])} val {len(pairs['val'][0])}; "
          f"teacher norm {float(desc.norm(dim=1).mean()):.3f}", flush=True)
    widths = tuple(int(w) for w in cfg.widths.split(","))
    net = IdentityNet(cfg.backbone, widths, cfg.blocks, 128, cfg.hidden, cfg.dropout)
    if cfg.backbone == "resnet29" and cfg.init == "dlib":
        net.net.load_state_dict(convert_dlib_resnet())
    net = net.to(dev).to(memory_format=torch.channels_last)
    out = Path(cfg.out)
    log = JsonLog(out / "log.jsonl")
    log(config=config_dict(cfg), params=sum(p.numel() for p in net.parameters()))

    def batch_fn(step: int, g: torch.Generator):
        P = min(cfg.pairs_per_batch, cfg.batch // 2) if multi else 0  # no LFW person with 2 photos: no pairs
        chosen = torch.randint(0, len(multi), (P,), generator=g).tolist() if P else []
        idx = []
        for c in chosen:
            m = multi[c]
            a, b = torch.randperm(len(m), generator=g)[:2].tolist()
            idx += [int(m[a]), int(m[b])]
        idx += torch.randint(0, n_train, (cfg.batch - len(idx),), generator=g).tolist()
        idx = np.array(idx)
        img = images_to_tensor(images["train"][idx])
        flip = torch.rand(len(idx), generator=g) < cfg.flip
        if flip.any():
            img[flip] = img[flip].flip(-1)
        shifts = torch.randint(-cfg.shift, cfg.shift + 1, (len(idx), 2), generator=g)
        img = color_jitter(random_shift(img, shifts), g, cfg.jitter)
        it = torch.from_numpy(idx)
        return {"image": img.to(dev), "desc": desc[it].to(dev), "pid": pid[it].to(dev)}

    def loss_fn(model, b):
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

    def eval_fn(model):
        return verification(model)

    if rank == 0 and not (out / "last.pt").is_file():
        net.eval()
        log(step=0, **{f"val_{k}": v for k, v in verification(net).items()})
    groups = None
    if cfg.init == "dlib":
        # dlib's kernels are tiny (rms 1e-3..1e-2, biases ~1e-7) and rescaled by large affine gains:
        # a plain Adam step of a fixed size would wreck them, so each tensor's rate is scaled by its rms
        groups = [{"params": [p], "weight_decay": cfg.weight_decay if p.ndim > 1 else 0.0,
                   "lr_scale": float(p.detach().float().pow(2).mean().sqrt().clamp(min=1e-4))}
                  for p in net.parameters()]
    ev = train_loop(cfg=cfg, model=net, batch_fn=batch_fn, loss_fn=loss_fn, eval_fn=eval_fn, out=out, log=log,
                    device=dev, rank=rank, world=world, param_groups=groups)
    if rank == 0:
        net = net.cpu().eval()
        full = verification(net)
        print("final val:", full, flush=True)
        if cfg.export:
            export_network(net, NAME, cfg, root, n_train, len(images["val"]), full, ev,
                           network="R: identity network distilled from dlib's 128-D descriptor "
                                   "(faceeditor/neural/identity.py)",
                           trainer="trainers/train_identity.py", threshold=full["id_threshold"],
                           teacher="dlib_face_recognition_resnet_model_v1 (face_recognition_models 0.3.0, "
                                   "CC0/Boost)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
