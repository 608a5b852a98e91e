""":class:`NeuralFill`: the GAR renderer G as the compositor's fill layer.

The :class:`~faceeditor.edit.fill.FillProvider` (``name = "gar"``) that renders the edited
geometry through G (:class:`~faceeditor.neural.crop_render.CropRenderer`) and resamples the face
crop onto the compositor's request grid.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from faceeditor.core.state import FaceState
from faceeditor.edit.fill import FillLayer, FillRequest
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.crop import CropView
from faceeditor.neural.crop_render import CropRenderer
from faceeditor.neural.gar import head_mask
from faceeditor.neural.gar_nets import GarNets, load_gar


class NeuralFill:
    """:class:`~faceeditor.edit.fill.FillProvider` rendering the edited face through G.

    The request's edited head (camera frame) is rolled into the aligned crop, its condition and
    the request's light rendered at G's resolution, G draws the crop with the state's z, noise
    (carried with the surface) and pivotal tuning, and the crop is resampled (bilinear) onto the
    request's window grid. Confidence: G's head region, feathered by a pixel of the crop, 0
    outside the crop.
    """

    name = "gar"

    def __init__(self, model: FaceModel, state: FaceState, nets: GarNets | None = None) -> None:
        self.model = model
        self.state = state
        self.nets = nets or load_gar()
        if state.neural_code(self.nets.renderer_id) is None:
            raise ValueError("the face has no latent code for the shipped GAR renderer: invert it first")
        self.renderer = CropRenderer(model, state, self.nets)

    @property
    def view(self) -> CropView:
        return self.renderer.view

    @torch.no_grad()
    def crop(self, verts: torch.Tensor, sh: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """G's crop (1,3,S,S) and head coverage (1,1,S,S) for camera-frame ``verts`` and SH ``sh``."""
        img, cond = self.renderer.render(verts, sh)
        return img, head_mask(cond)

    @torch.no_grad()
    def fill(self, request: FillRequest) -> FillLayer:
        img, head = self.crop(request.verts, np.asarray(request.sh, np.float32).reshape(9, 3))
        head = F.avg_pool2d(head, 3, 1, 1)  # a one-pixel feather of the crop's head edge
        win = request.window
        gx, gy = win.grid_centres()
        k = float(request.camera.width) / float(self.state.image_size[0])  # output px per photo px
        M = torch.as_tensor(self.view.matrix, dtype=torch.float32)
        px, py = torch.meshgrid(gx / k, gy / k, indexing="xy")  # photo coordinates of the grid centres
        cx = M[0, 0] * px + M[0, 1] * py + M[0, 2]
        cy = M[1, 0] * px + M[1, 1] * py + M[1, 2]
        S = self.view.size
        grid = torch.stack([cx / S * 2 - 1, cy / S * 2 - 1], -1)[None].to(img.device)
        rgba = torch.cat([img.float(), head.float()], 1).contiguous()
        out = F.grid_sample(rgba, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        rgb = out[:3].permute(1, 2, 0).cpu().numpy().astype(np.float32)
        conf = out[3].clamp(0, 1).cpu().numpy().astype(np.float32)
        return FillLayer(np.ascontiguousarray(rgb), np.ascontiguousarray(conf))
