"""The GAR trainer's networks: G, V and D with their EMA copies and optimisers, and the frozen N/FR/R.

G is the generative adversarial renderer (GAR §3.1, eq. 1-5), V the renderer-inverting network
(eq. 11), D the conditional discriminator; N, FR and R are the auxiliary networks of eq. 6-8.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from faceeditor.neural import checkpoints
from faceeditor.neural.discriminator import Discriminator
from faceeditor.neural.gar import Generator
from faceeditor.neural.inverter import Inverter
from faceeditor.neural.layers import count_parameters, prepare_for_cpu
from trainers.gar_config import GarConfig, parse_channels

AUX_NETWORKS = {"N": "normal_net", "FR": "face_regressor", "R": "identity_net"}
CHECKPOINT_NETS = ("G", "V", "D", "G_ema", "V_ema")  # keys of last.pt, then opt_g, opt_d


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


@dataclass
class AuxNets:
    """The frozen auxiliary networks (None when off or not trained): N normals (eq. 6), FR face
    parameters / landmarks (eq. 7), R identity (eq. 8)."""

    N: nn.Module | None = None
    FR: nn.Module | None = None
    R: nn.Module | None = None

    def names(self) -> list[str]:
        """The loaded ones, sorted (as logged)."""
        return sorted(k for k in AUX_NETWORKS if getattr(self, k) is not None)

    def __bool__(self) -> bool:
        return bool(self.names())


def load_aux(mode: str, device: torch.device) -> AuxNets:
    """N, FR, R frozen (no parameter gradients); none when off, those not trained left out (mode auto)
    or randomly initialised (mode random)."""
    nets = AuxNets()
    if mode == "off":
        return nets
    for key, name in AUX_NETWORKS.items():
        if checkpoints.available(name):
            net = checkpoints.load_network(name, device)
        elif mode == "random":
            net = prepare_for_cpu(checkpoints.network_class(name)().to(device))
        else:
            print(f"warning: {name} not trained: the {key} losses are off", flush=True)
            continue
        requires_grad(net, False)
        setattr(nets, key, net)
    return nets


@dataclass
class GarNets:
    """G, V, D in training, their EMA copies, the DDP wrappers that run them and the two optimisers
    (G and V share one; D's rates are scaled for lazy R1 as in StyleGAN2)."""

    G: Generator
    V: Inverter
    D: Discriminator
    G_ema: Generator
    V_ema: Inverter
    gv_run: nn.Module  # GV(G, V), DDP-wrapped under torchrun
    d_run: nn.Module  # D, DDP-wrapped under torchrun
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    def train(self) -> None:
        for m in (self.G, self.V, self.D):
            m.train()

    def parameter_counts(self) -> dict[str, int]:
        return {"G": count_parameters(self.G), "V": count_parameters(self.V), "D": count_parameters(self.D)}

    def state_dicts(self) -> dict[str, dict]:
        """The checkpoint entries of the networks and optimisers (keys of ``last.pt``)."""
        nets = {k: getattr(self, k).state_dict() for k in CHECKPOINT_NETS}
        return {**nets, "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dicts(self, state: dict) -> None:
        for k in CHECKPOINT_NETS:
            getattr(self, k).load_state_dict(state[k])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])


def _distributed(m: nn.Module, dev: torch.device, world: int) -> nn.Module:
    if world <= 1:
        return m
    return nn.parallel.DistributedDataParallel(m, device_ids=[dev] if dev.type == "cuda" else None)


def build_nets(cfg: GarConfig, dev: torch.device, world: int) -> GarNets:
    """Fresh G, V, D (initialised in this order from torch's global RNG), EMA copies and optimisers."""
    gch, dch, vch = parse_channels(cfg.g_channels), parse_channels(cfg.d_channels), parse_channels(cfg.v_channels)
    G = Generator(cfg.size, cfg.z_dim, cfg.z_dim, channels=gch, nim_hidden=cfg.nim_hidden).to(dev)
    V = Inverter(cfg.size, cfg.z_dim, g_channels=G.channels, channels=vch).to(dev)
    D = Discriminator(cfg.size, channels=dch).to(dev)
    for m in (G, V, D):
        m.to(memory_format=torch.channels_last)
    G_ema, V_ema = copy.deepcopy(G).eval(), copy.deepcopy(V).eval()
    requires_grad(G_ema, False)
    requires_grad(V_ema, False)
    c_r1 = cfg.r1_every / (cfg.r1_every + 1.0)
    opt_g = torch.optim.Adam([{"params": G.parameters(), "lr": cfg.lr_g},
                              {"params": V.parameters(), "lr": cfg.lr_v}], betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d * c_r1, betas=(0.0, 0.99 ** c_r1), eps=1e-8)
    return GarNets(G=G, V=V, D=D, G_ema=G_ema, V_ema=V_ema, gv_run=_distributed(GV(G, V), dev, world),
                   d_run=_distributed(D, dev, world), opt_g=opt_g, opt_d=opt_d)


def ema_beta(cfg: GarConfig, nimg: int, step_images: int) -> float:
    """EMA decay per step: half-life ``ema_kimg`` thousand images, ramped up over the first images."""
    ema_nimg = min(cfg.ema_kimg * 1000, nimg * cfg.ema_rampup) if cfg.ema_rampup else cfg.ema_kimg * 1000
    return 0.5 ** (step_images / max(ema_nimg, 1e-8))


def ema_update(ema: nn.Module, net: nn.Module, beta: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), net.parameters()):
            pe.lerp_(p.detach(), 1.0 - beta)
        for be, b in zip(ema.buffers(), net.buffers()):
            be.copy_(b)


def requires_grad(m: nn.Module, flag: bool) -> None:
    for p in m.parameters():
        p.requires_grad_(flag)
