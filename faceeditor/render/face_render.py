"""Render the posed ICT head with the torch rasterizer: albedo atlas x SH shading, plus the maps
(normals, depth, mask, atlas UVs) that fitting, compositing and the neural renderer need."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from faceeditor.core.camera import Camera
from faceeditor.core.pose import transform
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import atlas_uvs, render_face_ids
from faceeditor.render.fragments import Fragments, scatter_dense
from faceeditor.render.interpolate import interpolate_packed, render, sample_texture
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import sh_shading


def posed_vertices(model: FaceModel, identity: torch.Tensor, expression: torch.Tensor, rotation: torch.Tensor,
                   translation: torch.Tensor) -> torch.Tensor:
    """Camera-frame vertices (B,V,3): ``R v(alpha, beta) + t`` (GAR eq. 12's kRv' + t, k in the camera)."""
    return transform(model.vertices(identity, expression), rotation, translation)


@dataclass
class FaceRender:
    image: torch.Tensor  # (B,3,H,W) albedo * shading composited over the background
    alpha: torch.Tensor  # (B,1,H,W) coverage (soft at silhouettes when requested)
    normals: torch.Tensor  # (B,3,H,W) unit camera-frame normals, 0 outside
    frags: Fragments


def render_face(model: FaceModel, verts: torch.Tensor, camera: Camera, atlas: torch.Tensor,
                sh: torch.Tensor | None, faces: torch.Tensor | None = None, background: float | torch.Tensor = 0.0,
                soft_radius: float = 0.0, atlas_uv: tuple[torch.Tensor, torch.Tensor] | None = None) -> FaceRender:
    """Render camera-frame ``verts`` (B,V,3) with ``atlas`` (B or 1,3,Ha,Wa) albedo and SH (B,9,3).

    ``faces`` restricts rendering to a subset of triangle indices (default: the whole head
    without the corneal caps, :func:`faceeditor.render.atlas.render_face_ids`);
    ``atlas_uv`` = :func:`faceeditor.render.atlas.atlas_uvs` (computed when omitted). With
    ``sh=None`` the albedo is shown unlit.
    """
    all_faces = model.faces
    uv, uv_faces = atlas_uv if atlas_uv is not None else atlas_uvs(model)
    sel = faces if faces is not None else render_face_ids(model)  # (F',) indices into model.faces
    tri, tri_uv = all_faces[sel], uv_faces[sel]
    normals = vertex_normals(verts, all_faces)
    frags = rasterize(camera.project(verts), tri, camera.height, camera.width, soft_radius=soft_radius)

    def shader(face: torch.Tensor, bary: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        uvp = interpolate_packed(uv, tri_uv, face, bary, batch)
        albedo = sample_texture(atlas, uvp, batch)
        if sh is None:
            return albedo
        n = torch.nn.functional.normalize(interpolate_packed(normals, tri, face, bary, batch), dim=-1)
        return albedo * sh_shading(n, sh[batch])

    image, alpha = render(frags, shader, background)
    n = torch.nn.functional.normalize(interpolate_packed(normals, tri, frags.face, frags.bary, frags.batch_index), dim=-1)
    return FaceRender(image, alpha, scatter_dense(n, frags, 0.0), frags)
