"""G_p: GAR's renderer conditioned on the photo the 'Tax-free' way (feed-forward, no latent identity).

``G_p(rep) -> (image, alpha)`` for the representation rep(p) of :mod:`faceeditor.neural.photo_rep`
(the edited head textured with the photo, its hole mask, normals, SH shading, regions and the
warped photo), at any crop size divisible by 2^(levels-1):

* **Speed**: E_r reads rep space-to-depth (``unshuffle`` 2: 72 channels at S/2) and the output
  conv's channels are put back depth-to-space, so no layer runs at full resolution (a 256 px
  forward is ~30 ms of one CPU core in bf16; measured by ``faceeditor bench neural``).
* **E_r** (:class:`EncoderR`, 003 eq. 14): a stem at (unshuffled) full resolution, then one stage per level,
  each a transition (2x average pool + 1x1 conv) and a 1-3-1 bottleneck residual block whose last
  conv starts at zero; ``toFeat`` (1x1 conv + leaky ReLU) turns every stage's output ``e_i`` into
  the injected map ``c_i`` of the synthesis layer at that resolution.
* **Style**: ``w`` is an affine map of E_r's globally pooled coarsest features: the photo, not a
  latent code, sets the modulation (identity comes from the photo).
* **Synthesis** (:class:`InjectedLayer`): 003 eq. 7, ``l_i = W_i * [c_i ; s_i(w) . x] + B_i`` with
  GAR's modulated/demodulated convolution (000 eq. 1, 3; :func:`faceeditor.neural.gar.modulated_conv2d`)
  where the injected channels keep a fixed style of 1, then GAR's Normal Injection Module (000 eq. 4,
  :class:`faceeditor.neural.gar.NormalInjection`) on the normals and regions at that resolution,
  optional noise, leaky ReLU. It starts from E_r's coarsest features (no constant input), so the
  layout of the crop comes from the render.
* **Output**: a 1x1 conv (zero-initialised) gives an RGB residual over
  :func:`~faceeditor.neural.photo_rep.base_image` and an alpha logit: at initialisation the image
  *is* the textured render (over the warped photo), alpha 0.5. ``composite = base + alpha * residual``
  is what training compares with the photo; alpha tells the paste-back where G_p's pixels replace
  the compositor's.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from faceeditor.neural.gar import ConditionEncoder, EqualLinear, NormalInjection
from faceeditor.neural.photo_rep import NORMAL, REGIONS, REP_CHANNELS, base_image

NAME = "photo_g"
NIM_CHANNELS = (NORMAL.stop - NORMAL.start) + (REGIONS.stop - REGIONS.start)  # normals + region one-hot


@dataclass
class PhotoGConfig:
    """Architecture of G_p (stored with the weights)."""

    widths: tuple[int, ...] = (16, 32, 64, 128, 192)  # E_r / synthesis channels at S, S/2, S/4, ...
    inject: tuple[int, ...] = (8, 16, 32, 64, 96)  # injected c_i channels at each resolution
    extra_layers: tuple[int, ...] = (0, 0, 0, 1, 1)  # second synthesis layers at a resolution
    w_dim: int = 128
    nim_hidden: int = 16
    noise: bool = True  # per-layer noise (detail only; zero at inference by default)
    unshuffle: int = 2  # E_r reads rep space-to-depth by this factor; the output is depth-to-space'd back
    size: int = 256  # the crop size it was trained at: renderers work at it (any multiple of ``multiple`` runs)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class Bottleneck(nn.Module):
    """003's 1-3-1 residual block: activations only between convs, last conv initialised to 0."""

    def __init__(self, c: int) -> None:
        super().__init__()
        h = max(8, c // 2)
        self.a = nn.Conv2d(c, h, 1)
        self.b = nn.Conv2d(h, h, 3, padding=1)
        self.c = nn.Conv2d(h, c, 1)
        nn.init.zeros_(self.c.weight)
        nn.init.zeros_(self.c.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c(_lrelu(self.b(_lrelu(self.a(x)))))


class EncoderR(nn.Module):
    """E_r (003 eq. 14): ``e_0 = E_0(rep)``, ``e_i = E_i(e_{i-1})``; returns ``[e_0, e_1, ...]`` (finest first)."""

    def __init__(self, cin: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(cin, widths[0], 3, padding=1)
        self.blocks = nn.ModuleList([Bottleneck(w) for w in widths])
        self.trans = nn.ModuleList([nn.Conv2d(a, b, 1) for a, b in itertools.pairwise(widths)])

    def forward(self, rep: torch.Tensor) -> list[torch.Tensor]:
        x = self.blocks[0](_lrelu(self.stem(rep)))
        feats = [x]
        for t, blk in zip(self.trans, self.blocks[1:]):
            x = blk(t(F.avg_pool2d(x, 2)))
            feats.append(x)
        return feats


def injected_conv(x: torch.Tensor, c: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """003 eq. 7 with 000 eq. 1+3: ``W * [s . x ; c]`` demodulated over both parts, the injected ``c``
    with style 1; equal to :func:`~faceeditor.neural.gar.modulated_conv2d` of the concatenation with
    styles ``[s ; 1]`` but without copying the concatenation (two convolutions)."""
    cin = x.shape[1]
    with torch.autocast(device_type=x.device.type, enabled=False):
        st = torch.cat([styles.float(), styles.new_ones(styles.shape[0], weight.shape[1] - cin)], 1)
        d = torch.rsqrt(st.square() @ weight.float().square().sum((2, 3)).t() + 1e-8)  # (B,Cout)
    wx, wc = weight[:, :cin], weight[:, cin:]
    if x.shape[0] == 1:
        kx = (wx.float() * st[0, :cin][None, :, None, None] * d[0][:, None, None, None]).to(x.dtype)
        kc = (wc.float() * d[0][:, None, None, None]).to(x.dtype)
        return F.conv2d(x, kx, padding=1) + F.conv2d(c.to(x.dtype), kc, padding=1)
    y = F.conv2d(x * st[:, :cin].to(x.dtype)[:, :, None, None], wx.to(x.dtype), padding=1)
    y = y + F.conv2d(c.to(x.dtype), wc.to(x.dtype), padding=1)
    return y * d.to(y.dtype)[:, :, None, None]


class InjectedLayer(nn.Module):
    """003 eq. 7 + 000 eq. 4: [2x up] -> modulated conv of ``[c ; s(w) . x]`` (style 1 on ``c``)
    -> NIM(gamma, beta of the condition's hidden features) -> noise -> leaky ReLU."""

    def __init__(self, cin: int, cinj: int, cout: int, w_dim: int, nim_hidden: int, up: bool) -> None:
        super().__init__()
        self.up, self.cin, self.cinj = up, cin, cinj
        self.weight = nn.Parameter(torch.randn(cout, cin + cinj, 3, 3))
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.nim = NormalInjection(cout, nim_hidden)
        self.noise_strength = nn.Parameter(torch.zeros(()))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, w: torch.Tensor, h: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = injected_conv(x, c, self.weight, self.affine(w.float()))
        gamma, beta = self.nim.maps(h)
        if noise is not None:
            beta = torch.addcmul(beta, noise.to(beta.dtype), self.noise_strength.to(beta.dtype))
        return _lrelu(torch.addcmul(beta, y, gamma))


class PhotoG(nn.Module):
    """G_p(rep) -> dict(image, alpha, residual, base, composite); see the module docstring."""

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = PhotoGConfig.widths,
        inject: tuple[int, ...] | list[int] = PhotoGConfig.inject,
        extra_layers: tuple[int, ...] | list[int] = PhotoGConfig.extra_layers,
        w_dim: int = PhotoGConfig.w_dim,
        nim_hidden: int = PhotoGConfig.nim_hidden,
        noise: bool = PhotoGConfig.noise,
        unshuffle: int = PhotoGConfig.unshuffle,
        size: int = PhotoGConfig.size,
        cin: int = REP_CHANNELS,
    ) -> None:
        super().__init__()
        widths, inject, extra = tuple(widths), tuple(inject), tuple(extra_layers)
        if not len(widths) == len(inject) == len(extra):
            raise ValueError("widths, inject and extra_layers need one entry per resolution")
        cfg = PhotoGConfig(widths, inject, extra, w_dim, nim_hidden, noise, unshuffle, size)
        self.arch = {**asdict(cfg), "cin": cin}
        self.size = size
        self.levels = len(widths)
        self.use_noise = noise
        self.k = int(unshuffle)
        self.E = EncoderR(cin * self.k**2, widths)
        self.to_feat = nn.ModuleList([nn.Conv2d(w, c, 1) for w, c in zip(widths, inject)])
        self.style = EqualLinear(widths[-1], w_dim, act=True)
        self.cond = nn.ModuleList([ConditionEncoder(NIM_CHANNELS, nim_hidden) for _ in widths])
        layers: list[list[InjectedLayer]] = []
        for i in reversed(range(self.levels)):  # coarse to fine
            cin_i = widths[i] if i == self.levels - 1 else widths[i + 1]
            lst = [InjectedLayer(cin_i, inject[i], widths[i], w_dim, nim_hidden, up=i != self.levels - 1)]
            lst += [
                InjectedLayer(widths[i], inject[i], widths[i], w_dim, nim_hidden, up=False) for _ in range(extra[i])
            ]
            layers.append(lst)
        self.layers = nn.ModuleList([nn.ModuleList(lst) for lst in layers])
        self.out = nn.Conv2d(widths[0], 4 * self.k**2, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        """Crop sizes must be multiples of this."""
        return self.k * 2 ** (self.levels - 1)

    def forward(self, rep: torch.Tensor, noise: bool | None = None) -> dict[str, torch.Tensor]:
        if rep.shape[-1] % self.multiple or rep.shape[-2] % self.multiple:
            raise ValueError(f"crop size must be a multiple of {self.multiple}, got {tuple(rep.shape[-2:])}")
        use_noise = self.use_noise and (self.training if noise is None else noise)
        x0 = F.pixel_unshuffle(rep.contiguous(), self.k) if self.k > 1 else rep
        feats = self.E(x0.contiguous(memory_format=torch.channels_last))
        w = self.style(feats[-1].float().mean((2, 3)))
        cond = F.avg_pool2d(torch.cat([rep[:, NORMAL], rep[:, REGIONS]], 1), self.k)
        x = feats[-1]
        for k, lst in enumerate(self.layers):
            i = self.levels - 1 - k
            c = _lrelu(self.to_feat[i](feats[i]))
            ci = F.avg_pool2d(cond, 2**i) if i else cond
            h = self.cond[i](ci)
            for layer in lst:
                n = torch.randn(x.shape[0], 1, *c.shape[-2:], device=x.device) if use_noise else None
                x = layer(x, c, w, h, n)
        o = self.out(x).float()
        o = F.pixel_shuffle(o, self.k) if self.k > 1 else o
        base = base_image(rep.float())
        residual, alpha = o[:, :3], torch.sigmoid(o[:, 3:4])
        return {
            "image": base + residual,
            "alpha": alpha,
            "residual": residual,
            "base": base,
            "composite": base + alpha * residual,
        }
