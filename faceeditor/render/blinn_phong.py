"""Blinn-Phong shading with one directional light, and soft self-shadows from a shadow map.

The shading stage of the personal pipeline (``../shared/papers/001_...txt``, "5. Shading:
rendering equations per pixel based on Blinn-Phong", one directional light per image with a
position (direction), a colour and diffuse and specular coefficients):

    I = c * ( rho_d * (k_a * a + k_d * v * max(n.l, 0)) + rho_s * k_s * v * max(n.h, 0)^alpha * [n.l > 0] )

``h = normalize(l + e)`` the half vector of the light ``l`` and the view ``e`` (unit, toward the
camera), ``a`` the ambient occlusion and ``v`` the visibility of the light (self-shadowing), both
in [0, 1]. :func:`shadow_visibility` gives the geometric part of ``v`` from an orthographic
shadow map rendered with the torch rasterizer (percentage-closer filtered, so the shadow of a
nose or a brow has a soft edge); the personal pipeline's lighting network learns the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from faceeditor.render.raster import rasterize

SPEC_RAMP = 10.0  # the specular term fades in over n.l in [0, 1/SPEC_RAMP] (no highlight from behind)
DEPTH_OFFSET = 1000.0  # shadow-map depths are offset so the rasterizer's 1/z interpolation is ~linear


def blinn_phong(n: torch.Tensor, e: torch.Tensor, l: torch.Tensor, rho_d: torch.Tensor, rho_s: torch.Tensor,
                colour: torch.Tensor, ka: torch.Tensor, kd: torch.Tensor, ks: torch.Tensor,
                shininess: torch.Tensor, vis: torch.Tensor | None = None,
                ao: torch.Tensor | None = None) -> torch.Tensor:
    """The module equation at N points: unit normals ``n`` and view directions ``e`` (N,3), unit
    light direction ``l`` (3,) (toward the light), albedos ``rho_d`` (N,3) and ``rho_s`` (N,1),
    light ``colour`` (3,) and scalars ``ka, kd, ks, shininess``; ``vis``, ``ao`` (N,) default 1.
    Returns (N,3) linear pixel values."""
    ndl = (n * l).sum(-1)
    h = F.normalize(l[None] + e, dim=-1)
    ndh = (n * h).sum(-1).clamp(min=1e-6)
    facing = (ndl * SPEC_RAMP).clamp(0.0, 1.0)
    diffuse = kd * ndl.clamp(min=0.0)
    spec = ks * torch.exp(shininess * torch.log(ndh)) * facing
    if vis is not None:
        diffuse, spec = diffuse * vis, spec * vis
    amb = ka if ao is None else ka * ao
    return colour * (rho_d * (amb + diffuse)[:, None] + rho_s * spec[:, None])


def _light_frame(l: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors completing the unit light direction ``l`` to a right-handed frame."""
    up = torch.tensor([0.0, 1.0, 0.0], dtype=l.dtype) if abs(float(l[1])) < 0.9 else torch.tensor([1.0, 0.0, 0.0])
    e1 = F.normalize(torch.linalg.cross(up, l), dim=0)
    return e1, torch.linalg.cross(l, e1)


@torch.no_grad()
def shadow_visibility(verts: torch.Tensor, faces: torch.Tensor, points: torch.Tensor, normals: torch.Tensor,
                      light: torch.Tensor, size: int = 128, bias_cm: float = 0.25, soft_cm: float = 0.08,
                      pcf: int = 2) -> torch.Tensor:
    """(N,) in [0,1]: how much of the directional ``light`` (3,) reaches ``points`` (N,3) on the mesh
    ``verts`` (V,3), ``faces`` (F,3), all in one frame (cm). The mesh is rendered orthographically
    along ``light`` into a ``size``² depth map; a point is lit where it is not farther from the light
    than the map, ``sigmoid((D - d + bias) / soft)``, averaged over (2 pcf + 1)² map pixels
    (percentage-closer filtering). ``normals`` (N,3) push the points off the surface by ``bias_cm``
    (normal-offset bias: no self-shadow acne)."""
    l = F.normalize(light.float(), dim=0)
    e1, e2 = _light_frame(l)
    basis = torch.stack([e1, e2, l], 1)  # (3,3): columns x, y, toward the light
    v = verts.float() @ basis
    p = (points.float() + bias_cm * normals.float()) @ basis
    lo, hi = v[:, :2].amin(0), v[:, :2].amax(0)
    scale = (size - 2) / (hi - lo).max().clamp(min=1e-6)
    top = float(v[:, 2].max()) + 1.0

    def screen(q: torch.Tensor) -> torch.Tensor:
        x = (q[:, 0] - lo[0]) * scale + 1.0
        y = (hi[1] - q[:, 1]) * scale + 1.0
        return torch.stack([x, y, top - q[:, 2] + DEPTH_OFFSET], -1)

    frags = rasterize(screen(v)[None], faces, size, size)
    far = float(screen(v)[:, 2].max()) + 10.0
    depth = torch.full((size * size,), far)
    depth[frags.pix] = frags.depth.detach().float()
    depth = depth.view(1, 1, size, size)
    k = 2 * pcf + 1
    shifted = F.unfold(F.pad(depth, (pcf,) * 4, mode="replicate"), k).view(1, k * k, size, size)
    s = screen(p)
    grid = torch.stack([s[:, 0] / size * 2.0 - 1.0, s[:, 1] / size * 2.0 - 1.0], -1)
    got = F.grid_sample(shifted, grid[None, None], mode="bilinear", padding_mode="border", align_corners=False)
    got = got[0, :, 0].t()  # (N,k*k)
    return torch.sigmoid((got - s[:, 2:3] + bias_cm) / soft_cm).mean(1)
