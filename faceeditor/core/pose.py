"""Head pose: yaw/pitch/roll in degrees <-> rotation matrices, and the rigid transform.

Frame (ICT model frame = camera frame of a head facing the camera, see ``core/camera.py``):
+X is the subject's left (the image's right), +Y up, the face looks toward +Z (at the camera).

Angles, all in degrees, signs chosen so that each angle moves the face toward +X / +Y:

* ``yaw``   > 0: the subject turns toward their own left; the nose tip moves toward +X
  (to the right in the image). Rotation about +Y by ``yaw``.
* ``pitch`` > 0: the subject looks up; the nose tip moves toward +Y (up in the image).
  Rotation about -X by ``pitch`` (i.e. about +X by ``-pitch``).
* ``roll``  > 0: the head tilts toward the subject's left shoulder; the top of the head moves
  toward +X (clockwise as seen in the image). Rotation about -Z by ``roll``.

Composition: ``R = R_y(yaw) @ R_x(-pitch) @ R_z(-roll)`` acting on column vectors (roll first
in the head's own frame, then pitch, then yaw). A posed point is ``R @ p + t``; with row-vector
batches that is :func:`transform`. :func:`matrix_to_euler` inverts :func:`euler_to_matrix` for
``|pitch| < 90``.
"""

from __future__ import annotations

import torch

Angle = float | torch.Tensor


def _as_batch(*angles: Angle, device: torch.device | None = None,
              dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    ref = next((a for a in angles if isinstance(a, torch.Tensor)), None)
    if ref is not None:
        device = device or ref.device
        dtype = dtype or (ref.dtype if ref.is_floating_point() else torch.float32)
    ts = [torch.as_tensor(a, device=device, dtype=dtype or torch.float32) for a in angles]
    ts = torch.broadcast_tensors(*ts)
    return [t.reshape(-1) for t in ts]


def euler_to_matrix(yaw: Angle, pitch: Angle, roll: Angle, *, device: torch.device | None = None,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """Yaw, pitch, roll in degrees (floats or broadcastable tensors) -> rotations (B,3,3).

    Differentiable in the angles. See the module docstring for the sign conventions.
    """
    y, p, r = (torch.deg2rad(a) for a in _as_batch(yaw, pitch, roll, device=device, dtype=dtype))
    cy, sy = torch.cos(y), torch.sin(y)
    cp, sp = torch.cos(p), -torch.sin(p)  # R_x(-pitch)
    cr, sr = torch.cos(r), -torch.sin(r)  # R_z(-roll)
    # R_y(a) R_x(b) R_z(c) written out (a = yaw, b = -pitch, c = -roll).
    rows = [
        cy * cr + sy * sp * sr, -cy * sr + sy * sp * cr, sy * cp,
        cp * sr, cp * cr, -sp,
        -sy * cr + cy * sp * sr, sy * sr + cy * sp * cr, cy * cp,
    ]
    return torch.stack(rows, dim=-1).reshape(-1, 3, 3)


def matrix_to_euler(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rotations (B,3,3) or (3,3) -> (yaw, pitch, roll) in degrees, each (B,). Inverse of
    :func:`euler_to_matrix` for ``|pitch| < 90``; at the gimbal lock roll is set to 0."""
    R = R.reshape(-1, 3, 3)
    cos_p = torch.sqrt(R[:, 1, 0] ** 2 + R[:, 1, 1] ** 2)
    pitch = torch.atan2(R[:, 1, 2], cos_p)
    locked = cos_p < 1e-6
    yaw = torch.where(locked, torch.atan2(-R[:, 2, 0], R[:, 0, 0]), torch.atan2(R[:, 0, 2], R[:, 2, 2]))
    roll = torch.where(locked, torch.zeros_like(pitch), torch.atan2(-R[:, 1, 0], R[:, 1, 1]))
    return torch.rad2deg(yaw), torch.rad2deg(pitch), torch.rad2deg(roll)


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle vectors (B,3) or (3,) (radians) -> rotations (B,3,3) or (3,3).

    ``R = I + sin(th) K + (1 - cos(th)) K^2`` with ``K = [w / th]_x``; differentiable and exact at 0
    (the identity). Works for any float dtype and device.
    """
    single = w.dim() == 1
    v = w.reshape(-1, 3)
    theta = v.norm(dim=1, keepdim=True).clamp(min=1e-12)  # clamped here so the gradient at 0 is [dw]_x
    k = v / theta
    K = torch.zeros(v.shape[0], 3, 3, device=v.device, dtype=v.dtype)
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    K = K - K.transpose(1, 2)
    s, c = torch.sin(theta)[:, :, None], torch.cos(theta)[:, :, None]
    R = torch.eye(3, device=v.device, dtype=v.dtype)[None] + s * K + (1 - c) * (K @ K)
    return R[0] if single else R


def transform(verts: torch.Tensor, R: torch.Tensor, t: torch.Tensor | None = None,
              scale: float | torch.Tensor | None = None) -> torch.Tensor:
    """Rigid (optionally scaled) transform of points (B,N,3): ``scale * R @ p + t``.

    ``R`` is (B,3,3) or (3,3); ``t`` is (B,3), (3,) or None; ``scale`` a float or (B,) tensor.
    """
    out = torch.matmul(verts, R.transpose(-1, -2))
    if scale is not None:
        s = scale.reshape(-1, 1, 1) if isinstance(scale, torch.Tensor) else scale
        out = out * s
    if t is not None:
        out = out + t.reshape(-1, 1, 3)
    return out

