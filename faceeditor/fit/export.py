"""Export a fitted head as a textured OBJ (``mesh.obj/.mtl/.png``) in the camera or the model frame.

The generic OBJ writer and reader live in :mod:`faceeditor.io.mesh`; this module adds what needs
the face model: the posed vertices, the atlas UVs and the material atlas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faceeditor.core.state import FaceState
from faceeditor.fit.synthetic import state_vertices
from faceeditor.io.mesh import Frame, ObjFiles, write_textured_obj
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import atlas_uvs, base_atlas, render_face_ids


def face_mesh_arrays(state: FaceState, model: FaceModel, frame: Frame = "camera") -> dict[str, np.ndarray]:
    """Vertices, normals, triangles and atlas UVs of a fitted head, ready for :func:`write_textured_obj`.

    Triangles: the whole head without the sclera's corneal caps (they would hide the iris).
    """
    if frame not in ("camera", "model"):
        raise ValueError(f"frame must be 'camera' or 'model', got {frame!r}")
    with torch.no_grad():
        if frame == "camera":
            verts = state_vertices(model, state)[0]
        else:
            dev = model.device
            verts = model.vertices(torch.as_tensor(state.identity, device=dev)[None],
                                   torch.as_tensor(state.expression, device=dev)[None])[0]
        keep = render_face_ids(model)
        faces = model.faces[keep]
        uv, faces_uv = atlas_uvs(model)
        normals = vertex_normals(verts, faces)
    return {"vertices": verts.cpu().numpy(), "normals": normals.cpu().numpy(), "faces": faces.cpu().numpy(),
            "atlas_uv": uv.cpu().numpy(), "faces_uv": faces_uv[keep].cpu().numpy()}


def write_face_mesh(folder: str | Path, stem: str, state: FaceState, model: FaceModel,
                    texture: np.ndarray | None = None, frame: Frame = "camera", texture_size: int = 512) -> ObjFiles:
    """Export a fitted head as ``stem.obj/.mtl/.png``: ``texture`` (uint8 atlas), else ``state.texture``,
    else the plain material atlas (:func:`faceeditor.render.atlas.base_atlas`) of tile ``texture_size``."""
    if texture is None:
        texture = state.texture
    if texture is None:
        texture = (base_atlas(texture_size, model=model) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    arrays = face_mesh_arrays(state, model, frame)
    return write_textured_obj(folder, stem, arrays["vertices"], arrays["faces"], arrays["atlas_uv"],
                              arrays["faces_uv"], texture, normals=arrays["normals"])
