"""Differentiable rasterizer: known answers, moderngl agreement, gradients, soft silhouettes, SH."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceeditor.core.camera import Camera, project
from faceeditor.render.interpolate import interpolate, interpolate_packed, render, sample_texture
from faceeditor.render.primitives import grid_plane, uv_sphere
from faceeditor.render.raster import rasterize
from faceeditor.render.sh import (
    angles_from_direction,
    direction_from_angles,
    directional_sh,
    dominant_direction,
    sh_shading,
)


def sphere_scene(size: int, radius: float = 10.0, dist: float = 40.0, n_lat: int = 41, n_lon: int = 60):
    verts, faces = uv_sphere(n_lat, n_lon, radius)
    cam_pts = verts.clone()
    cam_pts[:, 2] -= dist
    cam = Camera(focal_px=size * 1.6, width=size, height=size)
    return cam_pts, faces, cam


def test_plane_known_answer():
    """A fronto-parallel square at depth 10 covers exactly the predicted pixel rectangle."""
    verts, faces, uvs = grid_plane(4, 4, width=2.0, height=2.0)
    pts = verts.clone()
    pts[:, 2] = -10.0
    cam = Camera(focal_px=100.0, width=64, height=48)
    frags = rasterize(cam.project(pts[None]), faces, 48, 64)
    # x in [32 - 10, 32 + 10], y in [24 - 10, 24 + 10]: centres 22.5 .. 41.5 -> 20 x 20 pixels
    mask = frags.mask()[0, 0]
    assert mask.sum().item() == 400
    assert mask[14:34, 22:42].all() and mask[13, 30] == 0 and mask[34, 30] == 0
    depth = frags.depth_map()[0, 0]
    assert torch.allclose(depth[mask > 0], torch.full((400,), 10.0), atol=1e-4)
    uv = interpolate(uvs, frags, faces)[0]  # (2,H,W)
    ys, xs = torch.meshgrid(torch.arange(48) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    u_true = (xs - 22.0) / 20.0
    v_true = 1.0 - (ys - 14.0) / 20.0
    m = mask > 0
    assert torch.allclose(uv[0][m], u_true[m], atol=1e-4)
    assert torch.allclose(uv[1][m], v_true[m], atol=1e-4)


def test_texture_sampling_checker():
    tex = torch.zeros(1, 3, 2, 2)
    tex[0, 0, 0, 0] = 1.0  # top-left texel red  -> u < .5, v > .5
    tex[0, 1, 1, 1] = 1.0  # bottom-right green  -> u > .5, v < .5
    uv = torch.tensor([[0.25, 0.75], [0.75, 0.25], [0.25, 0.25]])
    out = sample_texture(tex, uv)
    assert torch.allclose(out, torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]]))


def test_sphere_known_answer():
    """Silhouette area, centre depth and normals of a sphere match the analytic sphere."""
    size = 128
    pts, faces, cam = sphere_scene(size, n_lat=81, n_lon=120)
    frags = rasterize(cam.project(pts[None]), faces, size, size)
    r, d, f = 10.0, 40.0, cam.focal_px
    r_img = f * r / math.sqrt(d * d - r * r)  # silhouette radius of the tangent cone
    area = frags.mask().sum().item()
    assert abs(area - math.pi * r_img ** 2) / (math.pi * r_img ** 2) < 0.01
    depth = frags.depth_map()[0, 0]
    assert abs(depth[size // 2, size // 2].item() - (d - r)) < 0.02
    normals = torch.nn.functional.normalize(pts - torch.tensor([0.0, 0.0, -d]), dim=-1)
    nmap = interpolate(normals, frags, faces)[0]
    centre = nmap[:, size // 2 - 2:size // 2 + 2, size // 2 - 2:size // 2 + 2].mean((1, 2))
    assert torch.allclose(centre, torch.tensor([0.0, 0.0, 1.0]), atol=0.02)
    # analytic depth of the ray through each covered pixel centre
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    dirs = torch.stack([(xs - size / 2) / f, -(ys - size / 2) / f, -torch.ones_like(xs)], -1)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    b = -dirs[..., 2] * d  # ray-sphere: |t dir - c|^2 = r^2 with c = (0,0,-d)
    disc = b * b - (d * d - r * r)
    t = b - disc.clamp(min=0).sqrt()
    true_depth = -t * dirs[..., 2]
    inner = (disc > 5.0) & (frags.mask()[0, 0] > 0)
    assert (depth[inner] - true_depth[inner]).abs().max() < 0.1  # facets sit inside the sphere


@pytest.mark.gl
def test_agrees_with_moderngl():
    """Coverage and interpolated colour match an OpenGL render of the same scene."""
    gl = pytest.importorskip("faceeditor.render.gl")
    try:
        ctx = gl.offscreen_context()
    except Exception as exc:  # pragma: no cover - depends on the machine's EGL
        pytest.skip(f"no EGL context: {exc}")
    size = 160
    g = torch.Generator().manual_seed(0)
    pts, faces, cam = sphere_scene(size)
    pts = pts + 0.6 * torch.randn(pts.shape, generator=g)  # lumpy, self-occluding surface
    small, sfaces = uv_sphere(21, 30, 4.0)
    small = small + torch.tensor([6.0, 3.0, -29.0])  # an occluder in front
    verts = torch.cat([pts, small])
    faces_all = torch.cat([faces, sfaces + len(pts)])
    colors = torch.rand(len(verts), 3, generator=g)
    frags = rasterize(cam.project(verts[None]), faces_all, size, size)
    ours = interpolate(colors, frags, faces_all)[0].permute(1, 2, 0).numpy()
    mask = frags.mask()[0, 0].numpy() > 0
    mesh = gl.MeshBuffers.from_mesh(verts.numpy(), faces_all.numpy(), colors=colors.numpy())
    ref, ref_mask = gl.render_offscreen(mesh, cam.gl_projection(1.0, 200.0), size, size, ctx=ctx)
    ctx.release()
    union = (mask | ref_mask).sum()
    iou = (mask & ref_mask).sum() / union
    assert iou > 0.995, f"coverage IoU {iou:.4f}"
    both = mask & ref_mask
    diff = np.abs(ours[both] - ref[both])
    # pixels where the two z-buffers pick different triangles at the occluder's rim may differ
    assert np.median(diff) < 2e-3
    assert (diff.max(-1) > 0.05).mean() < 0.01


@pytest.mark.gl
def test_sh_shading_agrees_with_moderngl():
    gl = pytest.importorskip("faceeditor.render.gl")
    try:
        ctx = gl.offscreen_context()
    except Exception as exc:  # pragma: no cover
        pytest.skip(f"no EGL context: {exc}")
    size = 96
    pts, faces, cam = sphere_scene(size)
    normals = torch.nn.functional.normalize(pts - torch.tensor([0.0, 0.0, -40.0]), dim=-1)
    sh = directional_sh(direction_from_angles(30.0, 20.0), 0.8, 0.3)
    frags = rasterize(cam.project(pts[None]), faces, size, size)
    nmap = torch.nn.functional.normalize(interpolate(normals, frags, faces), dim=1)
    ours = sh_shading(nmap, sh[None])[0].permute(1, 2, 0).numpy()
    mesh = gl.MeshBuffers.from_mesh(pts.numpy(), faces.numpy(), normals=normals.numpy())
    ref, ref_mask = gl.render_offscreen(mesh, cam.gl_projection(1.0, 200.0), size, size, sh=sh.numpy(), ctx=ctx)
    ctx.release()
    both = ref_mask & (frags.mask()[0, 0].numpy() > 0)
    assert np.abs(ours[both] - ref[both]).mean() < 5e-3


def test_gradients_match_finite_differences():
    """Gradients to vertex positions, colours, SH and texture agree with central differences."""
    torch.manual_seed(0)
    size = 24
    verts, faces = uv_sphere(9, 12, 10.0)
    pts = (verts + torch.tensor([0.0, 0.0, -40.0])).double()
    colors = torch.rand(len(verts), 3, dtype=torch.float64)
    uvs = torch.rand(len(verts), 2, dtype=torch.float64)
    tex = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    sh = directional_sh(direction_from_angles(20.0, 10.0), 0.7, 0.4).double()[None]
    weight = torch.rand(1, 3, size, size, dtype=torch.float64)
    cam = Camera(focal_px=size * 1.6, width=size, height=size)
    normals = torch.nn.functional.normalize(verts.double(), dim=-1)

    def loss(p, c, s, t):
        frags = rasterize(cam.project(p[None]), faces, size, size)
        albedo = interpolate(c, frags, faces) * 0.5
        uv = interpolate_packed(uvs, faces, frags.face, frags.bary, frags.batch_index)
        from faceeditor.render.fragments import scatter_dense
        albedo = albedo + 0.5 * scatter_dense(sample_texture(t, uv), frags)
        nmap = interpolate(normals, frags, faces)
        img = albedo * sh_shading(nmap, s) + frags.depth_map() * 0.01
        return (img * weight).sum()

    args = [pts.clone().requires_grad_(), colors.clone().requires_grad_(), sh.clone().requires_grad_(),
            tex.clone().requires_grad_()]
    loss(*args).backward()
    g = torch.Generator().manual_seed(1)
    for i, eps in [(0, 1e-5), (1, 1e-4), (2, 1e-4), (3, 1e-4)]:
        base = [a.detach().clone() for a in args]
        for _ in range(6):
            idx = tuple(torch.randint(0, n, (1,), generator=g).item() for n in base[i].shape)
            if i == 0:  # pick a visible vertex (front hemisphere) so its gradient is not trivially 0
                idx = (int(torch.argmax(base[0][:, 2] + torch.rand(len(base[0]), generator=g, dtype=torch.float64))), idx[1])
            plus = [a.clone() for a in base]
            minus = [a.clone() for a in base]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            fd = (loss(*plus) - loss(*minus)).item() / (2 * eps)
            an = args[i].grad[idx].item()
            assert abs(fd - an) <= 1e-4 + 1e-3 * abs(fd), (i, idx, fd, an)


def test_soft_edges_give_silhouette_gradients():
    """Moving a flat-coloured square: the crisp render has no x-gradient, the soft one points the right way."""
    verts, faces, _ = grid_plane(1, 1, 2.0, 2.0)
    size = 48
    cam = Camera(focal_px=100.0, width=size, height=size)

    def render_at(shift: torch.Tensor, soft: float):
        pts = verts.clone()
        pts = pts + torch.stack([shift, torch.zeros_like(shift), torch.tensor(-10.0)])
        frags = rasterize(cam.project(pts[None]), faces, size, size, soft_radius=soft)
        ones = lambda face, bary, batch: torch.ones(face.shape[0], 1)  # noqa: E731
        img, alpha = render(frags, ones, background=0.0)
        return img

    target = render_at(torch.tensor(0.3), 1.5).detach()  # square shifted right by 3 px
    for soft, expect_grad in [(0.0, False), (1.5, True)]:
        x = torch.tensor(0.013, requires_grad=True)  # generic: no pixel centre exactly at d = B
        loss = ((render_at(x, soft) - target) ** 2).sum()
        if loss.requires_grad:  # the crisp render of a flat colour does not depend on x at all
            loss.backward()
        if expect_grad:
            assert x.grad is not None and x.grad.item() < -1.0, x.grad  # moving right reduces the loss
            # and matches a finite difference of the soft render
            fd = (((render_at(torch.tensor(0.015), soft) - target) ** 2).sum()
                  - ((render_at(torch.tensor(0.011), soft) - target) ** 2).sum()) / 0.004
            assert abs(fd.item() - x.grad.item()) < 0.02 * abs(fd.item())
        else:
            assert x.grad is None or abs(x.grad.item()) < 1e-6


def test_soft_alpha_profile():
    """Soft coverage falls off linearly over B pixels outside the edge."""
    verts, faces, _ = grid_plane(1, 1, 2.0, 2.0)
    pts = verts + torch.tensor([0.0, 0.0, -10.0])
    size = 64
    cam = Camera(focal_px=100.0, width=size, height=size)  # square spans x in [22, 42]
    frags = rasterize(cam.project(pts[None]), faces, size, size, soft_radius=3.0)
    _, alpha = render(frags, lambda f, b, bt: torch.ones(f.shape[0], 1))
    row = alpha[0, 0, 32]
    assert row[30].item() == 1.0
    # pixel 42 has centre 42.5: 0.5 px outside -> 1 - 0.5/3; pixel 44 -> 1 - 2.5/3; pixel 45 -> 0
    assert abs(row[42].item() - (1 - 0.5 / 3)) < 1e-4
    assert abs(row[44].item() - (1 - 2.5 / 3)) < 1e-4
    assert row[45].item() == 0.0


def test_batched_equals_single():
    pts, faces, cam = sphere_scene(64)
    other = pts * torch.tensor([1.2, 0.8, 1.0]) + torch.tensor([3.0, 0.0, 0.0])
    both = rasterize(cam.project(torch.stack([pts, other])), faces, 64, 64)
    a = rasterize(cam.project(pts[None]), faces, 64, 64)
    b = rasterize(cam.project(other[None]), faces, 64, 64)
    ids = both.face_id_map()
    assert torch.equal(ids[0], a.face_id_map()[0]) and torch.equal(ids[1], b.face_id_map()[0])
    assert torch.allclose(both.depth_map()[1], b.depth_map()[0])


def test_backface_culling_and_empty():
    pts, faces, cam = sphere_scene(64)
    full = rasterize(cam.project(pts[None]), faces, 64, 64)
    culled = rasterize(cam.project(pts[None]), faces, 64, 64, cull_backfaces=True)
    assert torch.equal(full.face_id_map(), culled.face_id_map())
    behind = pts.clone()
    behind[:, 2] += 100.0  # whole sphere behind the camera
    none = rasterize(cam.project(behind[None]), faces, 64, 64)
    assert none.pix.numel() == 0 and none.mask().sum() == 0


def test_sh_directional_light():
    d = direction_from_angles(40.0, 20.0)
    az, el = angles_from_direction(d)
    assert abs(az.item() - 40.0) < 1e-4 and abs(el.item() - 20.0) < 1e-4
    sh = directional_sh(d, intensity=1.0, ambient=0.2)
    assert torch.allclose(dominant_direction(sh), d, atol=1e-5)
    n = torch.nn.functional.normalize(torch.randn(2000, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    shade = sh_shading(n, sh[None].expand(2000, 9, 3))[:, 0]
    exact = 0.2 + (n @ d).clamp(min=0)
    # order-2 SH approximates the clamped cosine to within ~0.1 (Ramamoorthi & Hanrahan)
    assert (shade - exact).abs().max() < 0.11
    assert (shade - exact).abs().mean() < 0.04


def test_gl_projection_matches_project():
    cam = Camera(focal_px=300.0, width=200, height=120, cx=90.0, cy=70.0)
    P = torch.from_numpy(cam.gl_projection(1.0, 100.0)).double()
    pts = torch.tensor([[1.0, 2.0, -20.0], [-3.0, 0.5, -7.0]], dtype=torch.float64)
    clip = torch.cat([pts, torch.ones(2, 1, dtype=torch.float64)], 1) @ P.T
    ndc = clip[:, :3] / clip[:, 3:]
    x = (ndc[:, 0] + 1) / 2 * 200
    y = (1 - ndc[:, 1]) / 2 * 120
    ref = project(pts[None], 300.0, 90.0, 70.0)[0]
    assert torch.allclose(torch.stack([x, y], -1), ref[:, :2], atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():  # pragma: no cover - runs only where a GPU exists
    pts, faces, cam = sphere_scene(64)
    a = rasterize(cam.project(pts[None]), faces, 64, 64)
    b = rasterize(cam.project(pts[None].cuda()), faces.cuda(), 64, 64)
    assert torch.equal(a.face_id_map(), b.face_id_map().cpu())
