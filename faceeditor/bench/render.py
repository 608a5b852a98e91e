"""``faceeditor bench render``: speed of the differentiable rasterizer on CPU.

Scene: a UV sphere of exactly 30,000 triangles (``uv_sphere(101, 150)``) filling ~55% of a
square image, no back-face culling. *Forward* = visibility pass + differentiable
barycentrics + interpolation of per-vertex normals into a dense (1,3,S,S) map, i.e. what every
render in the fitter does. *Backward* = gradients of a weighted sum of that map to vertex
positions and to the normals. Extra keys time the ICT head (48,836 triangles) when
``resources/face_model.npz`` is present.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from faceeditor.bench._util import time_ms
from faceeditor.core.camera import Camera
from faceeditor.morphable import load_face_model
from faceeditor.render.interpolate import interpolate
from faceeditor.render.primitives import uv_sphere
from faceeditor.render.raster import rasterize, visible_faces

NAME = "render"
HELP = "time the torch rasterizer (30k triangles at 256 and 1024 px, forward and backward)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")


def _scene(size: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Camera]:
    verts, faces = uv_sphere(101, 150, 10.0)
    pts = (verts + torch.tensor([0.0, 0.0, -40.0])).to(device)
    normals = torch.nn.functional.normalize(verts, dim=-1).to(device)
    return pts, faces.to(device), normals, Camera(focal_px=size * 1.6, width=size, height=size)


def _face_scene(size: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Camera]:
    model = load_face_model(device=device)
    verts = model.vertices()[0]
    pts = verts + torch.tensor([0.0, 0.0, -60.0], device=device)
    normals = torch.nn.functional.normalize(verts - verts.mean(0), dim=-1)
    return pts, model.faces.long(), normals, Camera(focal_px=size * 2.2, width=size, height=size)


def _time_pair(pts, faces, normals, cam, repeats: int) -> tuple[float, float, float, int]:
    size = cam.width
    weight = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(pts.device)

    def forward(p, n):
        frags = rasterize(cam.project(p[None]), faces, size, size)
        return interpolate(n, frags, faces), frags

    fwd = time_ms(lambda: forward(pts, normals), repeats)
    vis = time_ms(lambda: visible_faces(cam.project(pts[None]), faces, size, size), repeats)
    p = pts.clone().requires_grad_()
    n = normals.clone().requires_grad_()
    times = []
    for i in range(repeats + 3):
        img, _ = forward(p, n)
        loss = (img * weight).sum()
        t0 = time.perf_counter()
        loss.backward()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000.0)
    _, frags = forward(pts, normals)
    return fwd, statistics.median(times), vis, int(frags.pix.numel())


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    out: dict = {"threads": args.threads, "device": args.device, "triangles": 30000}
    fwd, bwd, vis, cov = _time_pair(*_scene(256, args.device), args.repeats)
    out.update(raster_fwd_ms_256=round(fwd, 2), raster_bwd_ms_256=round(bwd, 2), visibility_ms_256=round(vis, 2),
               covered_px_256=cov)
    fwd, _, vis, cov = _time_pair(*_scene(1024, args.device), max(5, args.repeats // 4))
    out.update(raster_fwd_ms_1024=round(fwd, 2), visibility_ms_1024=round(vis, 2), covered_px_1024=cov)
    try:
        fwd, bwd, _, cov = _time_pair(*_face_scene(256, args.device), args.repeats)
        out.update(face_triangles=48836, face_fwd_ms_256=round(fwd, 2), face_bwd_ms_256=round(bwd, 2))
    except FileNotFoundError:
        pass
    return out
