"""G: the Generative Adversarial Renderer (GAR, ``../shared/papers/000_...txt`` eq. 1-5).

``G(cond, shading, z, noise) -> image``: a StyleGAN2-style synthesis network of *Render Blocks*
(one per resolution, 4 px up to ``size``), styled by ``w = M(z)`` (eq. 2) through modulated and
demodulated 3x3 convolutions (eq. 1, 3), with a Normal Injection Module after every convolution
(eq. 4), then noise, bias and leaky ReLU; skip-connected toRGB layers sum the output over
resolutions.

Inputs (all in the aligned crop of :mod:`faceeditor.neural.align`, camera frame +z toward the
camera):

* ``cond`` (B, :data:`COND_CHANNELS`, S, S) = :func:`condition_map`: the unit normal map n (0 off
  the head) and a one-hot of the region labels 1-5 (:mod:`faceeditor.neural.labels`: skin, eyes,
  mouth, outer face, head/neck), all functions of the geometry (alpha, beta, theta). Channels:
  :data:`NORMAL_CHANNELS` then :data:`REGION_CHANNELS`; read them with :func:`normals_of`,
  :func:`regions_of` and :func:`region_of`, never by raw slices.
* ``shading`` (B,3,S,S) = :func:`shading_map`: the SH irradiance of the normal map (RGB, 0 off the
  head). Beyond the paper: lighting is an explicit input instead of being hidden in z.
* ``z`` (B, z_dim) ~ N(0, I) (or ``w`` directly); ``noise`` per layer (:meth:`Generator.make_noise`).

Normal Injection Module (how eq. 4 is realised): ``f'' = f' * (1 + gamma(c)) + beta(c)`` where
``c`` is ``cond`` resized to the layer's resolution (area average) and ``gamma, beta`` are
per-channel, per-pixel maps from a small conv (3x3 to ``nim_hidden`` channels, leaky ReLU, 1x1
to 2C). The multiplicative part is the paper's per-pixel normal modulation generalised from a
scalar ``n_xy`` to learned per-channel scales; the additive part (SPADE-like) lets a feature
switch on where, e.g., the eyes are. The last 1x1 starts at zero, so the module starts as the
identity.

Shading: the final toRGB layers produce two images, an albedo-like ``A`` and a residual ``B``, and
``image = A * shading + B``. Shading enters only there, pixel by pixel, so changing the light
changes the image exactly where the shading changes (and nowhere else), in proportion to ``A``:
relighting is explicit and local by construction; ``B`` carries what is not lit by the face's
light (background, hair, specular). Trainers penalise ``B`` on the face so the lit part goes
through ``A`` (``trainers/train_gar.py``).

Modulated convolution uses the non-fused form (scale the input channels by the style, convolve
with the shared kernel, scale each output channel by the demodulation coefficient), which equals
eq. 1 exactly (:func:`modulated_conv2d`, tested against the per-sample kernels of eq. 1) and runs
as one ordinary convolution (fast on CPU with channels-last and bf16). Equalised learning rate as
in StyleGAN2 (weights stored N(0,1), scaled at run time); the mapping network has a 0.01 learning
rate multiplier.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from faceeditor.neural.labels import MOUTH, REGION_NAMES, SKIN
from faceeditor.render.sh import sh_shading

NAME = "gar_generator"
N_REGIONS = len(REGION_NAMES) - 1  # region labels 1..5 (0 is the background: no channel)
NORMAL_CHANNELS = slice(0, 3)  # the unit camera-frame normal (x, y, z), 0 off the head
REGION_CHANNELS = slice(3, 3 + N_REGIONS)  # one-hot of the region labels 1..N_REGIONS, in label order
COND_CHANNELS = REGION_CHANNELS.stop  # 8
LRELU_GAIN = math.sqrt(2.0)
DEFAULT_CHANNELS = {4: 256, 8: 256, 16: 128, 32: 96, 64: 48, 128: 24, 256: 16, 512: 8}


# ----------------------------------------------------------------------------- inputs
def condition_map(normal: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """G's geometry input: unit normals (B,3,H,W) (0 off the head) and region labels (B,H,W) or
    (B,1,H,W) (0 background, 1..5 as :mod:`faceeditor.neural.labels`) -> (B, 8, H, W)."""
    if region.ndim == 4:
        region = region[:, 0]
    region = region.long()
    onehot = torch.stack([(region == k) for k in range(1, N_REGIONS + 1)], 1).to(normal.dtype)
    head = (region > 0).to(normal.dtype)[:, None]
    return torch.cat([normal * head, onehot], 1)


def region_channels(first: int = 1, last: int = N_REGIONS) -> slice:
    """The condition channels of region labels ``first..last`` (inclusive, :mod:`faceeditor.neural.labels`)."""
    if not 1 <= first <= last <= N_REGIONS:
        raise ValueError(f"region labels {first}..{last} outside 1..{N_REGIONS}")
    return slice(REGION_CHANNELS.start + first - 1, REGION_CHANNELS.start + last)


def normals_of(cond: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) normal map of a condition map (0 off the head)."""
    return cond[:, NORMAL_CHANNELS]


def regions_of(cond: torch.Tensor, first: int = 1, last: int = N_REGIONS) -> torch.Tensor:
    """(B,k,H,W) one-hot channels of region labels ``first..last`` of a condition map (all by default)."""
    return cond[:, region_channels(first, last)]


def region_of(cond: torch.Tensor, label: int) -> torch.Tensor:
    """(B,1,H,W) one-hot channel of one region label, e.g. ``region_of(cond, SKIN)``."""
    return cond[:, region_channels(label, label)]


def head_mask(cond: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) head coverage of a condition map."""
    return regions_of(cond).sum(1, keepdim=True).clamp(max=1.0)


def face_mask(cond: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) face mask of a condition map: skin, eyes, mouth (GAR eq. 6's P)."""
    return regions_of(cond, SKIN, MOUTH).sum(1, keepdim=True).clamp(max=1.0)


def shading_map(cond: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """SH irradiance (B,3,H,W) of the condition map's normals under ``sh`` (B,9,3) (or (9,3)),
    0 off the head (:func:`faceeditor.render.sh.sh_shading`)."""
    if sh.ndim == 2:
        sh = sh[None].expand(cond.shape[0], 9, 3)
    n = normals_of(cond).float()
    return sh_shading(n, sh.float()) * head_mask(cond).float()


# ----------------------------------------------------------------------------- layers
class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (StyleGAN): weights N(0,1)/lr_mul, scaled at run time."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(cin)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(y, 0.2) * LRELU_GAIN if self.act else y


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate; optional leaky ReLU (gain sqrt 2)."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True, act: bool = False, stride: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.pad, self.stride, self.act = k // 2, stride, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.pad)
        return F.leaky_relu(y, 0.2) * LRELU_GAIN if self.act else y


class MappingNetwork(nn.Module):
    """M: z -> w (eq. 2): pixel-norm, then ``layers`` equalised linear layers (lr x 0.01) with leaky ReLU.
    Keeps a running average of w (``w_avg``) for truncation and as a neutral starting code."""

    def __init__(self, z_dim: int, w_dim: int, layers: int = 4, lr_mul: float = 0.01) -> None:
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims[:-1], dims[1:])])
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        return self.net(z)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     eps: float = 1e-8, wsq: torch.Tensor | None = None, gain: float = 1.0) -> torch.Tensor:
    """Eq. 1 + 3 for a batch: ``x`` (B,Cin,H,W), ``weight`` (Cout,Cin,k,k), ``styles`` (B,Cin).

    ``k'_lcij = w_c k_lcij / sqrt(sum_{c,i,j} (w_c k_lcij)^2 + eps)``. For B > 1 computed without
    per-sample kernels, ``conv(x * w, k) * d_l`` with ``d_l = 1/sqrt(sum_c w_c^2 sum_ij k_lcij^2 + eps)``
    (one ordinary convolution); for B = 1 the kernel k' itself is formed (no full-size multiplies).
    ``wsq`` optionally passes the cached (Cout,Cin) ``sum_ij k^2``; the output is multiplied by ``gain``
    (folded into the per-channel factor, so it costs nothing).
    """
    pad = weight.shape[-1] // 2
    with torch.autocast(device_type=x.device.type, enabled=False):
        st = styles.float()
        d = None
        if demodulate:
            if wsq is None:
                wsq = weight.float().square().sum((2, 3))  # (Cout,Cin)
            d = torch.rsqrt(st.square() @ wsq.t() + eps) * gain  # (B,Cout)
        elif gain != 1.0:
            st = st * gain
        if x.shape[0] == 1:
            k = weight.float() * st[0][None, :, None, None]
            if d is not None:
                k = k * d[0][:, None, None, None]
    if x.shape[0] == 1:
        return F.conv2d(x, k.to(x.dtype), padding=pad)
    y = F.conv2d(x * st.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding=pad)
    return y if d is None else y * d.to(y.dtype)[:, :, None, None]


class ModulatedConv(nn.Module):
    """A style-modulated (and by default demodulated) convolution; the style is an affine map of w.
    ``in_gain`` multiplies the result (the sqrt 2 gain of the previous leaky ReLU, folded in here:
    a convolution is linear in its input)."""

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True,
                 in_gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.demodulate = demodulate
        self.in_gain = in_gain
        self._wsq: tuple | None = None  # cached sum of squared kernel weights (inference)

    def _weight_sq(self) -> torch.Tensor | None:
        """(Cout,Cin) sum of squared kernels, cached while the weights do not change and no gradient is needed."""
        wt = self.weight
        if torch.is_grad_enabled() and wt.requires_grad:
            return None
        key = (wt.data_ptr(), wt._version, wt.device)
        if self._wsq is None or self._wsq[0] != key:
            self._wsq = (key, wt.detach().float().square().sum((2, 3)))
        return self._wsq[1]

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w.float())
        if not self.demodulate:
            return modulated_conv2d(x, self.weight, styles * self.scale, demodulate=False, gain=self.in_gain)
        return modulated_conv2d(x, self.weight, styles, demodulate=True, wsq=self._weight_sq(), gain=self.in_gain)


class NormalInjection(nn.Module):
    """NIM (eq. 4): ``f * gamma(h) + beta(h)``, ``gamma = 1 + ...`` and ``beta`` per-channel, per-pixel
    maps (one 1x1 conv) of the condition's hidden features ``h`` (computed once per resolution by the
    block's :class:`ConditionEncoder`). Starts as the identity (gamma 1, beta 0). ``beta`` also
    carries the layer's bias."""

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.channels = channels
        self.out = nn.Conv2d(hidden, 2 * channels, 1)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[:channels] = 1.0

    def maps(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.out(h).split(self.channels, 1)

    def forward(self, f: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.maps(h)
        return torch.addcmul(beta, f, gamma)


class ConditionEncoder(nn.Module):
    """The NIMs' shared first layer at one resolution: 3x3 conv of the resized condition + leaky ReLU."""

    def __init__(self, cond_channels: int = COND_CHANNELS, hidden: int = 32) -> None:
        super().__init__()
        self.conv = EqualConv2d(cond_channels, hidden, 3, act=True)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.conv(c)


class SynthesisLayer(nn.Module):
    """[2x bilinear up] -> modulated 3x3 conv -> NIM (+ bias) -> noise -> leaky ReLU.

    The activation's sqrt 2 gain is folded into the styles of the layers that consume the output
    (``ModulatedConv.in_gain``), which is exact since modulation scales the input channels.
    """

    def __init__(self, cin: int, cout: int, w_dim: int, up: bool, nim_hidden: int, in_gain: float) -> None:
        super().__init__()
        self.up = up
        self.conv = ModulatedConv(cin, cout, 3, w_dim, in_gain=in_gain)
        self.nim = NormalInjection(cout, nim_hidden)
        self.noise_strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, w: torch.Tensor, h: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        y = self.conv(x, w)
        gamma, beta = self.nim.maps(h)
        if noise is not None:
            beta = torch.addcmul(beta, noise.to(beta.dtype), self.noise_strength.to(beta.dtype))
        return F.leaky_relu(torch.addcmul(beta, y, gamma), 0.2)


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation -> ``out`` channels (here: albedo A and residual B)."""

    def __init__(self, cin: int, w_dim: int, out: int = 6) -> None:
        super().__init__()
        self.conv = ModulatedConv(cin, out, 1, w_dim, demodulate=False, in_gain=LRELU_GAIN)
        self.bias = nn.Parameter(torch.zeros(out))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w).float() + self.bias[None, :, None, None]


class RenderBlock(nn.Module):
    """One resolution of G (Fig. 3): [up] conv-NIM-noise, conv-NIM-noise, toRGB."""

    def __init__(self, cin: int, cout: int, w_dim: int, first: bool, cond_channels: int, nim_hidden: int) -> None:
        super().__init__()
        self.first = first
        self.cond = ConditionEncoder(cond_channels, nim_hidden)
        self.conv0 = None if first else SynthesisLayer(cin, cout, w_dim, True, nim_hidden, LRELU_GAIN)
        self.conv1 = SynthesisLayer(cout if not first else cin, cout, w_dim, False, nim_hidden,
                                    1.0 if first else LRELU_GAIN)
        self.torgb = ToRGB(cout, w_dim)
        self.n_layers = 1 if first else 2


# ----------------------------------------------------------------------------- G
class Generator(nn.Module):
    """G(cond, shading, z, noise) -> image (B,3,S,S), values near [0,1] (clamp for display)."""

    def __init__(self, size: int = 128, z_dim: int = 256, w_dim: int = 256, mapping_layers: int = 4,
                 channels: dict | None = None, nim_hidden: int = 32, cond_channels: int = COND_CHANNELS) -> None:
        super().__init__()
        ch = {int(k): int(v) for k, v in (channels or DEFAULT_CHANNELS).items()}
        self.resolutions = [2 ** i for i in range(2, int(math.log2(size)) + 1)]
        ch = {r: ch.get(r, DEFAULT_CHANNELS.get(r, 16)) for r in self.resolutions}
        self.arch = {"size": size, "z_dim": z_dim, "w_dim": w_dim, "mapping_layers": mapping_layers,
                     "channels": {str(k): v for k, v in ch.items()}, "nim_hidden": nim_hidden,
                     "cond_channels": cond_channels}
        self.size, self.z_dim, self.w_dim = size, z_dim, w_dim
        self.channels = ch
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        blocks = []
        for i, r in enumerate(self.resolutions):
            cin = ch[4] if i == 0 else ch[self.resolutions[i - 1]]
            blocks.append(RenderBlock(cin, ch[r], w_dim, i == 0, cond_channels, nim_hidden))
        self.blocks = nn.ModuleList(blocks)
        self.n_noise = sum(b.n_layers for b in self.blocks)

    # ------------------------------------------------------------------ noise
    def noise_shapes(self) -> list[tuple[int, int]]:
        """(H, W) of every noise layer, in the order :meth:`forward` consumes them."""
        out = []
        for r, b in zip(self.resolutions, self.blocks):
            out += [(r, r)] * b.n_layers
        return out

    def make_noise(self, batch: int = 1, mode: str = "random", generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> list[torch.Tensor]:
        """Per-layer noise maps (batch,1,H,W): ``random`` N(0,1) or ``zero``."""
        dev = device or self.const.device
        if mode == "zero":
            return [torch.zeros(batch, 1, h, w, device=dev) for h, w in self.noise_shapes()]
        return [torch.randn(batch, 1, h, w, generator=generator).to(dev) for h, w in self.noise_shapes()]

    # ------------------------------------------------------------------ forward
    def condition_pyramid(self, cond: torch.Tensor) -> dict[int, torch.Tensor]:
        """The condition map at every resolution (area averages of the full-size map)."""
        out = {cond.shape[-1]: cond}
        c = cond
        while c.shape[-1] > 4:
            c = F.avg_pool2d(c, 2)
            out[c.shape[-1]] = c
        return out

    def mapping_w(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        w = self.mapping(z)
        if truncation != 1.0:
            w = self.mapping.w_avg + truncation * (w - self.mapping.w_avg)
        return w

    def forward(self, cond: torch.Tensor, shading: torch.Tensor, z: torch.Tensor | None = None,
                noise: list[torch.Tensor] | str | None = "random", w: torch.Tensor | None = None,
                truncation: float = 1.0, return_features: bool = False, return_layers: bool = False):
        """Render. ``noise``: a list of maps, ``"random"``, ``"zero"`` or None (no noise).

        Returns the image (B,3,S,S) float32; with ``return_features`` also the list of the Render
        Blocks' output features (4 px first; eq. 11's G_i); with ``return_layers`` instead a dict
        with ``image``, ``albedo`` (A), ``residual`` (B) and ``features``.
        """
        if w is None:
            w = self.mapping_w(z, truncation)
        B = cond.shape[0]
        if w.shape[0] != B:
            w = w.expand(B, -1)
        if isinstance(noise, str):
            noise = self.make_noise(B, noise, device=cond.device)
        pyr = self.condition_pyramid(cond.contiguous(memory_format=torch.channels_last))
        x = self.const.expand(B, -1, -1, -1).contiguous(memory_format=torch.channels_last)
        rgb = None
        feats = []
        k = 0
        for r, blk in zip(self.resolutions, self.blocks):
            h = blk.cond(pyr[r])
            if blk.conv0 is not None:
                x = blk.conv0(x, w, h, None if noise is None else noise[k])
                k += 1
            x = blk.conv1(x, w, h, None if noise is None else noise[k])
            k += 1
            feats.append(x)
            y = blk.torgb(x, w)
            rgb = y if rgb is None else F.interpolate(rgb, scale_factor=2.0, mode="bilinear", align_corners=False) + y
        A = rgb[:, :3] + 0.5
        Bres = rgb[:, 3:] + 0.25
        image = A * shading.float() + Bres
        if return_layers:
            return {"image": image, "albedo": A, "residual": Bres, "features": feats}
        if return_features:
            return image, feats
        return image

    @torch.no_grad()
    def update_w_avg(self, z: torch.Tensor, beta: float = 0.995) -> None:
        w = self.mapping(z).mean(0)
        self.mapping.w_avg.copy_(w.lerp(self.mapping.w_avg, beta))

    def tunable_parameters(self, min_resolution: int = 16) -> list[tuple[str, nn.Parameter]]:
        """Parameters pivotal tuning adapts (:mod:`faceeditor.neural.invert`): the Render Blocks at
        ``min_resolution`` px and above (detail and colour; the coarse structure stays)."""
        out = []
        for r, blk in zip(self.resolutions, self.blocks):
            if r >= min_resolution:
                out += [(f"blocks.{self.resolutions.index(r)}.{n}", p) for n, p in blk.named_parameters()]
        return out
