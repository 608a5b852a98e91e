"""The GAR trainer's validation: sample grids and metrics of G_ema and V_ema on validation crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from faceeditor.morphable.model import FaceModel
from faceeditor.neural import losses as L
from faceeditor.neural.gar import face_mask, normals_of, shading_map
from faceeditor.neural.regressor import project_points
from faceeditor.render.sh import direction_from_angles, directional_sh
from trainers.gar_config import RELIGHT_AMBIENT, RELIGHT_INTENSITY
from trainers.gar_data import GarData, render_conditions
from trainers.gar_nets import AuxNets

EVAL_CHUNK = 16  # validation crops per forward


@torch.no_grad()
def sample_grid(G, V, val: GarData, model: FaceModel, idx: np.ndarray, device, seed: int = 0) -> np.ndarray:
    """uint8 grid: rows = val faces; columns: photo, reconstruction, 3 random z, relit left/right, yaw +20."""
    b = val.batch(idx, device)
    n = len(idx)
    g = torch.Generator().manual_seed(seed)
    z_rec = V(b.image, b.cond, return_features=False)
    rec = G(b.cond, b.shading, z_rec, noise="zero")
    cols = [b.image, rec]
    for _ in range(3):
        cols.append(G(b.cond, b.shading, torch.randn(n, G.z_dim, generator=g).to(device), noise="zero"))
    for az in (-60.0, 60.0):
        sh = directional_sh(direction_from_angles(az, 10.0), RELIGHT_INTENSITY, RELIGHT_AMBIENT)
        sh = sh.to(device)[None].expand(n, 9, 3)
        cols.append(G(b.cond, shading_map(b.cond, sh), z_rec, noise="zero"))
    p = val.params(idx, device)
    yaw = torch.full((n,), 20.0)
    cond2 = render_conditions(model, p, val.size, yaw, torch.zeros(n), p["expression"]).to(device)
    cols.append(G(cond2, shading_map(cond2, b.sh), z_rec, noise="zero"))
    grid = torch.stack(cols, 1).clamp(0, 1)  # (n, C, 3, S, S)
    S = val.size
    grid = grid.permute(0, 3, 1, 4, 2).reshape(n * S, len(cols) * S, 3)
    return (grid.float().cpu().numpy() * 255 + 0.5).astype(np.uint8)


@torch.no_grad()
def evaluate(G, V, aux: AuxNets, model: FaceModel, val: GarData, idx: np.ndarray, device, seed: int = 0) -> dict:
    """Reconstruction PSNR in the face mask and the identity distance R(rec) vs R(photo); N's angle on
    random-z renders vs the input normals; FR landmark error of random-z renders vs the geometry's."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, list] = {"rec_psnr_db": [], "rec_id_dist": [], "normal_deg": [], "ldmk_eye": []}
    for s in range(0, len(idx), EVAL_CHUNK):
        sub = idx[s:s + EVAL_CHUNK]
        b = val.batch(sub, device)
        mask = face_mask(b.cond)
        z = V(b.image, b.cond, return_features=False)
        rec = G(b.cond, b.shading, z, noise="zero")
        out["rec_psnr_db"].append(L.psnr_db(rec, b.image, mask))
        fake = G(b.cond, b.shading, torch.randn(len(sub), G.z_dim, generator=g).to(device), noise="random")
        if aux.R is not None:
            e_rec, e_img = L.embed(aux.R, rec.clamp(0, 1)), L.embed(aux.R, b.image)
            out["rec_id_dist"].append((e_rec - e_img).norm(dim=1))
        if aux.N is not None:
            out["normal_deg"].append(L.normal_angle_deg(aux.N, fake.clamp(0, 1), normals_of(b.cond), mask))
        if aux.FR is not None:
            p = val.params(sub, device)
            ref = project_points(model, p, index=model.landmarks68)
            lm = L.landmarks68(aux.FR, model, fake.clamp(0, 1))
            out["ldmk_eye"].append((lm - ref).norm(dim=-1).mean(1) / (L.EYE_FRACTION * val.size))
    return {k: round(float(torch.cat(v).float().mean()), 4) for k, v in out.items() if v}


def save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
