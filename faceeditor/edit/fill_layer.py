"""The fill layer of one edit, drawn by a :class:`~faceeditor.edit.fill.FillProvider` and matched to
the photo around it.

The provider renders what the photo cannot supply (the far cheek from the mirrored texture, the
mouth interior, an eyelid). Its colour and brightness never match the warped photo exactly (a
texture unprojected under an estimated light, per-surface gains), and a pasted-on patch shows
its outline. We clone it seamlessly: the provider also draws a thin ring *around* the pixels that
need it, where the (warped, relit) photo is still used; the difference photo - fill on that ring
is interpolated smoothly into the region (a membrane) and added to the fill. That is Poisson
image editing's guided interpolation (Pérez et al. 2003, eq. 10: the fill keeps its gradients and
meets the photo at the boundary) with the correction membrane interpolated by pull-push
(:func:`faceeditor.edit.blendmap.push_pull`) instead of solving Laplace's equation, as in
mean-value cloning (Farbman et al. 2009): ~1 ms on the work grid.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.core.state import FaceState
from faceeditor.edit import blendmap, grain, skin_tone, tiles
from faceeditor.edit.fill import FillProvider, FillRequest
from faceeditor.edit.grid import Window
from faceeditor.edit.maps import GridMaps

MAX_FILL_PX = 768  # longest side of the fill layer's grid
FILL_OVERSAMPLE = 2.0  # the fill layer is sampled at most this much finer than the work grid
PREVIEW_MAX_SIDE = 1280  # outputs up to this size (GUI previews) draw the fill on the work grid
RING_PX = 3  # fill-grid pixels around the needed region where fill and photo are compared
RING_NEED = 1e-3  # the need passed to the provider on the ring (drawn there, never blended)
MAX_SHIFT = 0.4  # largest colour correction (sRGB, 0..1) the membrane may add
RING_FACING = (0.3, 0.5)  # source facing (n . view) over which a ring pixel comes to count fully
RING_MIN_WEIGHT = 0.4  # ring pixels less skin-like (times facing) than this do not pull the membrane
LUMA_CAP = (1.05, 1.25)  # the fill's luma is compressed from the first of these times the skin's beside
#                          it towards the second (a revealed cheek is no brighter than the skin around it)
MIN_ANCHORS = 12  # fewer anchor pixels: the fill's luma is not capped
SILHOUETTE_SIGMA = 0.6  # grid pixels: the fill's outline against what lies behind the head is blurred by this


def draw(provider: FillProvider, photo: np.ndarray, camera: Camera, state: FaceState, grid: GridMaps,
         face_ids: torch.Tensor, tri: torch.Tensor, skin: torch.Tensor,
         grains: dict | None = None) -> tuple[Window, np.ndarray, grain.Grain | None]:
    """The layer over the box of pixels needing fill, at output resolution (capped): its window,
    a (grid_h, grid_w, 4) map of RGB (its skin matched to the photo, module docstring) and blend
    weight, and the photo's skin grain for it when it is upsampled (:mod:`.grain`; else None).
    ``photo``: the output-size photo; ``face_ids``/``tri``: the compositor's rendered
    triangles; ``skin`` (n_faces,) bool over ``model.faces``: the surfaces matched (the mouth
    cavity, teeth and eyes keep their own colours: matched to the lips they would wash out);
    ``grains``: the caller's cache of grain tiles for this ``photo`` (:func:`skin_grain`)."""
    win = grid.window
    if max(camera.width, camera.height) <= PREVIEW_MAX_SIDE:
        # preview-sized output: the fill shares the work grid and its rasterization
        lw, need, ring = win, grid.need, RING_PX
        ask = with_ring(need, ring)
        req = FillRequest(win, camera, grid.head.verts, grid.head.normals, ask, grid.sh, state, grid.edit,
                          fragments=grid.head.fragments)
    else:
        nw = win.sub(*tiles.bbox(grid.filled, pad=2 + RING_PX))
        k = min(1.0, FILL_OVERSAMPLE * 0.5 * (win.kx + win.ky), MAX_FILL_PX / max(nw.w, nw.h))
        lw = Window(nw.x0, nw.y0, nw.w, nw.h, max(1, round(nw.w * k)), max(1, round(nw.h * k)))
        need = tiles.resample(win, grid.need, lw)
        ring = max(1, round(RING_PX * lw.grid_w / max(1.0, nw.w * win.kx)))
        ask = with_ring(need, ring)
        req = FillRequest(lw, camera, grid.head.verts, grid.head.normals, ask, grid.sh, state, grid.edit,
                          faces=fill_faces(grid, face_ids, tri))
    layer = provider.fill(req)
    on_skin = skin_map(grid, skin)
    facing = np.ones_like(grid.need) if grid.src_facing is None else grid.src_facing
    if lw != win:
        on_skin = tiles.resample(win, on_skin.astype(np.float32), lw) > 0.5
        facing = tiles.resample(win, facing, lw)
    rgba = np.empty((lw.grid_h, lw.grid_w, 4), np.float32)
    skin_need = need * on_skin
    if (skin_need > 1e-3).any():  # the membrane changes only these pixels (the mouth and eyes keep the fill's)
        reference = warped_photo(photo, grid, lw)
        tone = skin_tone.measure(reference[on_skin & (need <= 1e-3)])
        weight = ring_weight(reference, tone, facing)
        anchors = anchor_weight(layer.confidence * on_skin, skin_need, ring, weight)
        rgb = match_chroma(cap_luma(layer.rgb, skin_need > 1e-3, reference, anchors), skin_need > 1e-3, tone)
        rgba[..., :3] = membrane(rgb, skin_need, reference, anchors)
    else:
        rgba[..., :3] = layer.rgb
    rgba[..., :3], rgba[..., 3] = soft_silhouette(rgba[..., :3], layer.confidence, need)  # the blend weight
    return lw, rgba, skin_grain(photo, camera, state, lw, on_skin, grains)


def soft_silhouette(rgb: np.ndarray, confidence: np.ndarray, need: np.ndarray,
                    sigma: float = SILHOUETTE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """The fill's blend weight ``confidence * need`` (H,W) with the edge of what the provider drew
    (its silhouette against what lies behind the head) anti-aliased: the coverage blurred by ``sigma``
    grid pixels there, and ``rgb`` (H,W,3) continued (pull-push) onto the grid pixels just outside it
    that now take a little fill. A revealed cheek's outline was a staircase of fill-grid cells, 3
    output pixels a step on a 2048 px portrait. Returns (rgb, weight)."""
    hard = (confidence * need).astype(np.float32)
    drawn = confidence > 0.5
    if not (hard > 0).any() or drawn.all():
        return rgb, hard
    soft = cv2.GaussianBlur(confidence.astype(np.float32), (0, 0), sigma)
    edge = (soft > 1e-3) & (soft < 1.0 - 1e-3)
    weight = np.where(edge, soft * cv2.dilate(need.astype(np.float32), np.ones((3, 3), np.uint8)), hard)
    # the colour outside, and on the drawn rim itself (the grid pixels of the mesh's silhouette, shaded on
    # grazing normals by an extrapolated light: saturated dots along the outline), from the drawn interior
    core = cv2.erode(drawn.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    redo = (~core) & (weight > 0)
    if redo.any() and core.any():
        rgb = np.where(redo[..., None], blendmap.push_pull(np.ascontiguousarray(rgb, np.float32),
                                                           core.astype(np.float32)), rgb)
    return rgb, weight.astype(np.float32)


def skin_grain(photo: np.ndarray, camera: Camera, state: FaceState, lw: Window, on_skin: np.ndarray,
               cache: dict | None = None) -> grain.Grain | None:
    """The photo's grain (:func:`grain.measure`) for fill layer ``lw`` over its skin ``on_skin``.
    The tile depends only on the photo at this size, the head size and the upsampling (to 0.1):
    ``cache`` (the caller's, for this photo) keeps it across renders (a slider drag: ~2 ms each at
    preview size, ~18 ms at 4k)."""
    marks = state.detector_landmarks
    if marks is None or not on_skin.any():
        return None
    k = camera.width / float(state.image_size[0])
    head_px = (state.face_box[2] - state.face_box[0]) * k
    texel_px = head_px / (state.texture.shape[0] / 2) if state.texture is not None else 0.0
    upsample = round(max(lw.w / max(lw.grid_w, 1), texel_px), 1)
    key = (photo.shape[:2], upsample, round(head_px))
    cache = {} if cache is None else cache
    if key not in cache:  # (two threads may both measure it: the same tile)
        cheeks = np.asarray(marks, np.float64)[list(grain.CHEEKS), :2] * k
        cache[key] = grain.measure(photo, cheeks, head_px, upsample)
    patch = cache[key]
    return None if patch is None else grain.Grain(patch, on_skin.astype(np.float32))


def skin_map(grid: GridMaps, skin: torch.Tensor) -> np.ndarray:
    """(grid_h, grid_w) bool on the work grid: the edited head shows a ``skin`` triangle there."""
    win = grid.window
    pix, face, _ = grid.head.fragments
    out = torch.zeros(win.grid_h * win.grid_w, dtype=torch.bool)
    out[pix] = skin[face]
    return out.view(win.grid_h, win.grid_w).numpy()


def ring_weight(reference: np.ndarray, tone: skin_tone.SkinTone | None, facing: np.ndarray) -> np.ndarray:
    """(H,W) float32 in [0,1]: how much each pixel of the (warped) photo ``reference`` may pull the
    membrane: how skin-like it is (hair over a temple, or what the warp brought beside a turned
    cheek, painted the fill pale or grey) times how squarely the photo saw it (``facing``, its
    source's n . view over :data:`RING_FACING`: the photo's own contour mixes skin with the
    background, a rim light or a halo, and turned a large photo's cheek fill grey)."""
    seen = np.clip((facing - RING_FACING[0]) / (RING_FACING[1] - RING_FACING[0]), 0.0, 1.0).astype(np.float32)
    return seen if tone is None else skin_tone.likeness(reference, tone) * seen


def with_ring(need: np.ndarray, ring_px: int) -> np.ndarray:
    """``need`` with :data:`RING_NEED` on a ring of ``ring_px`` pixels around where it is > 0."""
    inside = need > 1e-3
    k = 2 * ring_px + 1
    grown = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
    return np.where(inside, need, np.where(grown, RING_NEED, 0.0)).astype(np.float32)


def anchor_weight(confidence: np.ndarray, need: np.ndarray, ring_px: int = RING_PX,
                  ring_weight: np.ndarray | None = None) -> np.ndarray:
    """(H,W) float32: how much each pixel of the ring of ``ring_px`` pixels around the needed ones
    (drawn by the provider, ``confidence`` > 0.5, not needed) anchors the membrane: ``ring_weight``
    (H,W) in [0,1] where it reaches :data:`RING_MIN_WEIGHT` (else 1 on the ring), 0 elsewhere."""
    inside = need > 1e-3
    ring = (confidence > 0.5) & ~inside & (with_ring(need, ring_px) > 0)
    if ring_weight is None:
        return ring.astype(np.float32)
    return np.where(ring & (ring_weight >= RING_MIN_WEIGHT), ring_weight, 0.0).astype(np.float32)


def membrane(rgb: np.ndarray, need: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The fill ``rgb`` (H,W,3) plus the membrane interpolating ``reference - rgb`` from the anchors
    (``weight`` (H,W) > 0: :func:`anchor_weight`) into the needed pixels (module docstring)."""
    inside = need > 1e-3
    if not inside.any() or (weight > 0).sum() < 4:
        return rgb
    diff = np.where(weight[..., None] > 0, reference - rgb, 0.0).astype(np.float32)
    shift = blendmap.push_pull(diff, weight.astype(np.float32))
    out = rgb + np.clip(shift, -MAX_SHIFT, MAX_SHIFT) * inside[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def cap_luma(rgb: np.ndarray, fill_mask: np.ndarray, reference: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``rgb`` (H,W,3) where ``fill_mask``, its luma softly held below :data:`LUMA_CAP` times the
    luma of the photo's skin beside it: ``reference`` (H,W,3, the warped, relit photo) at the
    membrane's ``anchors`` (H,W weights: well-seen skin on the ring around the fill), interpolated
    into the fill by pull-push. The membrane matches the fill to them at its edge, but inside, the
    fill's shading on a surface the photo saw edge-on or not at all is the SH light extrapolated to
    normals it was not fitted on: a dark face's turned cheek was drawn pale grey, 0.5 luma beside
    skin of 0.36. The fill's own shading below the cap is kept (a cheek turned into shadow darkens).
    Fewer than :data:`MIN_ANCHORS` anchors: ``rgb`` unchanged."""
    if (anchors > 0).sum() < MIN_ANCHORS or not fill_mask.any():
        return rgb
    luma = (reference @ skin_tone.LUMA).astype(np.float32)
    beside = blendmap.push_pull(np.where(anchors > 0, luma, 0.0).astype(np.float32), anchors.astype(np.float32))
    px = rgb[fill_mask]
    y = px @ skin_tone.LUMA
    knee = LUMA_CAP[0] * beside[fill_mask]
    room = (LUMA_CAP[1] - LUMA_CAP[0]) * beside[fill_mask] + 1e-4
    y_new = np.where(y > knee, knee + room * np.tanh((y - knee) / room), y)
    out = rgb.copy()
    out[fill_mask] = px * (y_new / np.maximum(y, 1e-6))[:, None]
    return out


def match_chroma(rgb: np.ndarray, fill_mask: np.ndarray, tone: skin_tone.SkinTone | None) -> np.ndarray:
    """``rgb`` (H,W,3) where ``fill_mask`` recoloured to the skin colour of its own brightness
    (:mod:`faceeditor.edit.skin_tone`, ``tone`` measured on the photo's skin around the fill): a
    texture lit back by a white light keeps the hue of its lit texels and turns grey in the shadows
    it is drawn into. No tone (too few skin pixels): ``rgb`` unchanged."""
    if tone is None or not fill_mask.any():
        return rgb
    out = rgb.copy()
    out[fill_mask] = skin_tone.recolour(rgb[fill_mask], tone)
    return out


def warped_photo(photo: np.ndarray, grid: GridMaps, lw: Window) -> np.ndarray:
    """(grid_h, grid_w, 3) float32 in [0,1]: the moved and relit photo as the compositor draws it,
    sampled on fill window ``lw``'s grid (area-reduced first, so a coarse grid does not alias)."""
    win = grid.window
    rows, cols = lw.slices
    small = cv2.resize(photo[rows, cols], (lw.grid_w, lw.grid_h), interpolation=cv2.INTER_AREA)
    small = small.astype(np.float32) * (1.0 / 255.0)
    if grid.flow is not None and grid.moving.any():
        flow = grid.flow if lw == win else tiles.resample(win, grid.flow, lw)
        gx = np.arange(lw.grid_w, dtype=np.float32)[None, :] + flow[..., 0] * lw.kx
        gy = np.arange(lw.grid_h, dtype=np.float32)[:, None] + flow[..., 1] * lw.ky
        small = cv2.remap(small, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if grid.gain is not None:
        gain = grid.gain if lw == win else tiles.resample(win, grid.gain, lw)
        small = small * gain
    return np.clip(small, 0.0, 1.0)


def fill_faces(grid: GridMaps, face_ids: torch.Tensor, tri: torch.Tensor) -> torch.Tensor | None:
    """Triangles (into model.faces) the fill may need: camera-facing, centred in or next to the
    pixels needing it or their ring (a hint for providers that rasterize)."""
    win = grid.window
    s1, area1 = grid.head.screen, grid.head.area
    if s1 is None:
        return None
    k = 2 * (RING_PX + 2) + 1
    near = torch.as_tensor(cv2.dilate(grid.filled.astype(np.uint8), np.ones((k, k), np.uint8)) > 0)
    c = s1[0][tri].mean(1)  # (F',3) centroids on the grid
    cx, cy = c[:, 0].floor().long(), c[:, 1].floor().long()
    ok = (area1 > 0) & (cx >= 0) & (cx < win.grid_w) & (cy >= 0) & (cy < win.grid_h)
    ok[ok.clone()] = near[cy[ok], cx[ok]]
    return face_ids[ok]
