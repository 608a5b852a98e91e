"""Second-order spherical-harmonics (SH) lighting: 9 coefficients x RGB.

Convention (used for fitting, relighting and the neural renderer's shading input):
``shading(n) = sum_k c_k Y_k(n)`` with the real SH basis ``Y_k`` (order below) evaluated on
unit normals in **camera space** (+z toward the camera) and ``c`` of shape (B, 9, 3) the
*irradiance* coefficients, i.e. the Lambertian convolution (Ramamoorthi & Hanrahan 2001,
A_0 = pi, A_1 = 2pi/3, A_2 = pi/4) is already folded in. A surface of albedo ``rho`` then
images as ``rho * shading(n)``.

Basis order: Y00, Y1-1 (y), Y10 (z), Y11 (x), Y2-2 (xy), Y2-1 (yz), Y20 (3z^2-1), Y21 (xz), Y22 (x^2-y^2).
"""

from __future__ import annotations

import math

import torch

SH_CONSTS = (
    0.5 * math.sqrt(1.0 / math.pi),  # Y00
    math.sqrt(3.0 / (4.0 * math.pi)),  # Y1*
    0.5 * math.sqrt(15.0 / math.pi),  # Y2-2, Y2-1, Y21
    0.25 * math.sqrt(5.0 / math.pi),  # Y20
    0.25 * math.sqrt(15.0 / math.pi),  # Y22
)
LAMBERT_BAND = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)  # A_l for l = 0, 1, 2
BAND_OF = (0, 1, 1, 1, 2, 2, 2, 2, 2)


def sh_basis(normals: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Real SH basis of unit ``normals`` (..., 3 along ``dim``) -> (..., 9 along ``dim``)."""
    x, y, z = normals.unbind(dim)
    c0, c1, c2, c20, c22 = SH_CONSTS
    return torch.stack(
        [
            torch.full_like(x, c0),
            c1 * y,
            c1 * z,
            c1 * x,
            c2 * x * y,
            c2 * y * z,
            c20 * (3.0 * z * z - 1.0),
            c2 * x * z,
            c22 * (x * x - y * y),
        ],
        dim=dim,
    )


def sh_shading(normals: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Irradiance for normals (B,3,H,W) (or packed (N,3) with sh (N,9,3)) -> (B,3,H,W) / (N,3)."""
    if normals.ndim == 4:
        basis = sh_basis(normals, dim=1)  # (B,9,H,W)
        return torch.einsum("bkhw,bkc->bchw", basis, sh)
    basis = sh_basis(normals, dim=-1)  # (N,9)
    return torch.einsum("nk,nkc->nc", basis, sh)


def direction_from_angles(azimuth_deg: float | torch.Tensor, elevation_deg: float | torch.Tensor) -> torch.Tensor:
    """Unit light direction (toward the light) in camera space.

    Azimuth 0 / elevation 0 is a light at the camera (+z); positive azimuth moves it to image
    right (+x), positive elevation moves it up (+y).
    """
    az = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float32))
    el = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float32))
    return torch.stack([torch.cos(el) * torch.sin(az), torch.sin(el), torch.cos(el) * torch.cos(az)], dim=-1)


def angles_from_direction(direction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`direction_from_angles`: (...,3) -> (azimuth_deg, elevation_deg)."""
    d = direction / direction.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    el = torch.rad2deg(torch.asin(d[..., 1].clamp(-1.0, 1.0)))
    az = torch.rad2deg(torch.atan2(d[..., 0], d[..., 2]))
    return az, el


def directional_sh(direction: torch.Tensor, intensity: float | torch.Tensor = 1.0,
                   ambient: float | torch.Tensor = 0.0,
                   color: torch.Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """SH irradiance (9,3) of ``ambient + intensity * max(0, n.d)`` tinted by ``color``.

    The clamped cosine of a distant light projects to c_k = A_l Y_k(d) (Ramamoorthi &
    Hanrahan); a constant ambient term adds ambient / Y00 to c_0.
    """
    d = direction / direction.norm().clamp(min=1e-12)
    band = torch.tensor([LAMBERT_BAND[b] for b in BAND_OF], dtype=d.dtype, device=d.device)
    coeff = torch.as_tensor(intensity, dtype=d.dtype, device=d.device) * band * sh_basis(d)
    coeff = coeff.clone()
    coeff[0] = coeff[0] + torch.as_tensor(ambient, dtype=d.dtype, device=d.device) / SH_CONSTS[0]
    col = torch.as_tensor(color, dtype=d.dtype, device=d.device)
    return coeff[:, None] * col[None, :]


def dominant_direction(sh: torch.Tensor) -> torch.Tensor:
    """Direction of the strongest first-order light in SH irradiance (...,9,3) -> unit (...,3)."""
    lum = sh.mean(dim=-1)  # (...,9)
    d = torch.stack([lum[..., 3], lum[..., 1], lum[..., 2]], dim=-1)
    return d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def neutral_sh(level: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Flat white light: shading == ``level`` everywhere. Returns (9,3)."""
    sh = torch.zeros(9, 3, device=device)
    sh[0] = level / SH_CONSTS[0]
    return sh
