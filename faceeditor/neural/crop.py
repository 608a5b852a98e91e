"""Crop geometry: where G works in a photo.

G works in the aligned crop of :mod:`faceeditor.neural.align` (the dataset's template: a
similarity of the photo placed by the detector's iBUG-68 landmarks, ``state.detector_landmarks68``).
Its camera is the photo camera scaled, shifted and rolled (:func:`faceeditor.neural.align.crop_pose`):
a camera-frame point ``p`` of the photo is ``Q p`` in the crop camera's frame, ``Q`` the roll.
Normals rotate the same way and SH light is re-expressed with
:func:`faceeditor.neural.regressor.relabel_sh`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.core.state import FaceState
from faceeditor.neural.align import align_matrix, aligned_crop, crop_pose, matrix_parts, roll_matrix, scale_matrix
from faceeditor.neural.regressor import relabel_sh

TEMPLATE_PX = 256  # the dataset's template size; smaller crops are this one scaled


@dataclass
class CropView:
    """The aligned crop of one face: photo -> crop matrix, crop camera, roll Q (photo frame -> crop frame)."""

    matrix: np.ndarray  # (2,3) photo pixels -> crop pixels
    camera: Camera
    roll: np.ndarray  # (3,3)
    size: int

    def to_crop(self, verts: torch.Tensor) -> torch.Tensor:
        """Photo-camera-frame points (B,N,3) -> crop-camera-frame points."""
        return verts @ torch.as_tensor(self.roll.T, dtype=verts.dtype, device=verts.device)

    def sh(self, sh: np.ndarray | torch.Tensor) -> torch.Tensor:
        """SH irradiance (9,3) of the photo's frame expressed in the crop's frame."""
        return torch.as_tensor(relabel_sh(np.asarray(sh, np.float64).reshape(9, 3), self.roll.T), dtype=torch.float32)


def alignment_landmarks(state: FaceState) -> np.ndarray:
    """The 68 points (68,2) the crop is aligned by: the detector's, else the fitted ones."""
    lm = state.detector_landmarks68 if state.detector_landmarks68 is not None else state.fitted_landmarks68
    if lm is None:
        raise ValueError("the state has no 68-point landmarks to align the face crop")
    return np.asarray(lm, np.float64)[:, :2]


def crop_view(state: FaceState, size: int = 128) -> CropView:
    """The aligned crop of ``state``'s face at ``size`` px (as the dataset made it: 256 px template, scaled)."""
    M = scale_matrix(align_matrix(alignment_landmarks(state), TEMPLATE_PX), size / float(TEMPLATE_PX))
    Q = roll_matrix(matrix_parts(M)[1])
    _, _, f, c = crop_pose(M, np.asarray(state.rotation, np.float64), np.asarray(state.translation, np.float64),
                           float(state.focal_px), state.centre)
    return CropView(M, Camera(f, size, size, c[0], c[1]), Q, size)


def crop_photo(photo: np.ndarray, state: FaceState, size: int = 128) -> tuple[torch.Tensor, CropView]:
    """(1,3,S,S) float crop of the photo (made as the dataset's crops) and its :class:`CropView`."""
    crop, _ = aligned_crop(photo, alignment_landmarks(state), size)
    x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255.0
    return x, crop_view(state, size)
