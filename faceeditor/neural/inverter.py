"""V: the renderer-inverting network (GAR eq. 11): image (+ its geometry condition) -> z.

Built symmetric to G (:mod:`faceeditor.neural.gar`): a residual encoder whose stages run at G's
resolutions in reverse (a 3x3 stem at S px, then S/2, ..., 4 px; the stem is pooled at once, which
halves V's cost). Each stage's features ``V_i`` are projected (1x1) to the width of G's Render
Block at the same resolution, so that eq. 11's feature term
``sum_i ||G_i(n, z) - V_i(I_out)||`` can be applied; ``z_hat`` comes from an MLP (as deep as G's
mapping network) on the concatenation of every stage's channel means and standard deviations
(``[mu(V_i); sigma(V_i)]``).

Beyond the paper, V also sees G's condition map (normals + regions, known from the fit at
inversion time), so it need not guess the geometry and can spend z on appearance.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceeditor.neural.gar import COND_CHANNELS, EqualConv2d, EqualLinear
from faceeditor.neural.gar import DEFAULT_CHANNELS as GCH

NAME = "gar_inverter"
DEFAULT_CHANNELS = {512: 16, 256: 16, 128: 24, 64: 48, 32: 96, 16: 128, 8: 192, 4: 192}


class VBlock(nn.Module):
    """Residual block; ``down`` halves the resolution (average pool) before its second conv."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv0 = EqualConv2d(cin, cin, 3, act=True)
        self.conv1 = EqualConv2d(cin, cout, 3, act=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv0(x)
        if self.down:
            y, x = F.avg_pool2d(y, 2), F.avg_pool2d(x, 2)
        return (self.conv1(y) + self.skip(x)) * (1.0 / math.sqrt(2.0))


class Inverter(nn.Module):
    """V(image, cond) -> (z_hat (B, z_dim), features at G's resolutions 4 .. S/2 px (4 px first), G's widths)."""

    def __init__(self, size: int = 128, z_dim: int = 256, g_channels: dict | None = None,
                 channels: dict | None = None, mlp_layers: int = 4, hidden: int = 512,
                 cond_channels: int = COND_CHANNELS) -> None:
        super().__init__()

        ch = {int(k): int(v) for k, v in (channels or DEFAULT_CHANNELS).items()}
        gch = {int(k): int(v) for k, v in (g_channels or GCH).items()}
        res = [2 ** i for i in range(int(math.log2(size)), 1, -1)]  # size ... 4
        ch = {r: ch.get(r, DEFAULT_CHANNELS.get(r, 32)) for r in res}
        gch = {r: gch.get(r, GCH.get(r, 16)) for r in res}
        self.arch = {"size": size, "z_dim": z_dim, "g_channels": {str(k): v for k, v in gch.items()},
                     "channels": {str(k): v for k, v in ch.items()}, "mlp_layers": mlp_layers, "hidden": hidden,
                     "cond_channels": cond_channels}
        self.size, self.z_dim = size, z_dim
        self.res = res[1:]  # feature resolutions: size/2 ... 4
        self.stem = EqualConv2d(3 + cond_channels, ch[size], 3, act=True)
        blocks = [VBlock(ch[size], ch[res[1]], down=False)]
        for a, b in zip(res[1:-1], res[2:]):
            blocks.append(VBlock(ch[a], ch[b], down=True))
        self.blocks = nn.ModuleList(blocks)  # outputs at size/2, ..., 4
        self.to_g = nn.ModuleList([nn.Conv2d(ch[r], gch[r], 1) for r in self.res])
        stat = 2 * sum(ch[r] for r in self.res)
        dims = [stat] + [hidden] * (mlp_layers - 1)
        layers = [EqualLinear(a, b, act=True) for a, b in zip(dims[:-1], dims[1:])]
        self.mlp = nn.Sequential(*layers, EqualLinear(dims[-1], z_dim))

    def forward(self, image: torch.Tensor, cond: torch.Tensor, return_features: bool = True):
        x = torch.cat([image * 2.0 - 1.0, cond.to(image.dtype)], 1).contiguous(memory_format=torch.channels_last)
        x = F.avg_pool2d(self.stem(x), 2)
        stats, feats = [], []
        for blk, proj in zip(self.blocks, self.to_g):
            x = blk(x)
            xf = x.float()
            stats += [xf.mean((2, 3)), xf.var((2, 3), unbiased=False).add(1e-6).sqrt()]
            if return_features:
                feats.append(proj(x))
        z = self.mlp(torch.cat(stats, 1))
        if not return_features:
            return z
        return z.float(), feats[::-1]
