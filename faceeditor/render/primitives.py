"""Simple meshes with known geometry, for tests, benchmarks and the viewport's gizmos."""

from __future__ import annotations

import math

import torch


def uv_sphere(n_lat: int, n_lon: int, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed UV sphere centred at the origin: ``2 * n_lon * (n_lat - 1)`` counter-clockwise triangles
    (outward normals). ``uv_sphere(101, 150)`` has exactly 30,000 triangles."""
    lat = torch.linspace(0, math.pi, n_lat + 1, dtype=torch.float64)[1:-1]
    lon = torch.linspace(0, 2 * math.pi, n_lon + 1, dtype=torch.float64)[:-1]
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    ring = torch.stack([torch.sin(la) * torch.cos(lo), torch.cos(la), -torch.sin(la) * torch.sin(lo)], -1)
    verts = torch.cat([ring.reshape(-1, 3), torch.tensor([[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]], dtype=torch.float64)])
    rings = n_lat - 1
    top, bottom = rings * n_lon, rings * n_lon + 1
    i = torch.arange(rings - 1)[:, None]
    j = torch.arange(n_lon)[None, :]
    a = i * n_lon + j
    b = i * n_lon + (j + 1) % n_lon
    c, d = a + n_lon, b + n_lon
    quads = torch.stack([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)], 2).reshape(-1, 3)
    jj = torch.arange(n_lon)
    caps_top = torch.stack([torch.full_like(jj, top), jj, (jj + 1) % n_lon], -1)
    last = (rings - 1) * n_lon
    caps_bot = torch.stack([torch.full_like(jj, bottom), last + (jj + 1) % n_lon, last + jj], -1)
    faces = torch.cat([caps_top, quads, caps_bot])
    return (verts * radius).float(), faces.long()


def grid_plane(nx: int, ny: int, width: float = 2.0, height: float = 2.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A plane z = 0 facing +z, centred at the origin: vertices, counter-clockwise faces, UVs."""
    xs = torch.linspace(-width / 2, width / 2, nx + 1)
    ys = torch.linspace(-height / 2, height / 2, ny + 1)
    Y, X = torch.meshgrid(ys, xs, indexing="ij")
    verts = torch.stack([X, Y, torch.zeros_like(X)], -1).reshape(-1, 3)
    uvs = torch.stack([(X + width / 2) / width, (Y + height / 2) / height], -1).reshape(-1, 2)
    i = torch.arange(ny)[:, None]
    j = torch.arange(nx)[None, :]
    a = i * (nx + 1) + j
    b, c, d = a + 1, a + nx + 1, a + nx + 2
    faces = torch.stack([torch.stack([a, b, d], -1), torch.stack([a, d, c], -1)], 2).reshape(-1, 3)
    return verts, faces.long(), uvs
