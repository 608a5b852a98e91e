"""UV texture from the photo: unprojection with visibility, symmetry fill, push-pull inpainting.

Every texel of the face and head tiles of the atlas (:mod:`faceeditor.render.atlas`) is a
fixed surface point (triangle + barycentrics, found once by rasterizing the mesh in UV space).
For a fitted face, each texel's posed 3D point is projected into the photo and sampled where it
is visible (depth within a tolerance of the z-buffer, normal facing the camera); the albedo is
the sample divided by the SH shading on its normal. Texels the photo does not show are taken
from the mirrored texel (the face tile is left/right symmetric about u = 0.5) and what remains
is filled by push-pull (mean of the seen neighbourhood at ever coarser scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.morphable.model import FaceModel
from faceeditor.render.atlas import base_atlas, tile_slice
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import sh_shading

PHOTO_TILES = ("M_Face", "M_BackHead")
GRAZING_RAMP = 0.5  # texel weight ((n . view - min_facing) / GRAZING_RAMP)^2, clamped to [0, 1]
SHADE_FLOOR = 0.5  # the albedo divides by at least this fraction of the median lit shading
SHADOW_RAMP = 0.7  # texels whose shading is below this fraction of it lose weight (linearly)
TRUSTED_WEIGHT = 0.15  # texels weighing less take their confident neighbourhood's colour (in proportion)


@dataclass
class TexelMap:
    """Surface point of each covered texel of one atlas tile."""

    region: str
    rows: torch.Tensor  # (N,) texel row within the tile
    cols: torch.Tensor  # (N,) texel column
    corners: torch.Tensor  # (N,3) vertex ids of the texel's triangle
    bary: torch.Tensor  # (N,3)


def texel_maps(model: FaceModel, tile: int) -> tuple[TexelMap, ...]:
    """Texel -> surface maps for the photo-textured tiles, built once per tile size and kept in
    ``model.derived``."""
    return model.derived.get(("fit.texel_maps", int(tile)), lambda: build_texel_maps(model, tile))


def build_texel_maps(model: FaceModel, tile: int) -> tuple[TexelMap, ...]:
    """Rasterize the photo-textured tiles in UV space: each covered texel's triangle and barycentrics."""
    out = []
    for region in PHOTO_TILES:
        fm = model.face_mask(region)
        tri_uv, tri_v = model.faces_uv[fm], model.faces[fm]
        uv = model.uvs.clone()
        uv[:, 0] -= torch.floor(uv[:, 0].clamp(max=3.999))  # local tile coordinates
        screen = torch.stack([uv[:, 0] * tile, (1.0 - uv[:, 1]) * tile, torch.ones_like(uv[:, 0])], -1)[None]
        frags = rasterize(screen.to(model.device), tri_uv, tile, tile)
        rows = torch.div(frags.pix, tile, rounding_mode="floor")
        cols = frags.pix - rows * tile
        out.append(TexelMap(region, rows, cols, tri_v[frags.face], frags.bary.detach()))
    return tuple(out)


def push_pull(values: np.ndarray, weight: np.ndarray, levels: int = 10) -> np.ndarray:
    """Fill where ``weight`` is 0 with weighted averages over ever coarser scales. (H,W,C), (H,W)."""
    v = torch.from_numpy(values * weight[..., None]).permute(2, 0, 1)[None].float()
    w = torch.from_numpy(weight)[None, None].float()
    pyramid = [(v, w)]
    for _ in range(levels):
        if min(v.shape[-2:]) < 2:
            break
        v, w = F.avg_pool2d(v, 2), F.avg_pool2d(w, 2)
        pyramid.append((v, w))
    fv, fw = pyramid[-1]
    filled = fv / fw.clamp(min=1e-8)
    for v, w in reversed(pyramid[:-1]):
        up = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        own = v / w.clamp(min=1e-8)
        a = w.clamp(max=1.0)
        filled = a * own + (1 - a) * up
    return filled[0].permute(1, 2, 0).numpy()


def unproject_texture(model: FaceModel, photo: torch.Tensor, verts: torch.Tensor, normals: torch.Tensor,
                      camera: Camera, sh: torch.Tensor, zbuffer: torch.Tensor, zcam: Camera,
                      tile: int = 512, min_facing: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Albedo atlas (2T,4T,3) float32 in [0,1] and confidence (2T,4T) float32 in [0,1].

    ``photo`` (3,H,W) float in [0,1] at ``camera``'s resolution; ``verts``/``normals`` (V,3) posed
    camera-frame; ``zbuffer`` (Hz,Wz) view depth of the whole head rendered with ``zcam``
    (0 = empty). Tiles other than face and head get the base materials.
    """
    atlas = base_atlas(tile, model=model)
    conf = np.zeros(atlas.shape[:2], np.float32)
    H, W = photo.shape[-2:]
    for tm in texel_maps(model, tile):
        p = (verts[tm.corners] * tm.bary[..., None]).sum(1)  # (N,3)
        n = F.normalize((normals[tm.corners] * tm.bary[..., None]).sum(1), dim=-1)
        view = F.normalize(-p, dim=-1)
        facing = (n * view).sum(-1)
        pix = camera.project(p[None])[0]
        zpix = zcam.project(p[None])[0]
        zx = zpix[:, 0].floor().long().clamp(0, zcam.width - 1)
        zy = zpix[:, 1].floor().long().clamp(0, zcam.height - 1)
        zb = zbuffer[zy, zx]
        depth = -p[:, 2]
        visible = (facing > min_facing) & (zb > 0) & (depth <= zb + 0.5 + 0.01 * zb)
        visible &= (pix[:, 0] >= 0) & (pix[:, 0] < W) & (pix[:, 1] >= 0) & (pix[:, 1] < H)
        grid = torch.stack([pix[:, 0] / W * 2 - 1, pix[:, 1] / H * 2 - 1], -1)
        colour = F.grid_sample(photo[None], grid[None, None], mode="bilinear", padding_mode="border",
                               align_corners=False)[0, :, 0].t()  # (N,3)
        shade = sh_shading(n, sh[None].expand(len(n), 9, 3))
        # a low-order SH light misses real shadows: dividing by it there inflates the albedo (a
        # shadowed cheek, mirrored onto the lit side or turned into the light, glows orange). The
        # shading is floored at a fraction of the typical lit shading, and shadowed texels give
        # way to their mirrored texel when that one was lit.
        lit = shade[visible & (facing > 0.5)].mean(-1)
        typical = float(lit.median()) if lit.numel() else 1.0
        shade = torch.maximum(shade, shade.new_tensor(max(0.08, SHADE_FLOOR * typical)))
        # a bright photo over a dim shading estimate exceeds 1: scale the colour down as a whole
        # (clipping each channel would bleach a warm skin to grey-white where red saturates first)
        albedo = colour / shade
        albedo = (albedo / albedo.amax(-1, keepdim=True).clamp(min=1.0)).clamp(0, 1)
        in_light = (shade.mean(-1) / max(typical * SHADOW_RAMP, 1e-6)).clamp(0, 1)
        # squared ramp: texels seen at a grazing angle (a fit a few pixels off samples hair, ear or
        # background there) give way to their mirrored texel when it was seen head-on
        weight = torch.where(visible, ((facing - min_facing) / GRAZING_RAMP).clamp(0, 1) ** 2 * in_light,
                             torch.zeros_like(facing))
        tile_rgb = np.zeros((tile, tile, 3), np.float32)
        tile_w = np.zeros((tile, tile), np.float32)
        r, c = tm.rows.cpu().numpy(), tm.cols.cpu().numpy()
        tile_rgb[r, c] = albedo.cpu().numpy()
        tile_w[r, c] = weight.cpu().numpy()
        covered = np.zeros((tile, tile), bool)
        covered[r, c] = True
        if tm.region == "M_Face":  # left/right symmetry: u -> 1 - u
            mir_rgb, mir_w = tile_rgb[:, ::-1], tile_w[:, ::-1] * covered[:, ::-1]
            take = mir_w > tile_w
            blend = np.where(take, (mir_w - tile_w) / np.maximum(mir_w, 1e-6), 0.0)[..., None]
            tile_rgb = tile_rgb * (1 - blend) + mir_rgb * blend
            tile_w = np.maximum(tile_w, 0.8 * mir_w)
        # the photo's contour (a grazing texel: skin mixed with what lies behind, a rim light, a
        # halo) is a pixel-wide line; pushed into the unseen side of the head it drew a dark or pale
        # stroke down a turned cheek: barely seen texels neither feed the push-pull nor keep their own
        trusted = tile_w >= TRUSTED_WEIGHT
        if not trusted.any():  # a tile the photo shows only edge-on (a bald crown): the best it has
            trusted = tile_w > 0.02
        if trusted.any():
            filled = push_pull(tile_rgb, np.where(trusted, tile_w, 0.0))
            own = np.clip(tile_w / TRUSTED_WEIGHT, 0.0, 1.0)[..., None]
            tile_rgb = tile_rgb * own + filled * (1.0 - own)
        rs, cs = tile_slice(tm.region, tile)
        atlas[rs, cs] = tile_rgb  # filled everywhere, so bilinear lookups at UV seams stay clean
        conf[rs, cs] = tile_w
    return atlas, conf
