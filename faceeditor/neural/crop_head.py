"""The head the inversion moves (GAR eq. 10's alpha, beta, theta), in the crop camera's frame.

The landmark fit (eq. 12, the state) gives the base pose ``(Q R, Q t)`` (``Q`` the crop's roll,
:class:`~faceeditor.neural.crop.CropView`), identity and expression; eq. 10 optimises offsets of
them: a rotation offset as an axis-angle vector (:func:`faceeditor.core.pose.axis_angle_to_matrix`,
applied on the left), a translation offset, and identity/expression offsets (the expression
clamped to [0, 1]).
"""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.core.pose import axis_angle_to_matrix, euler_to_matrix, transform
from faceeditor.core.state import FaceState
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.condition import render_condition
from faceeditor.neural.crop import CropView
from faceeditor.neural.gar import shading_map
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.regressor import project_points


class CropHead:
    """Base pose/shape of the fitted head in the crop frame plus the optimised offsets (leaf tensors)."""

    def __init__(self, model: FaceModel, state: FaceState, view: CropView, device: torch.device) -> None:
        def tensor(a) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, np.float32), device=device)

        self.model, self.camera = model, view.camera
        self.table = RegionTable.of(model)
        self.roll = torch.as_tensor(view.roll, dtype=torch.float32, device=device)  # Q
        self.rotation0 = self.roll @ tensor(state.rotation)  # Q R
        self.translation0 = self.roll @ tensor(state.translation)  # Q t
        self.identity0 = tensor(state.identity)[None]
        self.expression0 = tensor(state.expression)[None]
        self.d_rotation = torch.zeros(1, 3, device=device, requires_grad=True)  # axis-angle, radians
        self.d_translation = torch.zeros(1, 3, device=device, requires_grad=True)  # cm
        self.d_identity = torch.zeros_like(self.identity0, requires_grad=True)
        self.d_expression = torch.zeros_like(self.expression0, requires_grad=True)
        cam = view.camera
        self._intrinsics = {"focal": torch.tensor([float(cam.focal_px)], device=device),
                            "principal": torch.tensor([cam.principal], device=device, dtype=torch.float32)}

    def pose(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Current (rotation (1,3,3), translation (1,3), identity (1,K), expression (1,53)), crop frame."""
        R = axis_angle_to_matrix(self.d_rotation) @ self.rotation0[None]
        t = self.translation0[None] + self.d_translation
        return R, t, self.identity0 + self.d_identity, (self.expression0 + self.d_expression).clamp(0, 1)

    def render(self, with_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The condition map (1,8,S,S) (channels-last) and the projected 68 landmarks (1,68,2) of the
        current head (differentiable in the offsets when ``with_grad``)."""
        with torch.enable_grad() if with_grad else torch.no_grad():
            R, t, ident, expr = self.pose()
            verts = transform(self.model.vertices(ident, expr), R, t)
            cond, _ = render_condition(self.model, verts, self.camera, self.table)
            lm = project_points(self.model, {"rotation": R, "translation": t, "identity": ident, "expression": expr,
                                             **self._intrinsics}, index=self.model.landmarks68)
        return cond.contiguous(memory_format=torch.channels_last), lm

    @torch.no_grad()
    def turned(self, yaw: float, sh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Condition and shading (under ``sh`` (1,9,3)) of the current head turned by ``yaw`` degrees
        about its centre."""
        R, t, ident, expr = self.pose()
        turn = euler_to_matrix(yaw, 0.0, 0.0).to(R)
        verts = transform(self.model.vertices(ident, expr), turn @ R, t)
        cond, _ = render_condition(self.model, verts, self.camera, self.table)
        cond = cond.contiguous(memory_format=torch.channels_last)
        return cond, shading_map(cond, sh)

    def param_groups(self, lr_rotation: float, lr_translation: float, lr_identity: float,
                     lr_expression: float) -> list[dict]:
        """Optimizer parameter groups of the offsets."""
        return [{"params": [self.d_rotation], "lr": lr_rotation},
                {"params": [self.d_translation], "lr": lr_translation},
                {"params": [self.d_identity], "lr": lr_identity},
                {"params": [self.d_expression], "lr": lr_expression}]

    def shape_penalty(self) -> torch.Tensor:
        """Squared identity/expression offsets (mean over identity, sum over expression)."""
        return self.d_identity.square().mean() + self.d_expression.square().sum()

    @torch.no_grad()
    def write(self, out: FaceState) -> None:
        """Store the optimised head in ``out`` (photo camera frame: ``Q^T`` undoes the roll)."""
        R, t, ident, expr = self.pose()
        Qt = self.roll.t()
        out.rotation = (Qt @ R[0]).cpu().numpy().astype(np.float32)
        out.translation = (Qt @ t[0]).cpu().numpy().astype(np.float32)
        out.identity = ident[0].cpu().numpy().astype(np.float32)
        out.expression = expr[0].cpu().numpy().astype(np.float32)
