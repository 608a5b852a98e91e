"""Per-pixel training labels of a fitted head in a crop: camera-frame normal map and region map.

The whole head (every triangle drawn by :func:`faceeditor.render.atlas.render_face_ids`) is
rasterized so that occlusion is right; each covered pixel gets the unit camera-frame normal of
the surface (+z toward the camera, :mod:`faceeditor.render.sh`) and a region label:

==  ==========  ======================================================================
0   background  nothing drawn
1   skin        facial skin: the face material inside ICT's narrow face (forehead to chin)
2   eyes        eyeballs (sclera, iris) and eye sockets
3   mouth       mouth socket, gums, tongue, teeth
4   outer       rest of the face material: ears, sides of the face, under the chin
5   head        back of the head and the neck
==  ==========  ======================================================================

The *face mask* of the networks (and GAR eq. 6's P) is labels 1-3 (:data:`FACE_LABELS`).
Normals are stored as uint8 with ``[-1, 1] -> [0, 255]`` (0 vector -> 128 outside the head).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.core.pose import transform
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import render_face_ids
from faceeditor.render.interpolate import interpolate
from faceeditor.render.raster import rasterize

REGION_NAMES = ("background", "skin", "eyes", "mouth", "outer", "head")
SKIN, EYES, MOUTH, OUTER, HEAD = 1, 2, 3, 4, 5
FACE_LABELS = (SKIN, EYES, MOUTH)


@dataclass(frozen=True, eq=False)
class RegionTable:
    """The triangles a label map draws and their region labels, for one face model. Computing it
    takes a few ms: whoever renders many label or condition maps of one model builds it once
    (:meth:`of`) and passes it along."""

    faces: torch.Tensor  # (F',3) vertex indices of the drawn triangles
    labels: torch.Tensor  # (F',) uint8 region label of each

    @classmethod
    def of(cls, model: FaceModel) -> RegionTable:
        return cls(*region_table(model))


def region_table(model: FaceModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(drawn triangles (F',3), their region labels (F',) uint8) of ``model``."""
    ids = render_face_ids(model)
    faces = model.faces[ids]
    names = model.region_names
    mat = model.face_region[ids]
    vreg = model.vertex_region
    vnames = model.vertex_region_names
    lab = torch.full((len(ids),), HEAD, dtype=torch.uint8)
    face_mat = mat == names.index("M_Face")
    narrow = (faces < model.narrow_face_vertices).all(1)
    lab[face_mat & narrow] = SKIN
    lab[face_mat & ~narrow] = OUTER
    eye_mat = torch.isin(mat, torch.tensor([names.index(n) for n in names if "Sclera" in n or "Iris" in n]))
    tri_reg = vreg[faces]  # (F',3) vertex regions of the corners
    eye_socket = (tri_reg == vnames.index("eye_socket")).all(1)
    lab[eye_mat | (eye_socket & ~face_mat)] = EYES
    mouth_mat = torch.isin(mat, torch.tensor([names.index("M_GumsTongue"), names.index("M_Teeth")]))
    mouth_socket = (tri_reg == vnames.index("mouth_socket")).all(1)
    lab[mouth_mat | (mouth_socket & ~face_mat)] = MOUTH
    return faces, lab


def region_map(table: RegionTable, frags) -> torch.Tensor:
    """(B,H,W) uint8 region labels of rasterized ``frags`` of ``table.faces`` (0 where nothing is drawn)."""
    fid = frags.face_id_map()
    region = torch.zeros_like(fid, dtype=torch.uint8)
    covered = fid >= 0
    region[covered] = table.labels.to(fid.device)[fid[covered]]
    return region


@torch.no_grad()
def render_labels(model: FaceModel, identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                  translation: torch.Tensor, camera: Camera | list[Camera], table: RegionTable | None = None):
    """Normal map (B,3,H,W) (unit, 0 outside) and region map (B,H,W) uint8 of posed heads.

    ``identity`` (B,<=100), ``expression`` (B,53), ``rotation`` (B,3,3), ``translation`` (B,3) in the
    frame of ``camera`` (use the crop camera of :func:`faceeditor.neural.align.crop_pose`). Given a
    list of cameras (e.g. one view at 256 and 128 px), returns a list of (normals, regions), one per
    camera, posing the head once. Back faces are culled (the ICT meshes are closed and wound
    consistently: the visible surface is the same except ~0.1 % of pixels on silhouette edges).
    ``table``: the model's :class:`RegionTable` when the caller keeps one (built here otherwise).
    """
    if table is None:
        table = RegionTable.of(model)
    verts = transform(model.vertices(identity, expression), rotation, translation)
    normals = vertex_normals(verts, model.faces)
    out = []
    for cam in (camera if isinstance(camera, (list, tuple)) else [camera]):
        frags = rasterize(cam.project(verts), table.faces, cam.height, cam.width, cull_backfaces=True)
        nmap = F.normalize(interpolate(normals, frags, table.faces), dim=1)
        out.append((nmap, region_map(table, frags)))
    return out if isinstance(camera, (list, tuple)) else out[0]


def face_mask(region: torch.Tensor | np.ndarray):
    """Bool mask of the face labels (skin, eyes, mouth) of a region map (torch or numpy)."""
    return (region >= SKIN) & (region <= MOUTH)


def encode_normals(nmap: np.ndarray) -> np.ndarray:
    """(H,W,3) float normals in [-1,1] -> uint8 (H,W,3)."""
    return np.clip(np.round((np.asarray(nmap, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def decode_normals(u8: np.ndarray | torch.Tensor):
    """uint8 normals (...) -> float in [-1,1] (not renormalised); torch in, torch out."""
    if isinstance(u8, torch.Tensor):
        return u8.float() / 127.5 - 1.0
    return np.asarray(u8, np.float32) / 127.5 - 1.0
