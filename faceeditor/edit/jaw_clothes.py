"""Under the jaw the chin passes over a collar that stays: a still clothes layer behind the head.

The transformation map (LiftedGAN ``002`` eq. 1, :mod:`.blendmap`) continues the head's motion past
its silhouette so hair follows without a tear. Under the jaw that continuation drags the collar:
the pixels next to the turned chin take the chin's flow and sample the shirt beside the old chin,
and a sliver of white collar shows between chin and lapel (the most frequent flaw of the labelled
set D at yaw 15). A flow cannot both move the chin and keep the collar beside it still: that is an
occlusion edge, so it is drawn as one. Below the jaw line (through iBUG points 5 and 13, 0-based 4
and 12, of the fitted and of the edited head, whichever is lower; a cosine ramp of
:data:`RAMP_HEAD_FRACTION` of the head), what is not the edited head (the neck, which the model
moves less, counts as clothes; the line between them is smooth, :func:`coverage`) shows the *clothes layer*: the photo, still, with the band of the
fitted chin and jaw under that line that a turn can uncover (:data:`HOLE_BAND_FRACTION` inside its
outline) inpainted away (:func:`faceeditor.edit.layers.inpaint_background`), so where the chin left,
neck and collar continue; the moved head is drawn over it with its feathered coverage as alpha.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.edit import blendmap
from faceeditor.edit.geometry import neck_weights
from faceeditor.edit.grid import Window, upsample
from faceeditor.edit.layers import inpaint_background, person_alpha_at
from faceeditor.edit.tiles import grid_box
from faceeditor.morphable.model import FaceModel

JAW_POINTS = (4, 12, 8)  # iBUG-68, 0-based: the jaw on either side of the chin, and the chin
RAMP_HEAD_FRACTION = 0.05  # the jaw line's ramp, a fraction of the head size
HEAD_RAMP = (0.85, 0.99)  # a pixel's head-rotation weight: at most the first it is neck (clothes), from the second head
HOLE_BAND_FRACTION = 0.12  # the chin inpainted in the clothes layer: this far (of the head) inside its outline
EDGE_SIGMA_PX = 0.6  # the head's edge over the clothes is feathered by this (output pixels): no staircase
SIDE_POINTS = (3, 13, 8)  # iBUG-68, 0-based: higher on the jaw; between this line and the jaw line, colour decides
COLOUR_BINS = 16  # per RGB channel, for the hair and clothes colour histograms
CLOTHES_GAP_FRACTION = 0.08  # clothes samples: this far (of the head) below the jaw line and off the head
CLOTHES_ODDS = (0.6, 0.85)  # a side pixel is clothes by a ramp over this probability of clothes
KEPT_SIZES = 4  # output sizes whose clothes layers are kept (as the compositor keeps its views)


def head_weights(model: FaceModel) -> torch.Tensor:
    """(F,3) the head-rotation weight (:func:`~faceeditor.edit.geometry.neck_weights`: 1 on the head,
    0 at the bottom of the neck) of each corner of ``model.faces``."""
    return neck_weights(model)[0, :, 0][model.faces]


def coverage(fragments: tuple[torch.Tensor, ...], heads: torch.Tensor, win: Window) -> np.ndarray:
    """(H,W) float32 grid in [0,1]: how much the pixels of ``fragments`` (flat pixel, triangle into
    ``model.faces``, barycentrics) are head rather than neck: the corners' weights (``heads``:
    :func:`head_weights`) interpolated and ramped over :data:`HEAD_RAMP`. Per pixel, so the line
    between head and neck is smooth, not the zigzag of whole triangles."""
    pix, faces, bary = fragments[0], fragments[1], fragments[2]
    w = (heads[faces] * bary.to(heads.dtype)).sum(1)
    t = ((w - HEAD_RAMP[0]) / (HEAD_RAMP[1] - HEAD_RAMP[0])).clamp(0.0, 1.0)
    out = torch.zeros(win.grid_h * win.grid_w, dtype=torch.float32)
    out[pix] = (t * t * (3.0 - 2.0 * t)).float()
    return out.view(win.grid_h, win.grid_w).numpy()


def jaw_points(model: FaceModel, verts: torch.Tensor, win: Window, camera: Camera,
               points: tuple[int, int, int] = JAW_POINTS) -> np.ndarray:
    """(3,2) grid positions of ``verts``' (1,V,3) two jaw points and chin (``points``, iBUG 0-based)."""
    pts = verts[:, model.landmarks68[list(points)]]
    return win.screen(pts, camera)[0, :, :2].detach().cpu().numpy().astype(np.float64)


def below_jaw(heads: list[np.ndarray], shape: tuple[int, int], head_px: float) -> np.ndarray:
    """(H,W) float32 in [0,1]: 1 below every head's jaw line (through its jaw points, oriented
    towards its chin), 0 above, a cosine ramp of :data:`RAMP_HEAD_FRACTION` x ``head_px`` (grid
    pixels) centred on the lowest line."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    depth = np.full(shape, np.inf, np.float32)
    for a, b, chin in heads:
        n = np.array([-(b - a)[1], (b - a)[0]])
        n = n / max(float(np.linalg.norm(n)), 1e-6)
        if np.dot(chin - a, n) < 0:
            n = -n
        depth = np.minimum(depth, (xs - a[0]) * n[0] + (ys - a[1]) * n[1])
    t = np.clip(depth / max(RAMP_HEAD_FRACTION * head_px, 1.0) + 0.5, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def blend(tile: np.ndarray, clothes: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``tile`` (h,w,3 uint8) with the clothes layer's pixels drawn by ``weight`` (h,w float), in
    place, only where the weight is not 0."""
    np.copyto(tile, clothes, where=(weight >= 1.0 - 1.0 / 512.0)[..., None])  # most: all clothes
    m = (weight > 1.0 / 512.0) & (weight < 1.0 - 1.0 / 512.0)
    if m.any():
        w = weight[m][:, None]
        tile[m] = (tile[m] * (1.0 - w) + clothes[m] * w + 0.5).astype(np.uint8)
    return tile


def clothes_weight(model: FaceModel, heads: torch.Tensor, fragments: tuple[torch.Tensor, ...],
                   verts: tuple[torch.Tensor, torch.Tensor], win: Window, camera: Camera, head_px: float,
                   moving: np.ndarray, chin: np.ndarray, clothes_odds: np.ndarray | None = None) -> np.ndarray:
    """(H,W) float32 grid: how much each pixel shows the clothes layer: below the jaw lines of the
    fitted and the edited head (``verts``), and beside the jaw, below a line higher on it
    (:data:`SIDE_POINTS`), where the photo's colour there is the clothes' rather than the hair's
    (``clothes_odds``, :func:`clothes_probability`: a collar rising beside the jaw stays, hair
    falling beside it moves with the head); off the edited head's own (not neck) pixels
    (``fragments``), where the warp moves anything (``moving``, grown by a pixel; elsewhere the photo
    is there already) or the layer inpainted the fitted chin (``chin``: a still pixel there would
    show the old chin, and the edge of the moving region, a ragged line, would cut the inpainted band)."""
    k = 0.5 * (win.kx + win.ky)
    shape = (win.grid_h, win.grid_w)
    below = below_jaw([jaw_points(model, v, win, camera) for v in verts], shape, head_px * k)
    if clothes_odds is not None:
        side = below_jaw([jaw_points(model, v, win, camera, SIDE_POINTS) for v in verts], shape, head_px * k)
        lo, hi = CLOTHES_ODDS
        below = np.maximum(below, side * np.clip((clothes_odds - lo) / (hi - lo), 0.0, 1.0))
    off_head = blendmap.feather(1.0 - coverage(fragments, heads, win), EDGE_SIGMA_PX * k)
    near = cv2.dilate((moving | chin).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return below * off_head * near


def clothes_probability(small: np.ndarray, hair: np.ndarray, clothes: np.ndarray) -> np.ndarray | None:
    """(H,W) float32: how much more each pixel of ``small`` (the photo on the work grid, uint8) has
    the colour of the ``clothes`` samples than of the ``hair`` samples (masks), from smoothed RGB
    histograms (:data:`COLOUR_BINS` per channel), ``p_clothes / (p_clothes + p_hair)``; None when
    either has fewer than 20 samples."""
    if hair.sum() < 20 or clothes.sum() < 20:
        return None
    q = (small.astype(np.int32) * COLOUR_BINS) // 256
    code = (q[..., 0] * COLOUR_BINS + q[..., 1]) * COLOUR_BINS + q[..., 2]
    n = COLOUR_BINS ** 3
    p_hair = np.bincount(code[hair], minlength=n).astype(np.float32) + 0.5
    p_clothes = np.bincount(code[clothes], minlength=n).astype(np.float32) + 0.5
    p_hair /= p_hair.sum()
    p_clothes /= p_clothes.sum()
    return (p_clothes / (p_clothes + p_hair))[code].astype(np.float32)


def side_odds(model: FaceModel, photo: np.ndarray, fitted: tuple[torch.Tensor, ...], verts: torch.Tensor,
              win: Window, camera: Camera, head_px: float) -> np.ndarray | None:
    """(H,W) grid: :func:`clothes_probability` with hair sampled where the fitted head is scalp
    (what covers it in the photo: hair, a hat, a bald crown) and clothes below its jaw line, off
    the fitted head and neck, by more than :data:`CLOTHES_GAP_FRACTION` of the head; 0 on the
    fitted head."""
    k = 0.5 * (win.kx + win.ky)
    shape = (win.grid_h, win.grid_w)
    pix, faces = fitted[0], fitted[1]
    scalp = torch.zeros(shape[0] * shape[1], dtype=torch.bool)
    scalp[pix] = model.face_region[faces] == model.region_names.index("M_BackHead")
    on_mesh = np.zeros(shape[0] * shape[1], bool)
    on_mesh[pix.numpy()] = True
    gap = CLOTHES_GAP_FRACTION * head_px * k
    line = jaw_points(model, verts, win, camera)
    shifted = line + np.array([0.0, gap])  # the jaw line moved down by the gap (image rows)
    clothes = (below_jaw([shifted], shape, head_px * k) > 0.99) & ~on_mesh.reshape(shape)
    rows, cols = win.slices
    small = cv2.resize(photo[rows, cols], (win.grid_w, win.grid_h), interpolation=cv2.INTER_AREA)
    odds = clothes_probability(small, scalp.view(shape).numpy(), clothes)
    if odds is None:
        return None
    # never on the fitted head (the clothes layer shows the photo still: there, the old jaw), and
    # softened over a grid cell (not per-cell blocks)
    return blendmap.feather(np.where(on_mesh.reshape(shape), 0.0, odds), 1.0)


def chin_hole(model: FaceModel, heads: torch.Tensor, fragments: tuple[torch.Tensor, ...], verts: torch.Tensor,
              win: Window, camera: Camera, head_px: float) -> np.ndarray:
    """(H,W) bool grid: the fitted head's own pixels below its jaw line (what the clothes layer inpaints)."""
    k = 0.5 * (win.kx + win.ky)
    below = below_jaw([jaw_points(model, verts, win, camera)], (win.grid_h, win.grid_w), head_px * k) > 0.5
    head = coverage(fragments, heads, win) > 0.5
    inside = cv2.distanceTransform(head.astype(np.uint8), cv2.DIST_L2, 3)
    return below & head & (inside <= HOLE_BAND_FRACTION * head_px * k)  # what a turn can uncover


def clothes_layer(photo: np.ndarray, chin: np.ndarray, win: Window) -> np.ndarray:
    """The clothes layer of ``photo`` (output size): the photo with the ``chin`` grid mask inpainted away."""
    size = (photo.shape[1], photo.shape[0])
    return inpaint_background(photo, person_alpha_at(np.zeros((1, 1), np.float32), chin, win, size), win)


@dataclass
class Drawn:
    """One render's clothes: the layer and how much each grid pixel shows it."""

    layer: np.ndarray  # (H,W,3) uint8 at the output size
    weight: np.ndarray  # (grid_h, grid_w) float32 (:func:`clothes_weight`)
    win: Window

    def blend(self, tile: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """Output tile [x0,x0+w) x [y0,y0+h) with the clothes drawn (:func:`blend`)."""
        gx0, gy0, gx1, gy1 = grid_box(self.win, x0, y0, w, h)
        if not self.weight[gy0:gy1, gx0:gx1].any():
            return tile
        return blend(tile, self.layer[y0:y0 + h, x0:x0 + w], upsample(self.win, self.weight, x0, y0, w, h))


@dataclass
class JawClothes:
    """A compositor's clothes layer: the head triangles, and the layers of the last :data:`KEPT_SIZES`
    output sizes drawn."""

    model: FaceModel
    heads: torch.Tensor = field(init=False)
    _layers: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=dict)  # layer, chin, side odds
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.heads = head_weights(self.model)

    def prepare(self, photo: np.ndarray, win: Window, camera: Camera, head_px: float,
                fitted: tuple[torch.Tensor, ...], verts: tuple[torch.Tensor, torch.Tensor],
                edited: tuple[torch.Tensor, ...], moving: np.ndarray) -> Drawn:
        """The clothes of one render: ``photo`` at the output size, the fitted head's grid fragments,
        the (fitted, edited) vertices, the edited head's fragments and where the warp moves pixels."""
        size = (photo.shape[1], photo.shape[0])
        with self._lock:
            if size not in self._layers:
                chin = chin_hole(self.model, self.heads, fitted, verts[0], win, camera, head_px)
                odds = side_odds(self.model, photo, fitted, verts[0], win, camera, head_px)
                if len(self._layers) >= KEPT_SIZES:  # the preview's and the full size stay (the editor alternates)
                    self._layers.pop(next(iter(self._layers)))
                self._layers[size] = (clothes_layer(photo, chin, win), chin, odds)
            layer, chin, odds = self._layers[size]
        weight = clothes_weight(self.model, self.heads, edited, verts, win, camera, head_px, moving, chin, odds)
        return Drawn(layer, weight, win)
