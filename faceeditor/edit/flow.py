"""Dense backward flow from vertex correspondence: where each pixel of the edited head comes from.

The edited head is rasterized on the work grid. A covered pixel sees triangle ``f`` at
barycentrics ``b``; the *same* surface point on the original (fitted) head, projected into the
photo, is where its colour comes from. That gives a backward flow (output pixel -> photo
position) that cv2.remap can apply, and, per pixel, how trustworthy the photo is there
(``warp_conf``), the product of:

* **visibility**: the source point was seen in the original view and lies inside the photo.
  Seen is the bilinear share of the 4 original-view grid pixels around its projection that
  agree with it: nothing there (a silhouette), a surface clearly behind it (also a sampling
  artefact at a silhouette), or the same *surface* (material, with the mouth and eye sockets
  apart from the skin; :func:`surface_ids`) within :data:`DEPTH_TOL_CM` of its depth. A surface
  clearly in front hides it; so does another surface at about its depth: teeth sit a few
  millimetres behind the lips, closer than any depth tolerance can tell at grid resolution.
  Catches teeth and mouth socket behind closed lips, cheek behind the nose, the far side of a
  turned head;
* **stretch**: the triangle faced the camera in the original view and its screen area did not
  grow by more than :data:`STRETCH_OK` (fading out at :data:`STRETCH_BAD`): an eyelid unfolding
  over the eye in a blink, skin at a grazing angle turned toward the camera; a few photo
  pixels smeared over many look wrong. (Per triangle, not per vertex normal: interpolated
  normals graze at every silhouette, yet those pixels are in the photo.)
* **trust** (:func:`source_trust`): a source that the edit *magnifies* (its triangle grows on
  screen, as the far cheek of a turned head does) must have been well seen: not outside the
  person (selfie segmentation ``person``, when given), and not at a grazing angle in the photo,
  where a fit that is a few pixels off samples hair, ear or background — unless the fill has
  nothing better there (``fill_quality``: the texture's confidence, high where the mirrored
  side was seen head-on; a frontal photo's two grazing cheeks are better stretched than
  filled; a photo stretched beyond the stretch limit above smears, though, so that limit holds
  whatever the fill). Sources that stay about their size keep the photo even at the silhouette.

Pixels with low confidence are served by the fill layer (:mod:`faceeditor.edit.fill`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from faceeditor.core.camera import Camera
from faceeditor.edit.grid import Window
from faceeditor.render.fragments import Fragments
from faceeditor.render.interpolate import interpolate_packed

DEPTH_TOL_CM = 1.0
STRETCH_OK = 3.0
STRETCH_BAD = 6.0
MAGNIFY = (1.2, 1.8)  # screen-area growth over which a source's trust starts to matter (ramp)
GRAZING = (0.25, 0.5)  # source facing (n . view) from untrustworthy (first) to trusted (second)
PERSON_OK = (0.2, 0.7)  # person alpha at the source from background (first) to person (second)
FILL_GOOD = (0.3, 0.7)  # texture confidence from "the fill is no better" (first) to "clearly better" (second)


@dataclass
class OriginalView:
    """What the warp needs of the fitted head in one work window (computed once per window)."""

    window: Window
    depth: torch.Tensor  # (H+2,W+2) view depth of the nearest original surface, +inf uncovered, 1-px border
    surface: torch.Tensor  # (H+2,W+2) long surface id there (:func:`surface_ids`), -1 uncovered
    covered: torch.Tensor  # (H,W) bool original silhouette
    face_area: torch.Tensor  # (F',) signed screen area (grid px^2) of each rendered triangle, original view
    tri_surface: torch.Tensor  # (F',) surface id of each rendered triangle


@dataclass
class Sources:
    """Per covered pixel of the edited head (packed, like :class:`Fragments`)."""

    pix: torch.Tensor  # (N,) flat grid pixel index
    face: torch.Tensor  # (N,) triangle (index into the rendered triangle list)
    src_xy: torch.Tensor  # (N,2) source position in output pixels (continuous coordinates)
    flow: torch.Tensor  # (N,2) src_xy - pixel centre, output pixels
    warp_conf: torch.Tensor  # (N,) in [0,1]
    n_src: torch.Tensor  # (N,3) unit normal of the source point (original view)
    n_dst: torch.Tensor  # (N,3) unit normal of the edited surface
    bary: torch.Tensor  # (N,3) barycentrics in ``face``
    facing: torch.Tensor | None = None  # (N,) n . view of the source point as the photo saw it


def screen_areas(screen: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """Signed screen areas (F,) of triangles ``tri`` on screen vertices (1,V,3); > 0 faces the camera."""
    s = screen[0, :, :2]
    a, b, c = s[tri[:, 0]], s[tri[:, 1]], s[tri[:, 2]]
    # y points down on the screen: counter-clockwise in 3D (front) is clockwise here
    return -0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))


def surface_ids(model, face_ids: torch.Tensor) -> torch.Tensor:
    """(F',) surface id of rendered triangles ``face_ids``: the material index, except that face
    triangles of the mouth socket and the eye sockets get ids of their own and each eyeball
    (sclera + iris) is one surface."""
    tri = model.faces[face_ids]
    sid = model.face_region[face_ids].clone()
    names = model.region_names
    for side in ("Left", "Right"):
        sid[sid == names.index(f"M_Iris{side}")] = names.index(f"M_Sclera{side}")
    n = len(model.region_names)
    for k, name in enumerate(("mouth_socket", "eye_socket")):
        code = model.vertex_region_names.index(name)
        sid[(model.vertex_region[tri] == code).all(1)] = n + k
    return sid


@torch.no_grad()
def original_view(frags: Fragments, screen: torch.Tensor, tri: torch.Tensor, tri_surface: torch.Tensor,
                  window: Window) -> OriginalView:
    """Summarise the rasterized original head (``frags`` on ``window``'s grid)."""
    H, W = window.grid_h, window.grid_w
    depth = torch.full((H + 2, W + 2), float("inf"))
    surface = torch.full((H + 2, W + 2), -1, dtype=torch.long)
    py = torch.div(frags.pix, W, rounding_mode="floor")
    px = frags.pix - py * W
    depth[py + 1, px + 1] = frags.depth
    surface[py + 1, px + 1] = tri_surface[frags.face]
    covered = torch.isfinite(depth[1:-1, 1:-1])
    return OriginalView(window, depth, surface, covered, screen_areas(screen, tri), tri_surface)


@torch.no_grad()
def trace_sources(frags: Fragments, tri: torch.Tensor, verts_src: torch.Tensor, normals_src: torch.Tensor,
                  normals_dst: torch.Tensor, dst_face_area: torch.Tensor, view: OriginalView,
                  camera: Camera, person: torch.Tensor | None = None,
                  fill_quality: torch.Tensor | None = None) -> Sources:
    """Backward correspondence of the edited head's pixels (``frags`` on ``view.window``'s grid).

    ``verts_src``/``normals_src`` (1,V,3) are the original head in camera space, ``normals_dst``
    the edited head's; ``dst_face_area`` (F',) the edited signed screen areas on the same grid;
    ``camera`` the output image's camera; ``person`` (h,w) the photo's person alpha at any
    resolution, ``fill_quality`` (N,) in [0,1] per pixel of ``frags`` (:func:`source_trust`).
    """
    win = view.window
    b = torch.zeros_like(frags.face)
    p_src = interpolate_packed(verts_src, tri, frags.face, frags.bary, b)  # (N,3) camera space
    scr = camera.project(p_src[None])[0]  # output px + depth
    W, H = win.grid_w, win.grid_h
    py = torch.div(frags.pix, W, rounding_mode="floor")
    px = frags.pix - py * W
    centre = torch.stack([(px.float() + 0.5) / win.kx + win.x0, (py.float() + 0.5) / win.ky + win.y0], -1)
    flow = scr[:, :2] - centre
    # seen in the original view: bilinear share of the 4 grid pixels around the source that agree
    g = win.from_output(scr)
    fx = g[:, 0] - 0.5
    fy = g[:, 1] - 0.5
    x0 = torch.floor(fx)
    y0 = torch.floor(fy)
    wx, wy = fx - x0, fy - y0
    x0 = x0.long().clamp(-1, W) + 1  # into the bordered maps
    y0 = y0.long().clamp(-1, H) + 1
    sid = view.tri_surface[frags.face]
    z = scr[:, 2]
    seen = torch.zeros_like(z)
    for dy, wyy in ((0, 1.0 - wy), (1, wy)):
        yy = (y0 + dy).clamp(0, H + 1)
        for dx, wxx in ((0, 1.0 - wx), (1, wx)):
            xx = (x0 + dx).clamp(0, W + 1)
            d = view.depth[yy, xx]
            ok = (d > z + DEPTH_TOL_CM) | (((d - z).abs() <= DEPTH_TOL_CM) & (view.surface[yy, xx] == sid))
            seen += wyy * wxx * ok.float()
    in_photo = ((scr[:, 0] >= 0) & (scr[:, 0] <= camera.width) & (scr[:, 1] >= 0)
                & (scr[:, 1] <= camera.height))
    n_src = F.normalize(interpolate_packed(normals_src, tri, frags.face, frags.bary, b), dim=-1)
    n_dst = F.normalize(interpolate_packed(normals_dst, tri, frags.face, frags.bary, b), dim=-1)
    a0 = view.face_area[frags.face]
    a1 = dst_face_area[frags.face].abs()
    ratio = a1 / a0.clamp(min=1e-6)
    ratio = torch.where(a0 > 1e-6, ratio, torch.full_like(ratio, 1e6))
    stretch = ((STRETCH_BAD - ratio) / (STRETCH_BAD - STRETCH_OK)).clamp(0.0, 1.0)
    facing = (n_src * F.normalize(-p_src, dim=-1)).sum(-1)
    alpha = None if person is None else sample_map(person, scr[:, :2], camera)
    conf = seen * in_photo.float() * stretch * source_trust(ratio, facing, alpha, fill_quality)
    return Sources(frags.pix, frags.face, scr[:, :2], flow, conf, n_src, n_dst, frags.bary, facing)


def source_trust(ratio: torch.Tensor, facing: torch.Tensor, person: torch.Tensor | None,
                 fill_quality: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) in [0,1]: 1 - magnified * max(grazing * fill better, background) for sources whose
    screen area grows by ``ratio``, seen at ``facing`` (n . view) in the photo, with person alpha
    ``person`` there; ``fill_quality`` (texture confidence) says how good the fill would be."""
    magnified = ((ratio - MAGNIFY[0]) / (MAGNIFY[1] - MAGNIFY[0])).clamp(0.0, 1.0)
    bad = ((GRAZING[1] - facing) / (GRAZING[1] - GRAZING[0])).clamp(0.0, 1.0)
    if fill_quality is not None:
        bad = bad * fill_gain(fill_quality)
    if person is not None:
        bad = torch.maximum(bad, ((PERSON_OK[1] - person) / (PERSON_OK[1] - PERSON_OK[0])).clamp(0.0, 1.0))
    return 1.0 - magnified * bad


def fill_gain(fill_quality: torch.Tensor) -> torch.Tensor:
    """(N,) in [0,1]: how much better than the photo the fill is, from its texture confidence."""
    return ((fill_quality - FILL_GOOD[0]) / (FILL_GOOD[1] - FILL_GOOD[0])).clamp(0.0, 1.0)


def sample_map(values: torch.Tensor, xy: torch.Tensor, camera: Camera) -> torch.Tensor:
    """Bilinear samples (N,) of a (h,w) map covering the whole photo at output positions ``xy`` (N,2)."""
    g = torch.stack([xy[:, 0] / camera.width * 2 - 1, xy[:, 1] / camera.height * 2 - 1], -1)
    return F.grid_sample(values[None, None].float(), g[None, None], mode="bilinear", padding_mode="border",
                         align_corners=False)[0, 0, 0]
