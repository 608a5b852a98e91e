"""Building blocks shared by the small CPU networks N, FR and R: conv-BN-ReLU, residual blocks,
a strided encoder, input normalisation and the CPU inference settings (channels-last, bf16)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.5, 0.45, 0.4)
STD = (0.25, 0.25, 0.25)


def normalize_image(x: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) RGB in [0,1] -> roughly zero-mean, unit-variance input."""
    m = x.new_tensor(MEAN).view(1, 3, 1, 1)
    s = x.new_tensor(STD).view(1, 3, 1, 1)
    return (x - m) / s


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Basic residual block (two 3x3 convs); strided / widening blocks project the shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = ConvBN(cin, cout, 3, stride)
        self.conv2 = ConvBN(cout, cout, 3, 1, act=False)
        self.short = None if (cin == cout and stride == 1) else ConvBN(cin, cout, 1, stride, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.short is None else self.short(x)
        return F.relu(self.conv2(self.conv1(x)) + s, inplace=True)


class Encoder(nn.Module):
    """Stem (stride 2) then one stage per width, each halving the resolution; returns every
    stage's features (finest first). 128 px in -> 64, 32, 16, 8 (, 4) px."""

    def __init__(self, widths: tuple[int, ...], blocks: tuple[int, ...] | int = 1, stem: int | None = None) -> None:
        super().__init__()
        stem = stem or widths[0]
        self.stem = ConvBN(3, stem, 3, 2)
        nb = blocks if isinstance(blocks, tuple) else (blocks,) * len(widths)
        stages = []
        cin = stem
        for i, (w, n) in enumerate(zip(widths, nb)):
            layers = [ResBlock(cin, w, 1 if i == 0 else 2)] + [ResBlock(w, w) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(normalize_image(x))
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        return feats


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm (or per-channel ``Affine`` with ``weight``/``bias``) that directly
    follows a conv into the conv (in place; for inference only: the folded model trains differently)."""
    for mod in model.modules():
        children = list(mod.named_children())
        for (_, a), (nb, b) in zip(children, children[1:]):
            if not isinstance(a, nn.Conv2d):
                continue
            if isinstance(b, nn.BatchNorm2d):
                scale = b.weight / torch.sqrt(b.running_var + b.eps)
                shift = b.bias - b.running_mean * scale
            elif type(b).__name__ == "Affine":
                scale, shift = b.weight, b.bias
            else:
                continue
            with torch.no_grad():
                bias = a.bias if a.bias is not None else torch.zeros_like(scale)
                a.weight.mul_(scale.view(-1, 1, 1, 1))
                a.bias = nn.Parameter(bias * scale + shift)
            setattr(mod, nb, nn.Identity())
    return model


def prepare_for_cpu(model: nn.Module, fuse: bool = True) -> nn.Module:
    """Inference set-up: eval mode, conv+BN folded, channels-last memory (faster convolutions on CPU)."""
    model = model.eval()
    if fuse:
        fuse_conv_bn(model)
    return model.to(memory_format=torch.channels_last)


def autocast(device: torch.device | str = "cpu", enabled: bool = True) -> torch.autocast:
    """The networks' reduced precision: bf16 autocast on ``device`` (a :class:`torch.device` or a
    device type such as ``"cpu"``); 1.3-3x faster on CPUs with AVX512-BF16, and G was trained under
    it. ``enabled=False`` runs float32 (it also switches off an enclosing autocast)."""
    device_type = device.type if isinstance(device, torch.device) else torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=enabled)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``model``."""
    return sum(p.numel() for p in model.parameters())
