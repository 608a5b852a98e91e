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

import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from trainers.common import (JsonLog, Progress, command_line, config_dict, export_weights, fmt_time,  # noqa: E402
                             load_checkpoint, parse_config, rng_state, save_checkpoint, seed_everything,
                             set_rng_state, setup_cpu, setup_device)


@dataclass
class Config:
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
    return {int(a): int(b) for a, b in (p.split(":") for p in text.split(",") if p)}


# ----------------------------------------------------------------------------- data
class GarData:
    """Decoded crops, normal and region maps (memory-mapped) and per-sample labels of one split."""

    def __init__(self, root: Path | None, split: str, size: int, limit: int | None = None) -> None:
        from faceeditor.neural.data import decoded, load_table

        t = load_table(root, split, size, limit=limit)
        self.a = t.arrays
        self.n = len(t)
        self.size = size
        self.image = decoded(t, "image", split, root)
        self.normal = decoded(t, "normal", split, root)
        self.region = decoded(t, "region", split, root)

    def batch(self, idx: np.ndarray, device: torch.device) -> dict:
        from faceeditor.neural.data import valid_mask
        from faceeditor.neural.gar import condition_map, shading_map

        idx = np.asarray(idx)
        img = torch.from_numpy(np.array(self.image[idx])).permute(0, 3, 1, 2).float().div_(255.0)
        n = torch.from_numpy(np.array(self.normal[idx])).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
        region = torch.from_numpy(np.array(self.region[idx]).astype(np.int64))
        n = torch.nn.functional.normalize(n, dim=1)
        cond = condition_map(n, region)
        sh = torch.from_numpy(self.a["sh"][idx]).float()
        valid = torch.from_numpy(np.stack([valid_mask(self.a["align"][i], self.a["image_size"][i], self.size)
                                           for i in idx]))[:, None].float()
        out = {"image": img, "cond": cond, "shading": shading_map(cond, sh), "sh": sh, "valid": valid,
               "index": torch.from_numpy(idx)}
        return {k: (v.to(device).contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v.to(device))
                for k, v in out.items()}

    def params(self, idx: np.ndarray, device: torch.device) -> dict:
        """Geometry of samples (crop camera at this size) as tensors, for landmarks and re-rendering."""
        a = self.a
        return {k: torch.from_numpy(np.asarray(a[k][idx], np.float32)).to(device)
                for k in ("rotation", "translation", "focal", "principal", "identity", "expression")}


@torch.no_grad()
def render_conditions(model, p: dict, size: int, yaw: torch.Tensor, pitch: torch.Tensor,
                      expression: torch.Tensor) -> torch.Tensor:
    """Condition maps (B,8,S,S) of the samples' heads turned by (yaw, pitch) degrees about the head
    centre with another expression (eq. 8 pairs: same identity alpha, new beta and theta)."""
    from faceeditor.morphable.pose import euler_to_matrix
    from faceeditor.neural.gar import condition_map
    from faceeditor.neural.labels import render_labels
    from faceeditor.render.camera import Camera

    out = []
    for i in range(p["rotation"].shape[0]):
        Ro = euler_to_matrix(yaw[i], pitch[i], 0.0)[0].to(p["rotation"])
        cam = Camera(float(p["focal"][i]), size, size, float(p["principal"][i, 0]), float(p["principal"][i, 1]))
        nm, rg = render_labels(model, p["identity"][i:i + 1], expression[i:i + 1], (Ro @ p["rotation"][i])[None],
                               p["translation"][i:i + 1], cam)
        out.append(condition_map(nm, rg))
    return torch.cat(out)


# ----------------------------------------------------------------------------- networks
class GV(nn.Module):
    """G and V together, so that one forward (and one DDP all-reduce) serves the whole G step."""

    def __init__(self, G: nn.Module, V: nn.Module) -> None:
        super().__init__()
        self.G, self.V = G, V

    def forward(self, cond, shading, z, rec_image, rec_cond, rec_shading, noise) -> dict:
        """One G call: renders of (cond, shading, z) with ``noise`` and reconstructions
        ``G(rec_cond, rec_shading, M(V(rec_image)), 0)``; then V on the renders (eq. 11, no gradient
        into G). Returns G's layers (``image``, ``albedo``, ``residual``, ``features``), ``nb`` (number
        of renders, first), ``z_rec``, ``z_hat`` and ``v_feats`` (V on the renders)."""
        G, V = self.G, self.V
        z_rec = V(rec_image, rec_cond, return_features=False)
        w = torch.cat([G.mapping(z), G.mapping(z_rec)])
        nb, nr = z.shape[0], z_rec.shape[0]
        noise = [torch.cat([nz, torch.zeros(nr, *nz.shape[1:], device=nz.device)]) for nz in noise]
        out = G(torch.cat([cond, rec_cond]), torch.cat([shading, rec_shading]), w=w, noise=noise,
                return_layers=True)
        z_hat, v_feats = V(out["image"][:nb].detach(), cond)
        out.update(nb=nb, z_rec=z_rec, z_hat=z_hat, v_feats=v_feats)
        return out


def load_aux(mode: str, device: torch.device) -> dict:
    """N, FR, R frozen (no parameter gradients), or {} when off / not trained (mode auto)."""
    from faceeditor.neural import checkpoints

    names = {"N": "normal_net", "FR": "face_regressor", "R": "identity_net"}
    if mode == "off":
        return {}
    nets = {}
    for key, name in names.items():
        if checkpoints.available(name):
            net = checkpoints.load_network(name, device)
        elif mode == "random":
            from faceeditor.neural.layers import prepare_for_cpu

            net = prepare_for_cpu(checkpoints.network_class(name)().to(device))
        else:
            print(f"warning: {name} not trained: the {key} losses are off", flush=True)
            continue
        for p in net.parameters():
            p.requires_grad_(False)
        nets[key] = net
    return nets


def ema_update(ema: nn.Module, net: nn.Module, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p.detach(), 1.0 - beta)
        for be, b in zip(ema.buffers(), net.buffers()):
            be.copy_(b)


def requires_grad(m: nn.Module, flag: bool) -> None:
    for p in m.parameters():
        p.requires_grad_(flag)


# ----------------------------------------------------------------------------- samples and evaluation
@torch.no_grad()
def sample_grid(G, V, val: GarData, model, idx: np.ndarray, device, seed: int = 0) -> np.ndarray:
    """uint8 grid: rows = val faces; columns: photo, reconstruction, 3 random z, relit left/right, yaw +20."""
    from faceeditor.neural.gar import shading_map
    from faceeditor.render.sh import directional_sh, direction_from_angles

    b = val.batch(idx, device)
    n = len(idx)
    g = torch.Generator().manual_seed(seed)
    z_rec = V(b["image"], b["cond"], return_features=False)
    rec = G(b["cond"], b["shading"], z_rec, noise="zero")
    cols = [b["image"], rec]
    for _ in range(3):
        cols.append(G(b["cond"], b["shading"], torch.randn(n, G.z_dim, generator=g).to(device), noise="zero"))
    for az in (-60.0, 60.0):
        sh = directional_sh(direction_from_angles(az, 10.0), RELIGHT_INTENSITY, RELIGHT_AMBIENT)
        sh = sh.to(device)[None].expand(n, 9, 3)
        cols.append(G(b["cond"], shading_map(b["cond"], sh), z_rec, noise="zero"))
    p = val.params(idx, device)
    yaw = torch.full((n,), 20.0)
    cond2 = render_conditions(model, p, val.size, yaw, torch.zeros(n), p["expression"]).to(device)
    cols.append(G(cond2, shading_map(cond2, b["sh"]), z_rec, noise="zero"))
    grid = torch.stack(cols, 1).clamp(0, 1)  # (n, C, 3, S, S)
    S = val.size
    grid = grid.permute(0, 3, 1, 4, 2).reshape(n * S, len(cols) * S, 3)
    return (grid.float().cpu().numpy() * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def evaluate(G, V, aux: dict, model, val: GarData, idx: np.ndarray, device, seed: int = 0) -> dict:
    """Reconstruction PSNR in the face mask and the identity distance R(rec) vs R(photo); N's angle on
    random-z renders vs the input normals; FR landmark error of random-z renders vs the geometry's."""
    from faceeditor.neural import losses as L
    from faceeditor.neural.gar import face_mask
    from faceeditor.neural.regressor import project_points

    g = torch.Generator().manual_seed(seed)
    out: dict[str, list] = {"rec_psnr_db": [], "rec_id_dist": [], "normal_deg": [], "ldmk_eye": []}
    for s in range(0, len(idx), 16):
        sub = idx[s:s + 16]
        b = val.batch(sub, device)
        mask = face_mask(b["cond"])
        z = V(b["image"], b["cond"], return_features=False)
        rec = G(b["cond"], b["shading"], z, noise="zero")
        out["rec_psnr_db"].append(L.psnr_db(rec, b["image"], mask))
        fake = G(b["cond"], b["shading"], torch.randn(len(sub), G.z_dim, generator=g).to(device), noise="random")
        if "R" in aux:
            e_rec, e_img = L.embed(aux["R"], rec.clamp(0, 1)), L.embed(aux["R"], b["image"])
            out["rec_id_dist"].append((e_rec - e_img).norm(dim=1))
        if "N" in aux:
            out["normal_deg"].append(L.normal_angle_deg(aux["N"], fake.clamp(0, 1), b["cond"][:, :3], mask))
        if "FR" in aux:
            p = val.params(sub, device)
            ref = project_points(model, p, index=model.landmarks68)
            lm = L.landmarks68(aux["FR"], model, fake.clamp(0, 1))
            out["ldmk_eye"].append((lm - ref).norm(dim=-1).mean(1) / (L.EYE_FRACTION * val.size))
    return {k: round(float(torch.cat(v).float().mean()), 4) for k, v in out.items() if v}


def save_png(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


# ----------------------------------------------------------------------------- main loop
def main(argv: list[str] | None = None) -> int:
    from faceeditor.morphable import load_face_model
    from faceeditor.neural import losses as L
    from faceeditor.neural.discriminator import Discriminator, diff_augment
    from faceeditor.neural.gar import Generator, face_mask
    from faceeditor.neural.inverter import Inverter

    cfg = parse_config(Config, argv, PRESETS, description=__doc__)
    if cfg.card:
        if cfg.history:
            set_history(cfg.history)
        write_model_card(Path(cfg.card))
        return 0
    seed_everything(cfg.seed)
    print(setup_cpu(cfg.threads), flush=True)
    dev, rank, world = setup_device(cfg.device)
    root = Path(cfg.data) if cfg.data else None
    train = GarData(root, "train", cfg.size)
    try:
        val = GarData(root, "val", cfg.size)
    except ValueError:  # a tiny dataset without val persons (smoke tests)
        print("warning: no val split: evaluating on training crops", flush=True)
        val = train
    print(f"train {train.n} val {val.n} crops ({cfg.size} px)", flush=True)
    model = load_face_model(dev)
    aux = load_aux(cfg.aux, dev)
    gch, dch, vch = parse_channels(cfg.g_channels), parse_channels(cfg.d_channels), parse_channels(cfg.v_channels)
    G = Generator(cfg.size, cfg.z_dim, cfg.z_dim, channels=gch, nim_hidden=cfg.nim_hidden).to(dev)
    V = Inverter(cfg.size, cfg.z_dim, g_channels=G.channels, channels=vch).to(dev)
    D = Discriminator(cfg.size, channels=dch).to(dev)
    for m in (G, V, D):
        m.to(memory_format=torch.channels_last)
    G_ema, V_ema = copy.deepcopy(G).eval(), copy.deepcopy(V).eval()
    requires_grad(G_ema, False)
    requires_grad(V_ema, False)
    gv = GV(G, V)
    ddp = world > 1
    gv_run = nn.parallel.DistributedDataParallel(gv, device_ids=[dev] if dev.type == "cuda" else None) if ddp else gv
    d_run = nn.parallel.DistributedDataParallel(D, device_ids=[dev] if dev.type == "cuda" else None) if ddp else D
    c_r1 = cfg.r1_every / (cfg.r1_every + 1.0)
    opt_g = torch.optim.Adam([{"params": G.parameters(), "lr": cfg.lr_g},
                              {"params": V.parameters(), "lr": cfg.lr_v}], betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d * c_r1, betas=(0.0, 0.99 ** c_r1), eps=1e-8)
    out = Path(cfg.out)
    log = JsonLog(out / "log.jsonl")
    ckpt = out / "last.pt"
    nparams = {k: sum(p.numel() for p in m.parameters()) for k, m in (("G", G), ("V", V), ("D", D))}
    step, nimg, spent = 0, 0, 0.0
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)
    state = load_checkpoint(ckpt)
    if state is not None:
        for name, m in (("G", G), ("V", V), ("D", D), ("G_ema", G_ema), ("V_ema", V_ema)):
            m.load_state_dict(state[name])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, nimg, spent = state["step"], state["nimg"], state["seconds"]
        gen.set_state(state["gen"])
        set_rng_state(state["rng"])
        if rank == 0:
            print(f"resumed from {ckpt} at step {step}, {nimg / 1000:.1f} kimg ({fmt_time(spent)} trained)", flush=True)
    elif rank == 0:
        log(config=config_dict(cfg), params=nparams, aux=sorted(aux), cpu=setup_cpu(0))
    total = int(cfg.kimg * 1000)
    B = cfg.batch
    Bf = Ba = cfg.fake_batch  # renders; on aux steps as many eq. 7 and eq. 8 pairs
    val_idx = np.arange(min(cfg.val_limit, val.n))
    grid_idx = np.linspace(0, val.n - 1, min(8, val.n)).astype(int)
    t_start = time.time() - spent
    bar = Progress(total, "train", done=nimg, every=60.0) if rank == 0 else None
    avg: dict[str, float] = {}
    next_sample = (nimg // int(cfg.sample_every * 1000) + 1) * int(cfg.sample_every * 1000)
    next_eval = (nimg // int(cfg.eval_every * 1000) + 1) * int(cfg.eval_every * 1000)

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)

    def save() -> None:
        if rank == 0:
            save_checkpoint(ckpt, G=G.state_dict(), V=V.state_dict(), D=D.state_dict(), G_ema=G_ema.state_dict(),
                            V_ema=V_ema.state_dict(), opt_g=opt_g.state_dict(), opt_d=opt_d.state_dict(), step=step,
                            nimg=nimg, seconds=time.time() - t_start, gen=gen.get_state(), rng=rng_state(),
                            config=config_dict(cfg))

    def pick(n: int) -> np.ndarray:
        return np.sort(torch.randint(0, train.n, (n,), generator=gen).numpy())

    def d_input(x, c, s):
        return diff_augment(x, c, s, gen, cfg.aug_p) if cfg.aug_p > 0 else (x, c, s)

    limit = cfg.max_minutes * 60.0
    G.train(), V.train(), D.train()
    timer = {"data": 0.0, "g_fwd": 0.0, "g_bwd": 0.0, "d": 0.0, "n": 0}
    while nimg < total:
        t0 = time.perf_counter()
        aux_step = bool(aux) and step % cfg.aux_every == 0
        real = train.batch(pick(B), dev)
        fi = pick(Bf)
        fake_c = train.batch(fi, dev)
        cond, shading = fake_c["cond"], fake_c["shading"]
        z = torch.randn(Bf, cfg.z_dim, generator=gen).to(dev)
        n_pair = n_id = 0
        if aux_step:
            # eq. 7 pairs: same geometry, new z; eq. 8 pairs: same alpha and z, new beta and theta
            p_id = train.params(fi[:Ba], dev)
            yaw = (torch.rand(Ba, generator=gen) * 2 - 1) * cfg.id_yaw
            pitch = (torch.rand(Ba, generator=gen) * 2 - 1) * cfg.id_yaw * 0.5
            other = train.params(pick(Ba), dev)["expression"]
            mix = torch.rand(Ba, 1, generator=gen).to(dev)
            cond_id = render_conditions(model, p_id, cfg.size, yaw, pitch, mix * other + (1 - mix) * p_id["expression"])
            cond_id = cond_id.to(dev).contiguous(memory_format=torch.channels_last)
            from faceeditor.neural.gar import shading_map

            shade_id = shading_map(cond_id, fake_c["sh"][:Ba])
            cond = torch.cat([cond, cond[:Ba], cond_id])
            shading = torch.cat([shading, shading[:Ba], shade_id])
            z = torch.cat([z, torch.randn(Ba, cfg.z_dim, generator=gen).to(dev), z[:Ba]])
            n_pair = n_id = Ba
        noise = G.make_noise(z.shape[0], "random", gen, dev)
        t1 = time.perf_counter()
        # ------------------------------------------------------------------ G step
        requires_grad(D, False)
        logs: dict[str, float] = {}
        with autocast():
            o = gv_run(cond, shading, z, real["image"], real["cond"], real["shading"], noise)
            nb, z_rec = o["nb"], o["z_rec"]
            img = o["image"]
            fake, rec = img[:nb], img[nb:]
            x, c, s = d_input(fake, cond, shading)
            l_adv = L.g_nonsaturating(D(x, c, s))
            # reconstructions: D unaugmented, so its features compare with the photo's
            logits_rec, dfeat = D(rec, real["cond"], real["shading"], return_features=True)
            with torch.no_grad():
                _, dfeat_real = D(real["image"], real["cond"], real["shading"], return_features=True)
            l_rec_adv = L.g_nonsaturating(logits_rec)
            weight = real["valid"] * 0.9 + 0.1
            l_rec = L.masked_l1(rec, real["image"], weight)
            l_rec_feat = L.feature_distance(dfeat, dfeat_real)
            loss = cfg.w_adv * l_adv + cfg.w_rec_adv * l_rec_adv + cfg.w_rec_l1 * l_rec + cfg.w_rec_feat * l_rec_feat
            # eq. 11 on the renders (V saw them without gradient into G)
            l_vz, l_vf = L.inverter_loss(o["z_hat"], z, o["v_feats"], [f[:nb] for f in o["features"]])
            l_prior = L.latent_prior(z_rec)
            skin = (cond[:, 3:4] > 0.5).float()
            l_res = (o["residual"][:nb].abs().mean(1, keepdim=True) * skin).sum() / skin.sum().clamp(min=1.0)
            loss = loss + cfg.w_v_z * l_vz + cfg.w_v_feat * l_vf + cfg.w_v_prior * l_prior + cfg.w_residual * l_res
            logs.update(adv=l_adv.item(), rec_l1=l_rec.item(), rec_feat=l_rec_feat.item(), v_z=l_vz.item(),
                        v_feat=float(l_vf.detach()), res=l_res.item())
            if aux_step:
                main_ = fake[:Ba]
                fmask = face_mask(cond[:Ba])
                if "N" in aux:
                    l_n = L.normal_consistency(aux["N"], main_, cond[:Ba, :3], fmask)
                    loss = loss + cfg.w_normal * l_n
                    logs["normal"] = l_n.item()
                if "FR" in aux:
                    from faceeditor.neural.regressor import project_points

                    lm = L.landmarks68(aux["FR"], model, torch.cat([main_, fake[Bf:Bf + n_pair]]))
                    l_pair = L.landmark_distance(lm[:Ba], lm[Ba:], cfg.size)
                    ref = project_points(model, train.params(fi[:Ba], dev), index=model.landmarks68)
                    l_abs = L.landmark_distance(lm[:Ba], ref, cfg.size)
                    loss = loss + cfg.w_ldmk * l_pair + cfg.w_ldmk_abs * l_abs
                    logs.update(ldmk=l_pair.item(), ldmk_abs=l_abs.item())
                if "R" in aux:
                    e = L.embed(aux["R"], torch.cat([main_, fake[Bf + n_pair:], rec, real["image"]]))
                    l_id = (e[:Ba] - e[Ba:2 * Ba]).norm(dim=1).mean()
                    l_rid = (e[2 * Ba:2 * Ba + B] - e[2 * Ba + B:].detach()).norm(dim=1).mean()
                    loss = loss + cfg.w_id * l_id + cfg.w_rec_id * l_rid
                    logs.update(id=l_id.item(), rec_id=l_rid.item())
        t2 = time.perf_counter()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        for m in (G, V):
            for p in m.parameters():
                if p.grad is not None:
                    p.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt_g.step()
        t3 = time.perf_counter()
        requires_grad(D, True)
        # ------------------------------------------------------------------ D step (R1 in the same forward)
        do_r1 = step % cfg.r1_every == 0 and cfg.r1_gamma > 0
        xr = real["image"].detach().requires_grad_(do_r1)
        with autocast():
            fakes = torch.cat([fake, rec]).detach()
            x, c, s = d_input(torch.cat([fakes, xr]), torch.cat([cond[:nb], real["cond"], real["cond"]]),
                              torch.cat([shading[:nb], real["shading"], real["shading"]]))
            nf = fakes.shape[0]
            logits = d_run(x, c, s, segments=(nf, B))
            l_d = L.d_logistic(logits[nf:], logits[:nf])
            r1 = L.r1_penalty(logits[nf:], xr) if do_r1 else None
        loss_d = l_d if r1 is None else l_d + r1 * (cfg.r1_gamma / 2 * cfg.r1_every)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        for p in D.parameters():
            if p.grad is not None:
                p.grad.nan_to_num_(0.0, 0.0, 0.0)
        opt_d.step()
        logs["d"] = l_d.item()
        if r1 is not None:
            logs["r1"] = r1.item()
        t4 = time.perf_counter()
        for k, v in (("data", t1 - t0), ("g_fwd", t2 - t1), ("g_bwd", t3 - t2), ("d", t4 - t3)):
            timer[k] += v
        timer["n"] += 1
        # ------------------------------------------------------------------ EMA, bookkeeping
        step += 1
        nimg += B * world
        ema_nimg = min(cfg.ema_kimg * 1000, nimg * cfg.ema_rampup) if cfg.ema_rampup else cfg.ema_kimg * 1000
        beta = 0.5 ** (B * world / max(ema_nimg, 1e-8))
        ema_update(G_ema, G, beta)
        ema_update(V_ema, V, beta)
        G.update_w_avg(z[:Bf].detach())
        for k, v in logs.items():
            avg[k] = v if k not in avg else 0.97 * avg[k] + 0.03 * v
        if bar is not None:
            bar.update(B * world, extra=" ".join(f"{k}={avg[k]:.3g}" for k in ("adv", "d", "rec_l1", "normal", "id")
                                                  if k in avg))
        if rank == 0 and step % 25 == 0:
            ms = {f"ms_{k}": round(1000 * v / max(timer["n"], 1), 1) for k, v in timer.items() if k != "n"}
            timer = dict.fromkeys(timer, 0.0) | {"n": 0}
            log(quiet=True, step=step, kimg=round(nimg / 1000, 2), seconds=round(time.time() - t_start, 1),
                **{k: round(v, 5) for k, v in avg.items()}, **ms)
        if step % cfg.ckpt_every == 0:
            save()
        if rank == 0 and nimg >= next_eval and nimg < total:
            next_eval += int(cfg.eval_every * 1000)
            ev = evaluate(G_ema, V_ema, aux, model, val, val_idx, dev)
            log(step=step, kimg=round(nimg / 1000, 2), seconds=round(time.time() - t_start, 1),
                **{f"val_{k}": v for k, v in ev.items()})
        if rank == 0 and nimg >= next_sample:
            next_sample += int(cfg.sample_every * 1000)
            save_png(out / f"samples_{nimg // 1000:05d}.png", sample_grid(G_ema, V_ema, val, model, grid_idx, dev))
        if time.time() - t_start > limit:
            if rank == 0:
                print(f"stopping at {nimg / 1000:.1f} kimg: over the {cfg.max_minutes} min limit", flush=True)
            break
    save()
    if rank != 0:
        return 0
    seconds = time.time() - t_start
    ev = evaluate(G_ema, V_ema, aux, model, val, np.arange(min(256, val.n)), dev)
    grid = sample_grid(G_ema, V_ema, val, model, grid_idx, dev)
    save_png(out / "samples_final.png", grid)
    log(step=step, kimg=round(nimg / 1000, 2), seconds=round(seconds, 1), final=True,
        **{f"val_{k}": v for k, v in ev.items()})
    print("final val:", ev, flush=True)
    if cfg.export:
        export(cfg, G_ema, V_ema, D, ev, step, nimg, seconds, train.n, val.n, nparams, root, grid)
    return 0


def export(cfg: Config, G, V, D, ev: dict, step: int, nimg: int, seconds: float, n_train: int, n_val: int,
           nparams: dict, root: Path | None, grid: np.ndarray) -> None:
    from faceeditor.neural.data import read_index
    from faceeditor.paths import resources_dir

    idx = read_index(root)
    common = {
        "trainer": "trainers/train_gar.py", "command": command_line(), "config": config_dict(cfg),
        "data": {"dataset": "trainers/prepare_dataset.py output", "samples": idx.get("samples"),
                 "sources": ["../shared/data/lfw (research use, UMass LFW terms)",
                             "../shared/data/utkface (non-commercial research only)"],
                 "train_images": n_train, "val_images": n_val},
        "training": {"steps": step, "images_seen": nimg, "kimg": round(nimg / 1000, 1),
                     "seconds": round(seconds, 1), "hours": round(seconds / 3600, 2), "device": "cpu" if not
                     torch.cuda.is_available() else torch.cuda.get_device_name()},
        "parameters": nparams, "metrics_val": ev,
        "input": "aligned 128 px crop (faceeditor/neural/align.py); condition = normals + regions, shading = SH on n",
        "license": "weights derived from LFW and UTKFace: research / non-commercial use only",
    }
    paths = []
    for name, net, what in (("gar_generator", G, "G: generative adversarial renderer (faceeditor/neural/gar.py), EMA"),
                            ("gar_inverter", V, "V: renderer-inverting network (faceeditor/neural/inverter.py), EMA"),
                            ("gar_discriminator", D, "D: conditional residual discriminator (faceeditor/neural/"
                                                     "discriminator.py), used for the inversion's feature loss")):
        p, mp = export_weights(net, name, net.arch, {"network": what, **common})
        paths.append(p)
        print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB) and {mp}", flush=True)
    save_png(resources_dir() / "gar_samples.png", grid)
    write_model_card(None)


def set_history(text: str) -> None:
    """Record how the shipped weights were trained across resumed runs in G's manifest."""
    from faceeditor.paths import resources_dir

    path = resources_dir() / "gar_generator.manifest.json"
    man = json.loads(path.read_text())
    man["history"] = text
    path.write_text(json.dumps(man, indent=2) + "\n")


def write_model_card(bench_json: Path | None) -> Path:
    """``resources/gar.md``: what G/V/D are, how they were trained, samples grid, benchmark numbers."""
    from faceeditor.neural import checkpoints
    from faceeditor.paths import resources_dir

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


if __name__ == "__main__":
    sys.exit(main())
