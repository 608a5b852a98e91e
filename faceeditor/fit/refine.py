"""Optional geometry refinement through the differentiable rasterizer (analysis by synthesis).

A texture unprojected from the same photo explains the photo at any nearby geometry, so it
cannot drive refinement. Instead the face is rendered with a *generic* albedo — the mean face
texture (``resources/mean_texture.png``, :mod:`trainers.build_mean_texture`) times a per-channel
gain solved in closed form — under the fitted SH light, and pose, expression and the first
identity modes take Adam steps on

    sum_p w_p | I(p) - rho * A(uv_p) * shading(n_p) |  (robust weights w: hair, glasses, beards)
    + lambda_lm || landmarks - fitted landmarks ||^2 + priors,

with soft silhouettes (004 eq. 9-12) so the face outline can move. Eyebrows, eyes, nostrils
and lips in the mean albedo align the geometry where landmarks are ambiguous (pitch, nose
depth). Off by default (``refine_steps=0``); ``faceeditor fit --refine N`` turns it on.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.core.paths import resources_dir
from faceeditor.core.pose import axis_angle_to_matrix, transform
from faceeditor.core.state import FaceState
from faceeditor.fit.sh_light import estimate_sh
from faceeditor.io import load_rgb
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.atlas import atlas_uvs, base_atlas, render_face_ids
from faceeditor.render.fragments import scatter_dense
from faceeditor.render.interpolate import interpolate_packed, render, sample_texture
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import sh_shading

N_ID = 60  # identity modes refined


def mean_albedo(model: FaceModel) -> torch.Tensor:
    """(1,3,Ha,Wa) mean face atlas (falls back to the base materials if it was not built); read
    once and kept in ``model.derived``."""
    return model.derived.get("fit.mean_albedo", lambda: _load_mean_albedo(model))


def _load_mean_albedo(model: FaceModel) -> torch.Tensor:
    path = resources_dir() / "mean_texture.png"
    if path.is_file():
        img = load_rgb(path).astype(np.float32) / 255.0
    else:
        img = base_atlas(256, model=model)
    return torch.from_numpy(img).permute(2, 0, 1)[None].to(model.device)


def refine_faces(model: FaceModel) -> torch.Tensor:
    """Triangle indices rendered during refinement: the front face with eyes (no ears, neck, mouth
    interior); kept in ``model.derived``."""
    return model.derived.get("fit.refine_faces", lambda: _refine_faces(model))


def _refine_faces(model: FaceModel) -> torch.Tensor:
    ids = render_face_ids(model)
    f = model.faces[ids]
    region = model.face_region[ids]
    face_code = model.region_names.index("M_Face")
    eyes = torch.tensor([model.region_names.index(n) for n in ("M_ScleraLeft", "M_IrisLeft", "M_ScleraRight",
                                                               "M_IrisRight")])
    front = (region == face_code) & (f < model.narrow_face_vertices).all(1)
    keep = front | torch.isin(region, eyes)
    return ids[keep]


def refine_geometry(model: FaceModel, image: torch.Tensor, cam: Camera, p: dict[str, torch.Tensor],
                    state: FaceState, cfg, report=None) -> dict[str, torch.Tensor]:
    """Refined copies of ``p`` (identity, expression, rotation, translation; each (1,...)); ``image`` (3,S,S)."""
    ids = refine_faces(model)
    tri = model.faces[ids]
    uv_all, uv_faces = atlas_uvs(model)
    tri_uv = uv_faces[ids]
    albedo_map = mean_albedo(model)
    lm_idx = model.landmarks68[17:]
    with torch.no_grad():
        v0 = transform(model.vertices(p["identity"], p["expression"]), p["rotation"], p["translation"])
        n0 = vertex_normals(v0, model.faces)
        skin = model.skin_faces
        fr = rasterize(cam.project(v0), skin, cam.height, cam.width)
        nmap = scatter_dense(F.normalize(interpolate_packed(n0, skin, fr.face, fr.bary, fr.batch_index), dim=-1), fr)[0]
        sh, _ = estimate_sh(image, nmap, fr.mask()[0, 0] > 0)
        ref_lm = cam.project(transform(model.vertices(p["identity"], p["expression"], lm_idx), p["rotation"],
                                       p["translation"]))[0, :, :2]
        lm_scale = (ref_lm[45 - 17] - ref_lm[36 - 17]).norm().clamp(min=1.0)
    w = torch.zeros(3, requires_grad=True)
    dt = torch.zeros(3, requires_grad=True)
    did = torch.zeros(1, N_ID, requires_grad=True)
    dex = torch.zeros_like(p["expression"], requires_grad=True)
    opt = torch.optim.Adam([{"params": [w], "lr": cfg.refine_lr * 0.2}, {"params": [dt], "lr": cfg.refine_lr * 5},
                            {"params": [did], "lr": cfg.refine_lr * 5}, {"params": [dex], "lr": cfg.refine_lr}])
    target = image[None]
    for step in range(cfg.refine_steps):
        ident = p["identity"].clone()
        ident[:, :N_ID] = ident[:, :N_ID] + did
        expr = (p["expression"] + dex).clamp(0, 1)
        R = axis_angle_to_matrix(w)[None] @ p["rotation"]
        t = p["translation"] + dt
        v = transform(model.vertices(ident, expr), R, t)
        nrm = vertex_normals(v, model.faces)
        frags = rasterize(cam.project(v), tri, cam.height, cam.width, soft_radius=1.0)

        def shader(face, bary, batch):
            n = F.normalize(interpolate_packed(nrm, tri, face, bary, batch), dim=-1)
            a = sample_texture(albedo_map, interpolate_packed(uv_all, tri_uv, face, bary, batch))
            return a * sh_shading(n, sh[None].expand(len(n), 9, 3))

        img, alpha = render(frags, shader, background=0.0)
        with torch.no_grad():  # closed-form per-channel albedo gain
            m = alpha[0, 0] > 0.99
            gain = (target[0][:, m] * img[0][:, m]).sum(1) / (img[0][:, m] ** 2).sum(1).clamp(min=1e-6)
        comp = img * gain[None, :, None, None] + (1 - alpha) * target
        err = (comp - target).abs().sum(1, keepdim=True)
        robust = err / (err.detach() + 0.05)  # IRLS-like: large errors (hair, glasses) weigh less
        photo_loss = (robust * alpha).sum() / alpha.sum().clamp(min=1)
        lm = cam.project(transform(model.vertices(ident, expr, lm_idx), R, t))[0, :, :2]
        lm_loss = ((lm - ref_lm) ** 2).sum(-1).mean() / lm_scale ** 2
        prior = (ident[:, :N_ID] ** 2).mean() * 1e-3 + (dex ** 2).mean() * 1e-2
        loss = photo_loss + cfg.refine_landmark_weight * lm_loss + prior
        opt.zero_grad()
        loss.backward()
        opt.step()
        if report is not None:
            report("refine", (step + 1) / cfg.refine_steps, float(loss))
    with torch.no_grad():
        ident = p["identity"].clone()
        ident[:, :N_ID] += did
        return {"identity": ident, "expression": (p["expression"] + dex).clamp(0, 1),
                "rotation": axis_angle_to_matrix(w)[None] @ p["rotation"], "translation": p["translation"] + dt}
