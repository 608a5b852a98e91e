"""D: the residual discriminator of the GAR renderer (StyleGAN2's ResNet D), *conditional*.

D sees the image concatenated with G's geometry condition (normal map + region one-hot,
:func:`faceeditor.neural.gar.condition_map`) and the shading's luminance, so it judges whether
the image is a real photo *of that geometry under that light*, not only whether it is a
realistic face (a strengthening of GAR's unconditional D: it pushes G to follow n and s).

Layout: a 1x1 fromRGB at full resolution, residual down-sampling blocks (3x3 conv, 2x2 average
pool, 3x3 conv; skip: pool + 1x1; sum / sqrt 2) down to 4 px, minibatch standard deviation, a
3x3 conv, and two linear layers to one logit. :meth:`Discriminator.forward` can also return the
blocks' features (used as a perceptual feature loss by the inversion, since VGG is not
available, :mod:`faceeditor.neural.losses`).

:func:`diff_augment` is a differentiable augmentation (DiffAugment: colour and translation)
applied to real and fake alike before D, with the condition shifted with its image.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceeditor.neural.gar import COND_CHANNELS, EqualConv2d, EqualLinear

NAME = "gar_discriminator"
DEFAULT_CHANNELS = {512: 16, 256: 16, 128: 32, 64: 64, 32: 96, 16: 128, 8: 160, 4: 160}


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3, act=True)
        self.conv1 = EqualConv2d(cin, cout, 3, act=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.skip(F.avg_pool2d(x, 2))
        x = self.conv1(F.avg_pool2d(self.conv0(x), 2))
        return (x + s) * (1.0 / math.sqrt(2.0))


class Discriminator(nn.Module):
    """D(image, cond, shading) -> logits (B,)."""

    def __init__(self, size: int = 128, channels: dict | None = None, cond_channels: int = COND_CHANNELS,
                 mbstd_group: int = 4) -> None:
        super().__init__()
        ch = {int(k): int(v) for k, v in (channels or DEFAULT_CHANNELS).items()}
        res = [2 ** i for i in range(int(math.log2(size)), 1, -1)]  # size ... 4
        ch = {r: ch.get(r, DEFAULT_CHANNELS.get(r, 32)) for r in res}
        self.arch = {"size": size, "channels": {str(k): v for k, v in ch.items()}, "cond_channels": cond_channels,
                     "mbstd_group": mbstd_group}
        self.size, self.mbstd_group = size, mbstd_group
        self.in_channels = 3 + cond_channels + 1
        self.from_rgb = EqualConv2d(self.in_channels, ch[size], 1, act=True)
        self.blocks = nn.ModuleList([DBlock(ch[r], ch[r // 2]) for r in res[:-1]])
        c4 = ch[4]
        self.conv = EqualConv2d(c4 + 1, c4, 3, act=True)
        self.fc = EqualLinear(c4 * 16, c4, act=True)
        self.out = EqualLinear(c4, 1)

    def inputs(self, image: torch.Tensor, cond: torch.Tensor, shading: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image * 2.0 - 1.0, cond.to(image.dtype), shading.mean(1, keepdim=True).to(image.dtype) - 1.0], 1)
        return x.contiguous(memory_format=torch.channels_last)

    def minibatch_std(self, x: torch.Tensor, segments: tuple[int, ...] | None = None) -> torch.Tensor:
        """StyleGAN's minibatch standard deviation channel, computed within each of ``segments``
        (consecutive batch slices, e.g. fakes and reals of one forward, which must not share groups)."""
        if segments is not None and len(segments) > 1:
            parts = torch.split(x, list(segments))
            return torch.cat([self.minibatch_std(p) for p in parts])
        B, C, H, W = x.shape
        G = min(self.mbstd_group, B)
        while B % G:
            G -= 1
        y = x.float().reshape(G, -1, C, H, W)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))  # (B/G,)
        y = y.reshape(-1, 1, 1, 1).repeat(G, 1, H, W).to(x.dtype)
        return torch.cat([x, y], 1)

    def forward(self, image: torch.Tensor, cond: torch.Tensor, shading: torch.Tensor,
                return_features: bool = False, segments: tuple[int, ...] | None = None):
        # fromRGB in float32: oneDNN's bf16 double backward (R1) of a 12-channel 1x1 conv dies with
        # SIGFPE on one thread (torch 2.13); the layer is tiny
        with torch.autocast(device_type=image.device.type, enabled=False):
            x = self.from_rgb(self.inputs(image.float(), cond.float(), shading.float()))
        feats = []
        for blk in self.blocks:
            x = blk(x)
            feats.append(x)
        x = self.conv(self.minibatch_std(x, segments))
        logits = self.out(self.fc(x.flatten(1).float())).squeeze(1)
        return (logits, feats) if return_features else logits


# ----------------------------------------------------------------------------- augmentation
def diff_augment(image: torch.Tensor, cond: torch.Tensor, shading: torch.Tensor, g: torch.Generator,
                 p: float = 0.5, shift: float = 0.0625) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DiffAugment (Zhao et al. 2020) with probability ``p`` per image: brightness, saturation and
    contrast on the image; an integer translation of up to ``shift`` x size applied to image,
    condition and shading together (zero padding). Differentiable in ``image``."""
    B, _, H, W = image.shape
    dev = image.device

    def rnd(*shape):
        return torch.rand(*shape, generator=g).to(dev)

    on = (rnd(B, 1, 1, 1) < p).to(image.dtype)
    x = image + on * (rnd(B, 1, 1, 1) - 0.5) * 0.4
    m = x.mean(1, keepdim=True)
    x = (x - m) * (1.0 + on * (rnd(B, 1, 1, 1) * 2.0 - 1.0) * 0.5) + m
    m = x.mean((1, 2, 3), keepdim=True)
    x = (x - m) * (1.0 + on * (rnd(B, 1, 1, 1) - 0.5) * 0.5) + m
    s = int(H * shift + 0.5)
    if s > 0:
        tx = ((rnd(B) * (2 * s + 1)).long() - s) * (rnd(B) < p).long()
        ty = ((rnd(B) * (2 * s + 1)).long() - s) * (rnd(B) < p).long()
        stack = torch.cat([x, cond.to(x.dtype), shading.to(x.dtype)], 1)
        pad = F.pad(stack, (s, s, s, s))
        iy = (torch.arange(H, device=dev)[None, :] + s - ty.to(dev)[:, None])  # (B,H)
        ix = (torch.arange(W, device=dev)[None, :] + s - tx.to(dev)[:, None])  # (B,W)
        bidx = torch.arange(B, device=dev)[:, None, None]
        out = pad.permute(0, 2, 3, 1)[bidx, iy[:, :, None], ix[:, None, :]].permute(0, 3, 1, 2)
        c = cond.shape[1]
        x, cond, shading = out[:, :3], out[:, 3:3 + c].to(cond.dtype), out[:, 3 + c:].to(shading.dtype)
    return x, cond, shading
