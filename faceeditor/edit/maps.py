"""The work-grid maps of one edit: what :class:`~faceeditor.edit.compose.MeshCompositor` computes
on the coarse grid before it touches full-resolution pixels.

From the backward correspondence of the edited head's grid pixels (:class:`~faceeditor.edit.flow.Sources`):

* the *flow*: exact inside the edited head, extended outside by pull-push and faded by LiftedGAN's
  transformation map T (:mod:`faceeditor.edit.blendmap`), so hair and neck follow and the
  background stays;
* the *relight gain* on the whole person: the luminance shading ratio of the target to the
  fitted SH light on the edited vs the source normals, silhouette normals off the mesh
  (:mod:`faceeditor.edit.relight`, :mod:`faceeditor.edit.person_light`);
* the *fill need*: 1 - warp confidence, ramped and cleaned of specks, where the fill provider's
  layer replaces the warped photo (:mod:`faceeditor.edit.fill`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from faceeditor.edit import blendmap, person_light, relight, skin_tone
from faceeditor.edit.flow import Sources
from faceeditor.edit.grid import Window
from faceeditor.edit.params import EditParams
from faceeditor.edit.person_light import PersonShading

FILL_FEATHER_PX = 1.5  # fill mask feather in work-grid pixels
NEED_RAMP = (0.3, 0.7)  # fill need = 1 - warp confidence, ramped from 0 at the first to 1 at the second
MIN_FLOW_PX = 0.02  # output pixels: smaller motion counts as none
FACE_OUTLINE_SMOOTH = 1.2  # grid pixels: Gaussian sigma rounding the face layer's outline
FACE_CUT_MIN_CELL_PX = 3.0  # the face layer is cut only where a grid cell spans this many output pixels
#                             (exports of large photos; a slider preview's 2-3 px ramp is left as it is)
REROUTE_CONF = 0.5  # scalp/neck pixels below this warp confidence take their seen neighbours' flow


@dataclass
class EditedHead:
    """The edited head on the work grid: what the fill layer draws besides the masks."""

    verts: torch.Tensor  # (1,V,3) camera-frame vertices
    normals: torch.Tensor  # (1,V,3) unit vertex normals of ``verts``
    screen: torch.Tensor | None  # (1,V,3) grid-screen vertices; None when the geometry is the fitted one
    area: torch.Tensor | None  # (F',) signed grid-screen areas of the rendered triangles; None likewise
    fragments: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # rasterized on the grid: flat pixel (N,),
    #                                                              triangle into model.faces (N,), barycentrics (N,3)


@dataclass
class FaceLayer:
    """The face drawn over the scalp and neck behind it (:func:`face_layer`): where the face's
    flow and the (rerouted) neck's flow meet at the jaw (an occlusion edge), one bilinear flow would
    ramp across a grid cell and sample a compressed copy of the photo's jaw edge there: a dark
    line in steps of the grid. Instead both flows are applied and cut at output resolution."""

    flow: np.ndarray  # (H,W,2) the face's flow continued past its outline (pull-push)
    back: np.ndarray  # (H,W,2) the final flow of everything else, continued under the face
    sd: np.ndarray  # (H,W) signed distance to the face's outline in grid pixels (> 0 on the face)


@dataclass
class GridMaps:
    """An edit's maps on the work grid of one output size (all (H,W) = (grid_h, grid_w))."""

    window: Window  # the work window: output rectangle and its grid
    edit: EditParams
    head: EditedHead
    sh: np.ndarray  # (9,3) SH irradiance the edited photo shows (:func:`faceeditor.edit.geometry.target_sh`)
    flow: np.ndarray | None  # (H,W,2) backward flow in output pixels; None when nothing moves
    moving: np.ndarray  # (H,W) bool: the flow moves the pixel by more than MIN_FLOW_PX
    gain: np.ndarray | None  # (H,W,3) relight gain (1 = unchanged); None when neither light nor surface moves
    lit: np.ndarray  # (H,W) bool: the gain differs from 1
    need: np.ndarray  # (H,W) float32 fill need in [0,1]
    filled: np.ndarray  # (H,W) bool: need > 1e-3, pixels the fill layer is blended into
    face: FaceLayer | None = None  # the face over the neck at the jaw, when their flows part there
    face_px: np.ndarray | None = None  # (H,W) float32: the edited head's face (not scalp, neck or ears), softened
    src_facing: np.ndarray | None = None  # (H,W) float32: how squarely the photo saw each pixel's source (n . view)


# (edited head's sources, the edited head, the edit, the work window) -> (luminance log shading
# ratio new/fitted (H,W), blend weight (H,W) in [0,1]) or None: a renderer's own shading model
# (the Personal renderer's Blinn-Phong + learned shadows) in place of the SH ratio where blend is 1
ShadingRatio = Callable[[Sources, "EditedHead", EditParams, Window], "tuple[np.ndarray, np.ndarray] | None"]


def coverage(src: Sources, win: Window) -> np.ndarray:
    """(H,W) bool: grid pixels covered by the edited head."""
    covered = torch.zeros(win.grid_h * win.grid_w, dtype=torch.bool)
    covered[src.pix] = True
    return covered.view(win.grid_h, win.grid_w).numpy()


def moves(src: Sources) -> bool:
    """True when some pixel of the edited head has a source more than MIN_FLOW_PX away."""
    return bool(src.flow.abs().max() > MIN_FLOW_PX) if src.pix.numel() else False


def flow_map(src: Sources, covered: np.ndarray, covered_before: np.ndarray, win: Window, head_px: float,
             taper: tuple[bool, bool, bool, bool], scalp: torch.Tensor | None = None,
             inner: torch.Tensor | None = None,
             cut_back: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray, FaceLayer | None, np.ndarray | None]:
    """The backward flow (H,W,2), where it moves pixels (H,W), the face layer (:func:`face_layer`,
    None without ``scalp`` or on a grid finer than :data:`FACE_CUT_MIN_CELL_PX`) and the edited face
    (H,W) float32 softened over a grid cell (None without ``scalp``; not the staircase of the grid
    and the zigzag of face and scalp materials): exact inside the edited head, pull-push
    extension outside, faded by the transformation map T over both silhouettes. ``scalp``: (F',)
    bool over the rendered triangles of scalp and neck (:func:`reroute_unseen`); ``inner``: (F',)
    bool triangles that move with the face around them (:func:`follow_face`); ``cut_back``: (F',) bool,
    the triangles behind the face layer's cut (default ``scalp``; with the skin under the chin, whose flow
    parts from the jaw's at the fold: one bilinear ramp there drew a serrated dark line on big photos)."""
    gh, gw = win.grid_h, win.grid_w
    flow = torch.zeros(gh * gw, 2)
    flow[src.pix] = src.flow
    flow = flow.view(gh, gw, 2).numpy()
    if inner is not None:
        flow = follow_face(flow, src, inner, win)
    if scalp is not None:
        flow = reroute_unseen(flow, src, scalp, win)
    k = 0.5 * (win.kx + win.ky)
    ext = blendmap.extend_outside(flow, covered)
    head = covered | covered_before
    radius = blendmap.falloff_radius(ext * k, head, head_px * k)
    T = blendmap.transformation_map(head, radius, taper, taper_px=max(2.0, 0.05 * min(gh, gw)))
    final = ext * T[..., None]
    face = face_pixels(src, scalp, win) if scalp is not None else None
    cut = face is not None and 1.0 / k >= FACE_CUT_MIN_CELL_PX and face.any() and not face.all()
    front = face if cut_back is None or not cut else face_pixels(src, cut_back, win)
    layer = face_layer(flow, final, front, T) if cut and front.any() else None
    moving = np.abs(final[..., 0]) + np.abs(final[..., 1]) > MIN_FLOW_PX
    return final, moving, layer, None if face is None else blendmap.feather(face, 1.0)


def face_pixels(src: Sources, scalp: torch.Tensor, win: Window) -> np.ndarray:
    """(H,W) bool: grid pixels of the edited head that are not scalp or neck."""
    out = torch.zeros(win.grid_h * win.grid_w, dtype=torch.bool)
    out[src.pix] = ~scalp[src.face]
    return out.view(win.grid_h, win.grid_w).numpy()


def face_layer(flow: np.ndarray, final: np.ndarray, face: np.ndarray, T: np.ndarray) -> FaceLayer:
    """The face's flow continued past its outline (pull-push from its rim, faded by ``T``), the
    ``final`` flow of the rest continued under the face, and the signed distance to the face's
    outline (:class:`FaceLayer`); ``flow`` is the head's flow before the extension and falloff."""
    ext = blendmap.extend_outside(flow, face) * T[..., None]
    back = np.where(face[..., None], blendmap.push_pull(final, (~face).astype(np.float32)), final)
    inside = cv2.distanceTransform(face.astype(np.uint8), cv2.DIST_L2, 3)
    outside = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 3)
    # pixel centres: the outline lies half a pixel beyond the last face pixel
    sd = np.where(face, inside - 0.5, 0.5 - outside).astype(np.float32)
    # the grid outline is a staircase; a smoothed distance field cuts along the smooth curve through it
    sd = blendmap.feather(sd, FACE_OUTLINE_SMOOTH)
    return FaceLayer(ext.astype(np.float32), back.astype(np.float32), sd)


def follow_face(flow: np.ndarray, src: Sources, inner: torch.Tensor, win: Window) -> np.ndarray:
    """``flow`` (H,W,2) with the pixels of ``inner`` triangles (teeth, mouth and eye sockets,
    eyeballs) taking the pull-push flow of the face around them. For an edit that keeps the
    expression: the fitted mesh's teeth and sockets rarely line up with the photo's, and their own
    flow (a centimetre behind the lips, so a turn's parallax) dragged the lip edges into stepped,
    outlined ghosts along the teeth (a Helen portrait at yaw 25). The mouth interior moves as part
    of the face instead; an expression edit keeps the exact flow (its interior is filled)."""
    gh, gw = win.grid_h, win.grid_w
    on = torch.zeros(gh * gw, dtype=torch.bool)
    on[src.pix] = inner[src.face]
    on = on.view(gh, gw).numpy()
    if not on.any():
        return flow
    face = np.zeros(gh * gw, np.float32)
    face[src.pix.numpy()] = 1.0
    face = face.reshape(gh, gw) * ~on
    if face.sum() < 1.0:
        return flow
    return np.where(on[..., None], blendmap.push_pull(flow, face), flow).astype(np.float32)


def reroute_unseen(flow: np.ndarray, src: Sources, scalp: torch.Tensor, win: Window) -> np.ndarray:
    """Scalp and neck pixels whose source the photo does not show (behind the chin, the far side
    of the head) take the flow of the *seen* scalp and neck around them (pull-push), not their own:
    their own source lies under the face in the photo and would paint a second chin or cheek
    there; the neighbours' flow continues the hair and collar instead. (The fill draws the face;
    these surfaces are hair and clothes in a photo, which the mesh does not know.)"""
    gh, gw = win.grid_h, win.grid_w
    on_scalp = scalp[src.face]
    conf = torch.zeros(gh * gw)
    conf[src.pix] = torch.where(on_scalp, src.warp_conf, torch.zeros_like(src.warp_conf))
    unseen = torch.zeros(gh * gw, dtype=torch.bool)
    unseen[src.pix] = on_scalp & (src.warp_conf < REROUTE_CONF)
    unseen = unseen.view(gh, gw).numpy()
    if not unseen.any():
        return flow
    w = conf.view(gh, gw).numpy() * ~unseen
    if w.sum() < 1.0:
        return flow
    ext = blendmap.push_pull(flow, w.astype(np.float32))
    return np.where(unseen[..., None], ext, flow).astype(np.float32)


def relight_gain(
    src: Sources,
    person: PersonShading,
    classes: torch.Tensor,
    sh_fit: np.ndarray,
    sh_new: np.ndarray,
    win: Window,
    flow: np.ndarray | None = None,
    own: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The relight gain (H,W,3) on the whole person and where it is not 1 (H,W): the luminance
    shading ratio of ``sh_new`` to ``sh_fit`` (:mod:`faceeditor.edit.relight`, the same factor on
    every channel, times the light's tint if its colour changed) over the head and the person
    around it (:func:`faceeditor.edit.person_light.log_ratio_map`); ``own`` = (log ratio, blend) (H,W)
    from a :data:`ShadingRatio` replaces it where blend is 1 (a renderer's own light model on the
    face; the colour stays the light change's tint). ``person``: the window's
    :func:`~faceeditor.edit.person_light.prepare`; ``classes`` (F',) over the rendered triangles
    (:func:`~faceeditor.edit.person_light.triangle_classes`); ``flow`` the edit's backward flow."""
    change = relight.light_change(sh_fit, sh_new)
    L, weight = person_light.log_ratio_map(person, src, classes, change, win, flow)
    if own is not None:
        L = L + own[1] * (own[0] - L)
    gain = relight.gain_map(L, weight, change.tint)
    lit = np.abs(gain - 1.0).max(axis=2) > 1e-4
    return gain, lit


def source_facing(src: Sources, win: Window) -> np.ndarray | None:
    """(H,W) float32 on the work grid: how squarely the photo saw each edited-head pixel's source
    (``src.facing``, n . view; 1 off the head); None when ``src`` does not carry it."""
    if src.facing is None:
        return None
    out = torch.ones(win.grid_h * win.grid_w)
    out[src.pix] = src.facing.float()
    return out.view(win.grid_h, win.grid_w).numpy()


def fill_need(src: Sources, covered: np.ndarray, win: Window, fillable: torch.Tensor | None = None) -> np.ndarray:
    """(H,W) float32 in [0,1]: where the photo has no trustworthy source for the edited head.
    ``fillable``: (F',) bool over the rendered triangles the fill may draw (elsewhere the warped
    photo stays, e.g. the scalp and neck, which the photo shows as hair and collar)."""
    gh, gw = win.grid_h, win.grid_w
    conf = torch.ones(gh * gw)
    conf[src.pix] = src.warp_conf if fillable is None else torch.where(fillable[src.face], src.warp_conf, 1.0)
    # (a ramp: partial confidence at surface borders is mostly a grid-sampling effect)
    lo, hi = NEED_RAMP
    need = ((1.0 - conf - lo) / (hi - lo)).clamp_(0.0, 1.0).view(gh, gw).numpy()
    # specks (a fold of skin under the lip, a crease) are better warped than filled: keep
    # only regions that survive a 3x3 opening, then soften
    core = cv2.morphologyEx((need > 0.5).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    need *= cv2.dilate(core, np.ones((5, 5), np.uint8)).astype(np.float32)
    return blendmap.feather(need, FILL_FEATHER_PX) * covered


def skin_tone_of(photo: np.ndarray, win: Window, src: Sources, classes: torch.Tensor) -> skin_tone.SkinTone | None:
    """The photo's skin colour by brightness (:mod:`.skin_tone`) over the fitted head's skin
    (``src`` the fitted head's own pixels, ``classes`` :func:`~.person_light.triangle_classes`),
    away from its outline, on the work grid."""
    skin = np.zeros(win.grid_h * win.grid_w, np.uint8)
    skin[src.pix.numpy()] = (classes[src.face] == person_light.TRI_SKIN).numpy()
    skin = cv2.erode(skin.reshape(win.grid_h, win.grid_w), np.ones((5, 5), np.uint8)) > 0
    r, c = win.slices
    small = cv2.resize(photo[r, c], (win.grid_w, win.grid_h), interpolation=cv2.INTER_AREA)
    return skin_tone.measure(small[skin].astype(np.float32) / 255.0)
