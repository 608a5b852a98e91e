"""Photometric fit: SH lighting and an albedo texture from the photo, optional geometry refinement.

1. The fitted head is rendered (torch rasterizer) into a ``crop``-pixel square around the face.
2. Lighting: on facial-skin pixels, ``I_c(p) = rho_c * sum_k L_k Y_k(n_p)`` is solved by robust
   (Cauchy-IRLS) least squares for the 9x3 product ``rho_c L_k`` (hair, glasses, beards and
   shadows become outliers), then split by a rank-1 factorisation into a white SH light ``L``
   and a skin albedo colour ``rho`` with mean ``ALBEDO_LEVEL`` (the light/albedo scale ambiguity
   is fixed there, and the photo's colour cast goes to the albedo so relighting with white light
   keeps skin tones).
3. Texture: :func:`faceeditor.fit.texture.unproject_texture` (visibility, symmetry, push-pull).
4. Optional refinement (``refine_steps > 0``): Adam on pose, identity and expression through the
   differentiable renderer with soft silhouettes (004 §5), photometric L1 on the skin plus the
   landmark term, texture and light held fixed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.core.pose import transform
from faceeditor.core.progress import check_progress
from faceeditor.core.state import FaceState
from faceeditor.fit.refine import refine_geometry
from faceeditor.fit.sh_light import estimate_sh
from faceeditor.fit.texture import unproject_texture
from faceeditor.morphable.model import FaceModel
from faceeditor.morphable.normals import vertex_normals
from faceeditor.render.interpolate import interpolate
from faceeditor.render.raster import rasterize


@dataclass
class PhotometricConfig:
    crop: int = 256  # working resolution for lighting (and refinement)
    texture_size: int = 512  # atlas tile side
    irls_steps: int = 4
    refine_steps: int = 0  # Adam steps of geometry refinement (0 = off)
    refine_lr: float = 0.01
    refine_landmark_weight: float = 2.0


def crop_camera(state: FaceState, size: int, margin: float = 1.7) -> tuple[Camera, tuple[float, float, float]]:
    """Camera of a ``size`` square crop centred on the face box; returns it and (x0, y0, scale)."""
    x0, y0, x1, y1 = state.face_box
    side = max(x1 - x0, y1 - y0) * margin
    cx0, cy0 = (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2
    s = size / side
    pcx, pcy = state.centre
    return Camera(state.focal_px * s, size, size, (pcx - cx0) * s, (pcy - cy0) * s), (cx0, cy0, s)


def crop_photo(photo: np.ndarray, box: tuple[float, float, float], size: int) -> torch.Tensor:
    """(3,size,size) float crop of a uint8 photo: ``box`` = (x0, y0, scale) from :func:`crop_camera`."""
    import cv2

    x0, y0, s = box
    M = np.array([[s, 0, -x0 * s], [0, s, -y0 * s]], dtype=np.float64)
    out = cv2.warpAffine(photo, M, (size, size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    return torch.from_numpy(out).permute(2, 0, 1).float() / 255.0


def state_tensors(model: FaceModel, state: FaceState) -> dict[str, torch.Tensor]:
    dev = model.device
    return {k: torch.as_tensor(np.asarray(getattr(state, k)), dtype=torch.float32, device=dev)[None]
            for k in ("identity", "expression", "rotation", "translation")}


def fit_photometric(photo: np.ndarray, state: FaceState, model: FaceModel,
                    config: PhotometricConfig | None = None, progress=None) -> FaceState:
    """Add SH lighting, the albedo atlas and its confidence to ``state`` (a copy is returned).

    ``progress(stage, fraction, loss) -> bool`` is called per refinement step and per stage;
    returning False raises :class:`~faceeditor.core.errors.Cancelled`.
    """
    cfg = config or PhotometricConfig()

    def report(stage: str, fraction: float, loss: float | None = None) -> None:
        check_progress(progress, stage, fraction, loss, task="fit")

    t0 = time.perf_counter()
    state = state.copy()
    cam, box = crop_camera(state, cfg.crop)
    image = crop_photo(photo, box, cfg.crop).to(model.device)
    p = state_tensors(model, state)
    if cfg.refine_steps > 0:
        p = refine_geometry(model, image, cam, p, state, cfg, report)
        state.rotation = p["rotation"][0].detach().cpu().numpy()
        state.translation = p["translation"][0].detach().cpu().numpy()
        state.identity = p["identity"][0].detach().cpu().numpy()
        state.expression = p["expression"][0].detach().cpu().numpy()
    with torch.no_grad():
        verts = transform(model.vertices(p["identity"], p["expression"]), p["rotation"], p["translation"])
        normals = vertex_normals(verts, model.faces)
        skin = model.skin_faces
        frags = rasterize(cam.project(verts), skin, cam.height, cam.width)
        nmap = F.normalize(interpolate(normals, frags, skin), dim=1)[0]
        mask = frags.mask()[0, 0] > 0
        mask = -F.max_pool2d(-mask[None, None].float(), 5, 1, 2)[0, 0] > 0  # erode 2 px: no silhouette mixing
        sh, rho = estimate_sh(image, nmap, mask, cfg.irls_steps)
        report("lighting", 1.0)
        # z-buffer of the whole head for texture visibility, at the crop's resolution
        head = rasterize(cam.project(verts), model.faces, cam.height, cam.width)
        zbuf = head.depth_map()[0, 0]
        full = state.camera()
        photo_t = torch.from_numpy(photo).to(model.device).permute(2, 0, 1).float() / 255.0
        atlas, conf = unproject_texture(model, photo_t, verts[0], normals[0], full, sh, zbuf, cam, cfg.texture_size)
    report("texture", 1.0)
    state.sh = sh.cpu().numpy()
    state.texture = (np.clip(atlas, 0, 1) * 255 + 0.5).astype(np.uint8)
    state.texture_confidence = (np.clip(conf, 0, 1) * 255 + 0.5).astype(np.uint8)
    state.fit_info = dict(state.fit_info, albedo_rgb=[float(v) for v in rho], skin_pixels=int(mask.sum()))
    state.timings_ms = dict(state.timings_ms, photometric=(time.perf_counter() - t0) * 1000.0)
    return state
