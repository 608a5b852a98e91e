""":class:`PhotoNeuralRenderer` (``"neural"``): the mesh compositor's edit redrawn by G_p.

Per render (feed-forward, no inversion):

1. the mesh compositor (:class:`~faceeditor.edit.compose.MeshCompositor`; with a Personal model,
   the Personal renderer's, relit by its Blinn-Phong light) warps, relights and fills the photo
   for the edit: the warped photo layers ``M`` (a zero edit returns the photo);
2. in the face's aligned crop (:func:`faceeditor.neural.crop.crop_view`, at the size G_p was trained at) the edited
   head is rasterized, each pixel looks up the fitted view (:func:`~faceeditor.neural.photo_rep.correspondence`)
   for its confidence, and rep(p) is built with ``M``'s crop as the (relit) texture and, off the
   edited head, the warped photo (on it, a push-pull fill of the confident texture, as in training),
   the edited normals, the target light's SH shading (what G_p was trained on, with either
   compositor) and the regions;
3. G_p (:class:`~faceeditor.neural.photo_g.PhotoG`) predicts a residual and an alpha;
4. G_p's image (base + residual) is pasted back onto ``M`` with the alpha, limited to the (dilated) union of the
   fitted and edited heads: pixels away from the head keep ``M``'s values bit for bit (and ``M``
   keeps the photo's own pixels where nothing changes).

Weights: ``resources/photo_g.pt`` (``trainers/train_photo_g.py``), or the file named by
``$FACEEDITOR_PHOTO_G`` (a trained checkpoint under evaluation).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.errors import RendererUnavailableError
from faceeditor.core.progress import CancelCheck, check_cancel
from faceeditor.core.state import FaceState
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.geometry import edited_vertices, is_zero_edit, target_sh
from faceeditor.edit.params import EditParams
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.align import warp_image
from faceeditor.neural.checkpoints import load_weights, weights_path
from faceeditor.neural.crop import crop_view
from faceeditor.neural.crop_render import fitted_vertices
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.layers import autocast
from faceeditor.neural.photo_g import NAME, PhotoG
from faceeditor.neural.photo_rep import (
    HeadView,
    base_image,
    correspondence,
    push_pull_fill,
    rasterize_view,
    representation,
)

CROP_PX = 256
HEAD_MARGIN = 0.04  # the paste-back region: both heads dilated by this fraction of the crop
MIN_ALPHA = 1.0 / 255.0  # paste weights below this count as 0 (those pixels stay bit-exact)


def photo_g_path() -> Path:
    """Where G_p's weights are read from: ``$FACEEDITOR_PHOTO_G`` if set, else ``resources/photo_g.pt``."""
    env = os.environ.get("FACEEDITOR_PHOTO_G")
    return Path(env) if env else weights_path(NAME)


def photo_g_available() -> bool:
    return photo_g_path().is_file()


def load_photo_g(path: Path | None = None, device: str | torch.device = "cpu") -> PhotoG:
    """G_p for inference (eval, channels-last); raises :class:`RendererUnavailableError` when untrained."""
    path = Path(path) if path else photo_g_path()
    if not path.is_file():
        raise RendererUnavailableError(f"no photo-conditioned renderer at {path} (python -m trainers.train_photo_g)")
    return load_weights(path, PhotoG, device)


class PhotoNeuralRenderer:
    """:class:`~faceeditor.edit.renderer.PhotoRenderer` drawing edits through G_p over the mesh compositor."""

    name = "neural"

    def __init__(
        self,
        photo: np.ndarray,
        state: FaceState,
        model: FaceModel,
        G: PhotoG | None = None,
        size: int | None = None,
        mesh: MeshCompositor | None = None,
        bf16: bool = True,
        **kw,
    ) -> None:
        self.mesh = mesh or MeshCompositor(photo, state, model, **kw)
        self.model, self.state = self.mesh.model, state
        self.G = G if G is not None else load_photo_g()
        self.bf16 = bf16
        self.size = int(size or self.G.arch.get("size", CROP_PX))
        self.view = crop_view(state, self.size)
        self.table = RegionTable.of(self.model)
        self._focal = torch.tensor([float(self.view.camera.focal_px)])
        self._principal = torch.tensor([self.view.camera.principal], dtype=torch.float32)
        src = self.view.to_crop(fitted_vertices(self.model, state))
        self.src: HeadView = rasterize_view(self.model, self.table, src, self._focal, self._principal, self.size)

    def crop_matrix(self, scale: float) -> np.ndarray:
        """(2,3) output-image pixels at ``scale`` -> crop pixels."""
        M = np.asarray(self.view.matrix, np.float64).copy()
        M[:, :2] /= scale
        return M

    @torch.no_grad()
    def crop_rep(self, edit: EditParams, warped: np.ndarray, scale: float) -> dict[str, torch.Tensor]:
        """rep(p) of ``edit`` over the compositor's image ``warped`` (at ``scale``) in the crop: ``rep``,
        ``crop`` (the compositor's crop, (1,3,S,S) in [0,1]) and ``region`` (the paste-back region)."""
        S = self.size
        crop = warp_image(warped, self.crop_matrix(scale), S)
        m = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255.0
        dst = self.view.to_crop(edited_vertices(self.model, self.state, edit).float())
        view = rasterize_view(self.model, self.table, dst, self._focal, self._principal, S)
        _, conf = correspondence(view, self.src, self.table)
        sh = self.view.sh(target_sh(self.state, edit, self.mesh.photo_light))[None]
        # where the photo cannot texture the edited head, G_p sees what it was trained on (a push-pull
        # fill of the seen pixels, trainers/photo_g_data.round_trip), not the compositor's mesh fill;
        # its output there replaces the mesh fill (on 60 LFW reenactment pairs: +0.22 dB at |dyaw| >= 20)
        head = (view.region > 0)[:, None].float()
        rep = representation(m, conf, view, sh, head * push_pull_fill(m, conf) + (1.0 - head) * m)
        heads = ((view.region > 0) | (self.src.region > 0))[:, None].float()
        k = 2 * round(HEAD_MARGIN * S) + 1
        region = F.max_pool2d(F.max_pool2d(heads, (k, 1), 1, (k // 2, 0)), (1, k), 1, (0, k // 2))  # separable
        return {"rep": rep, "crop": m, "region": region}

    @torch.no_grad()
    def crop_output(self, edit: EditParams, warped: np.ndarray, scale: float) -> dict[str, torch.Tensor]:
        """G_p's output dict for ``edit`` over the compositor's image ``warped`` (at ``scale``), in the
        crop, plus ``rep`` and ``region`` (the paste-back region, (1,1,S,S))."""
        got = self.crop_rep(edit, warped, scale)
        rep = got["rep"]
        with autocast("cpu", self.bf16):
            out = dict(self.G(rep, noise=False))
        out["residual"] = base_image(rep) + out["residual"].float() - got["crop"]  # relative to the compositor's crop
        return {**out, "rep": rep, "region": got["region"]}

    def render(self, edit: EditParams, scale: float = 1.0, cancel: CancelCheck | None = None) -> np.ndarray:
        """The edited photo, uint8 (round(H*scale), round(W*scale), 3)."""
        base = self.mesh.render(edit, scale, cancel)
        if is_zero_edit(edit, self.state, self.model):
            return base
        check_cancel(cancel, task="render")
        out = self.crop_output(edit, base, scale)
        check_cancel(cancel, task="render")
        return paste(base, out["residual"], out["alpha"] * out["region"], self.crop_matrix(scale))


def paste(image: np.ndarray, residual: torch.Tensor, weight: torch.Tensor, M: np.ndarray) -> np.ndarray:
    """``image + weight * residual`` with the crop-space maps (1,C,S,S) warped back through the
    image -> crop matrix ``M``; pixels whose weight is below :data:`MIN_ALPHA` are left untouched."""
    H, W = image.shape[:2]
    S = residual.shape[-1]
    inv = cv2.invertAffineTransform(M)
    corners = np.array([[0, 0, 1], [S, 0, 1], [0, S, 1], [S, S, 1]], np.float64) @ inv.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    Mt = M.copy()
    Mt[:, 2] += M[:, :2] @ np.array([x0, y0], np.float64)  # the box's pixels -> crop pixels
    Mt[:, 2] += Mt[:, :2] @ np.array([0.5, 0.5]) - 0.5  # OpenCV's pixel centres are at integers
    maps = torch.cat([residual.float(), weight.float()], 1)[0].permute(1, 2, 0).numpy()
    box = cv2.warpAffine(
        np.ascontiguousarray(maps),
        Mt,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    a = box[..., 3:4]
    a = np.where(a < MIN_ALPHA, 0.0, np.minimum(a, 1.0)).astype(np.float32)
    touched = a[..., 0] > 0
    if not touched.any():
        return out
    part = out[y0:y1, x0:x1]
    new = part.astype(np.float32) + a * box[..., :3] * 255.0
    part[touched] = np.clip(np.round(new[touched]), 0, 255).astype(np.uint8)
    return out
