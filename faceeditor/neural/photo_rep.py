"""rep(p): what the photo-conditioned renderer G_p sees of an (edited) head in its aligned crop.

The 'Tax-free' conditioning (``../shared/papers/003_...txt`` §2.3) feeds an encoder E_r with a
rendered representation of the 3DMM parameters p. Here p is the *edited* head, and the render is
textured with the photo itself (Zhou et al., rotate-and-render, CVPR 2020): every pixel of the
edited view looks up where the same surface point was in the photo (:func:`correspondence`) and
takes the photo's colour there when that point was visible and facing the camera. Channels of
:func:`representation` (read them with the slices below, never by raw numbers):

* ``TEXTURED`` (3): the photo's texture on the edited head (0 where the photo cannot supply it);
* ``CONF`` (1): its confidence in [0,1] (visibility in the photo x foreshortening), the hole mask;
* ``NORMAL`` (3): unit camera-frame normals of the edited head (0 off the head);
* ``SHADING`` (3): the SH irradiance of those normals under the target light (GAR's shading input);
* ``REGIONS`` (5): one-hot region labels 1..5 (:mod:`faceeditor.neural.labels`);
* ``WARPED`` (3): the warped photo layers around and under the head (the mesh compositor's
  output at inference; an emulation of it in training: :func:`push_pull_fill`).

:func:`base_image` is what G_p's residual is added to: the textured render where it is
confident, the warped photo elsewhere. Everything is batched and works at any crop size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.neural.labels import RegionTable, region_map
from faceeditor.render.fragments import Fragments
from faceeditor.render.interpolate import interpolate, interpolate_packed
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import sh_shading

TEXTURED = slice(0, 3)
CONF = slice(3, 4)
NORMAL = slice(4, 7)
SHADING = slice(7, 10)
REGIONS = slice(10, 15)
WARPED = slice(15, 18)
REP_CHANNELS = 18
N_REGIONS = REGIONS.stop - REGIONS.start
DEPTH_TOL_CM = 1.0  # a surface point is visible in a view when within this of the view's z-buffer
FACING = (0.1, 0.35)  # confidence ramps from 0 to 1 as the normal's z in the source view crosses these


def project(verts: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Crop-camera points (B,V,3) -> screen (B,V,3) [x px, y px, depth = -Z] with a per-sample focal
    (B,) and principal point (B,2) (:func:`faceeditor.core.camera.project` convention)."""
    depth = -verts[..., 2]
    inv = 1.0 / depth.clamp(min=1e-3)
    f = focal.reshape(-1, 1).to(verts)
    c = principal.reshape(-1, 1, 2).to(verts)
    return torch.stack([c[..., 0] + f * verts[..., 0] * inv, c[..., 1] - f * verts[..., 1] * inv, depth], -1)


@dataclass
class HeadView:
    """One rasterized view of a batch of heads (same mesh topology in every view)."""

    frags: Fragments
    screen: torch.Tensor  # (B,V,3) screen vertices
    normals: torch.Tensor  # (B,V,3) unit camera-frame vertex normals
    depth: torch.Tensor  # (B,1,H,W) view depth, 0 off the head
    normal_map: torch.Tensor  # (B,3,H,W) unit normals, 0 off the head
    region: torch.Tensor  # (B,H,W) uint8 labels, 0 off the head


@torch.no_grad()
def rasterize_view(
    model: FaceModel, table: RegionTable, verts: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor, size: int
) -> HeadView:
    """Rasterize crop-frame ``verts`` (B,V,3) into ``size`` px views (back faces culled)."""
    faces = table.faces.to(verts.device)
    screen = project(verts.float(), focal, principal)
    normals = vertex_normals(verts.float(), model.faces.to(verts.device))
    frags = rasterize(screen, faces, size, size, cull_backfaces=True)
    nmap = F.normalize(interpolate(normals, frags, faces), dim=1, eps=1e-8)
    return HeadView(frags, screen, normals, frags.depth_map(0.0), nmap, region_map(table, frags))


def _ramp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)


@torch.no_grad()
def correspondence(dst: HeadView, src: HeadView, table: RegionTable) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each pixel of ``dst`` shows a surface point that ``src`` saw: ``grid`` (B,H,W,2)
    (``grid_sample`` coordinates into the ``src`` image, align_corners=False) and ``conf``
    (B,1,H,W): 1 where the point is in front in ``src`` (z-buffer within :data:`DEPTH_TOL_CM`) and
    faces its camera, ramped by foreshortening, 0 off the ``dst`` head."""
    fr = dst.frags
    B, H, W = fr.batch, fr.height, fr.width
    faces = table.faces.to(fr.pix.device)
    b = fr.batch_index
    pos = interpolate_packed(src.screen, faces, fr.face, fr.bary, b)  # (N,3): x, y, depth in src
    nz = F.normalize(interpolate_packed(src.normals, faces, fr.face, fr.bary, b), dim=1)[:, 2]
    S = src.depth.shape[-1]
    xi, yi = pos[:, 0].floor().long(), pos[:, 1].floor().long()
    inside = (xi >= 0) & (xi < S) & (yi >= 0) & (yi < S)
    zbuf = src.depth[b, 0, yi.clamp(0, S - 1), xi.clamp(0, S - 1)]
    seen = inside & (zbuf > 0) & ((pos[:, 2] - zbuf).abs() < DEPTH_TOL_CM)
    conf = torch.zeros(B * H * W, device=pos.device)
    conf[fr.pix] = seen.float() * _ramp(nz, *FACING)
    g = torch.arange(W, device=pos.device, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(g, g, indexing="ij")
    grid = torch.stack([xx, yy], -1).expand(B, H, W, 2).reshape(-1, 2).clone()
    grid[fr.pix] = pos[:, :2].float()
    return (grid.view(B, H, W, 2) / S) * 2.0 - 1.0, conf.view(B, 1, H, W)


def warp(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``image`` (B,C,H,W) sampled along a :func:`correspondence` grid (bilinear)."""
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)


def push_pull_fill(rgb: torch.Tensor, weight: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """A smooth fill of ``rgb`` (B,3,H,W) from its pixels of ``weight`` (B,1,H,W): weighted averages
    over a pyramid, coarse levels filling what fine ones lack (the blurry colours of a mesh fill)."""
    num, den = rgb * weight, weight
    pyr = [(num, den)]
    for _ in range(levels):
        num, den = F.avg_pool2d(num, 2), F.avg_pool2d(den, 2)
        pyr.append((num, den))
    out = pyr[-1][0] / pyr[-1][1].clamp(min=1e-6)
    for num, den in reversed(pyr[:-1]):
        up = F.interpolate(out, size=num.shape[-2:], mode="bilinear", align_corners=False)
        w = (den * 4.0).clamp(max=1.0)
        out = w * (num / den.clamp(min=1e-6)) + (1.0 - w) * up
    return out


def region_onehot(region: torch.Tensor) -> torch.Tensor:
    """(B,H,W) labels -> (B,5,H,W) one-hot of labels 1..5."""
    r = region.long()
    return torch.stack([(r == k) for k in range(1, N_REGIONS + 1)], 1).float()


def representation(
    textured: torch.Tensor, conf: torch.Tensor, view: HeadView, sh: torch.Tensor, warped: torch.Tensor
) -> torch.Tensor:
    """rep(p) (B, :data:`REP_CHANNELS`, H, W) of an edited head ``view`` textured by ``textured`` with
    confidence ``conf``, lit by ``sh`` (B,9,3) in the crop frame, over the ``warped`` photo."""
    head = (view.region > 0)[:, None].float()
    shading = sh_shading(view.normal_map, sh.float().to(view.normal_map)) * head
    return torch.cat(
        [textured.float() * conf, conf, view.normal_map, shading, region_onehot(view.region), warped.float()], 1
    )


def base_image(rep: torch.Tensor) -> torch.Tensor:
    """The image G_p's residual is added to (B,3,H,W): the textured render where confident, the
    warped photo elsewhere (``textured`` is stored premultiplied by ``conf``)."""
    conf = rep[:, CONF]
    return rep[:, TEXTURED] + (1.0 - conf) * rep[:, WARPED]
