"""Robust SH light and albedo colour from skin pixels (the photometric fit's first step).

Cauchy-IRLS fit of 9 x RGB SH coefficients (:mod:`faceeditor.render.sh`), then a rank-1 split
into a white light and a skin albedo colour whose mean is :data:`ALBEDO_LEVEL`.
"""

from __future__ import annotations

import torch

from faceeditor.render.sh import sh_basis

ALBEDO_LEVEL = 0.6  # mean skin albedo the light/albedo split is normalised to


def estimate_sh(image: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor, steps: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Robust SH light (9,3 white) and albedo colour (3,) from skin pixels.

    ``image`` (3,H,W), ``normals`` (3,H,W) unit, ``mask`` (H,W) bool.
    """
    I = image[:, mask].t().double()  # (N,3)
    Y = sh_basis(normals[:, mask].t().double())  # (N,9)
    w = torch.ones(len(I), dtype=torch.float64)
    C = torch.zeros(9, 3, dtype=torch.float64)
    for _ in range(max(1, steps)):
        Yw = Y * w[:, None]
        A = Yw.t() @ Y + 1e-4 * torch.eye(9, dtype=torch.float64)
        C = torch.linalg.solve(A, Yw.t() @ I)
        r = (Y @ C - I).norm(dim=1)
        scale = 1.4826 * r.median().clamp(min=1e-3)
        w = 1.0 / (1.0 + (r / (2.0 * scale)) ** 2)  # Cauchy weights
    # rank-1 split C[k,c] = L[k] * rho[c]
    U, S, Vh = torch.linalg.svd(C, full_matrices=False)
    L, rho = U[:, 0] * S[0], Vh[0]
    if rho.sum() < 0:
        L, rho = -L, -rho
    k = ALBEDO_LEVEL / rho.mean().clamp(min=1e-6)
    rho, L = rho * k, L / k
    return (L[:, None] * torch.ones(1, 3, dtype=torch.float64)).float(), rho.float()
