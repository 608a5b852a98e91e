"""Texture atlas: one image holding every UV tile of the ICT head, for rendering and OBJ export.

ICT's UVs are UDIM-like tiles: face u in [0,1], back of head/neck [1,2], gums/tongue [2,3],
teeth [3,4]; sclera and iris each use their own [0,1] map (left and right eyes share it). The
atlas packs them into a 4 x 2 grid of square tiles of side T:

    row 0 (top):    face | head/neck | gums/tongue | teeth
    row 1 (bottom): sclera | iris | (free) | (free)

The face and head tiles carry the photo's albedo (:mod:`faceeditor.fit.texture`); the others
get plain material colours (:func:`base_atlas`). Atlas UVs use the OBJ convention (v up).
"""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.morphable.model import FaceModel
from faceeditor.render.interpolate import interpolate
from faceeditor.render.raster import rasterize

TILE_COLS, TILE_ROWS = 4, 2
# material -> (column, row from the top)
TILE_OF_REGION = {"M_Face": (0, 0), "M_BackHead": (1, 0), "M_GumsTongue": (2, 0), "M_Teeth": (3, 0),
                  "M_ScleraLeft": (0, 1), "M_ScleraRight": (0, 1), "M_IrisLeft": (1, 1), "M_IrisRight": (1, 1)}
MATERIAL_RGB = {"M_GumsTongue": (0.62, 0.27, 0.27), "M_Teeth": (0.86, 0.83, 0.76),
                "M_ScleraLeft": (0.88, 0.86, 0.84), "M_IrisLeft": (0.32, 0.22, 0.16)}
SKIN_RGB = (0.72, 0.55, 0.45)


def atlas_uvs(model: FaceModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-corner atlas UVs: returns ``uvs_atlas`` (F*3,2) and ``faces_atlas`` (F,3) indexing them.

    UVs are per triangle corner because the two eyes share UV vertices but not tiles.
    """
    local = model.uvs[model.faces_uv.reshape(-1)]  # (3F,2)
    col = torch.zeros(model.faces.shape[0], dtype=torch.float32, device=model.device)
    row = torch.zeros_like(col)
    for name, (c, r) in TILE_OF_REGION.items():
        m = model.face_region == model.region_names.index(name)
        col[m], row[m] = float(c), float(r)
    col, row = col.repeat_interleave(3), row.repeat_interleave(3)
    u = local[:, 0] - torch.floor(local[:, 0].clamp(max=3.999))  # drop the UDIM tile offset
    v = local[:, 1]
    atlas = torch.stack([(col + u) / TILE_COLS, (TILE_ROWS - 1 - row + v) / TILE_ROWS], -1)
    faces_atlas = torch.arange(atlas.shape[0], device=model.device).view(-1, 3)
    return atlas, faces_atlas


def tile_slice(region: str, tile: int) -> tuple[slice, slice]:
    """Row and column slices of ``region``'s tile inside an atlas image of tile side ``tile``."""
    c, r = TILE_OF_REGION[region]
    return slice(r * tile, (r + 1) * tile), slice(c * tile, (c + 1) * tile)


CORNEA_DEG = 26.0  # angular radius of the iris disc seen from the eyeball centre
PUPIL_DEG = 10.0


def _eye_angles(model: FaceModel, region: str) -> torch.Tensor:
    """Per-vertex angle (degrees) between (v - eyeball centre) and the eye's forward axis (+Z)."""
    side = "Left" if region.endswith("Left") else "Right"
    centre = model.neutral[model.faces_for(f"M_Sclera{side}").unique()].mean(0)
    d = model.neutral - centre
    return torch.rad2deg(torch.acos((d[:, 2] / d.norm(dim=1).clamp(min=1e-9)).clamp(-1, 1)))


def render_face_ids(model: FaceModel) -> torch.Tensor:
    """Indices of the triangles to draw: all but the corneal caps of the sclera meshes (ICT draws
    them transparent over the iris; opaque they would hide it)."""
    keep = torch.ones(model.faces.shape[0], dtype=torch.bool, device=model.device)
    for side in ("Left", "Right"):
        m = model.face_mask(f"M_Sclera{side}")
        ang = _eye_angles(model, f"M_Sclera{side}")
        cap = m & (ang[model.faces] < CORNEA_DEG).all(1)
        keep &= ~cap
    return keep.nonzero().squeeze(1)


def _paint_iris(model: FaceModel, tile: int) -> np.ndarray:
    """Iris tile (T,T,3): pupil, iris ring and white, painted by rasterizing the iris mesh in UV space."""
    region = "M_IrisLeft"
    fm = model.face_mask(region)
    tri_uv = model.faces_uv[fm]
    tri_v = model.faces[fm]
    ang = _eye_angles(model, region)
    colour = torch.where((ang < PUPIL_DEG)[:, None], torch.tensor([0.03, 0.025, 0.025]),
                         torch.where((ang < CORNEA_DEG)[:, None], torch.tensor(MATERIAL_RGB[region]),
                                     torch.tensor(MATERIAL_RGB["M_ScleraLeft"])))
    uv = model.uvs
    screen = torch.stack([uv[:, 0] * tile, (1.0 - uv[:, 1]) * tile, torch.ones_like(uv[:, 0])], -1)[None]
    frags = rasterize(screen, tri_uv, tile, tile)
    # per-corner colours: look the vertex colour up through the UV-triangle's vertex triangle
    corner_col = colour[tri_v.reshape(-1)]  # (3F',3)
    img = interpolate(corner_col, frags, torch.arange(corner_col.shape[0]).view(-1, 3),
                      background=MATERIAL_RGB[region][0])
    out = img[0].permute(1, 2, 0).numpy()
    out[frags.mask()[0, 0].numpy() == 0] = MATERIAL_RGB[region]
    return out


def base_atlas(tile: int, skin: tuple[float, float, float] = SKIN_RGB, model: FaceModel | None = None) -> np.ndarray:
    """Float32 atlas (2T, 4T, 3) with material colours; face/head tiles filled with ``skin``.

    With ``model``, the iris tile is painted from the iris geometry (pupil, iris, white).
    """
    img = np.zeros((TILE_ROWS * tile, TILE_COLS * tile, 3), np.float32)
    img[:] = 0.5
    for region in ("M_Face", "M_BackHead"):
        rs, cs = tile_slice(region, tile)
        img[rs, cs] = skin
    for region in ("M_GumsTongue", "M_Teeth", "M_ScleraLeft", "M_IrisLeft"):
        rs, cs = tile_slice(region, tile)
        img[rs, cs] = MATERIAL_RGB[region]
    if model is not None:
        rs, cs = tile_slice("M_IrisLeft", tile)
        img[rs, cs] = _paint_iris(model, tile)
    return img
