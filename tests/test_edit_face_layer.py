"""The face drawn over the neck (maps.face_layer, tiles.moved_tile): where the face's flow and the
flow behind it part at an occlusion edge, the output takes each layer's own warp on its side of a
smooth, anti-aliased outline, never the compressed photo a single bilinear flow samples there."""

from __future__ import annotations

import numpy as np

from faceeditor.edit.grid import Window
from faceeditor.edit.maps import face_layer
from faceeditor.edit.tiles import moved_tile


def _scene():
    """A 240x240 output on a 40x40 grid (6 px cells); the face is the left half-disc, its flow a
    shift of +12 px in x, the neck behind it still; the photo a horizontal ramp (value = x)."""
    win = Window(0, 0, 240, 240, 40, 40)
    yy, xx = np.mgrid[0:40, 0:40]
    face = (xx - 20) ** 2 + (yy - 20) ** 2 < 14 ** 2
    flow = np.zeros((40, 40, 2), np.float32)
    flow[face, 0] = 12.0
    T = np.ones((40, 40), np.float32)
    ramp = np.tile(np.arange(240, dtype=np.float32) * (250.0 / 240.0), (240, 1))
    photo = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    return win, face, flow, T, photo


def test_the_face_layer_keeps_each_side_its_own_flow() -> None:
    _, face, flow, T, _ = _scene()
    layer = face_layer(flow, flow, face, T)
    assert (layer.sd[face] > -0.6).all() and (layer.sd[~face] < 0.6).all()
    assert np.allclose(layer.flow[face], flow[face])  # the face keeps its own flow ...
    assert np.allclose(layer.flow[~face][:, 0], 12.0, atol=1e-3)  # ... continued past its outline
    assert np.allclose(layer.back[~face], 0.0) and np.allclose(layer.back[face], 0.0, atol=1e-3)


def test_the_cut_samples_only_the_two_layers() -> None:
    win, face, flow, T, photo = _scene()
    layer = face_layer(flow, flow, face, T)
    single = moved_tile(photo, win, flow, None, (0, 0, 240, 240))
    cut = moved_tile(photo, win, flow, None, (0, 0, 240, 240), layer)
    xs = np.arange(240, dtype=np.float32) * (250.0 / 240.0)
    own = np.minimum(xs + 12.5, 255.0)[None, :]  # the face's layer value, the neck's is xs itself
    # every output pixel shows one of the two layers (or their 1-px anti-aliased mix): its value
    # lies between them (1 level of rounding), while the single bilinear flow samples values in
    # between over whole grid cells along the outline
    lo, hi = np.minimum(xs[None, :], own) - 1.5, np.maximum(xs[None, :], own) + 1.5
    v = cut[..., 0].astype(np.float32)
    assert ((v >= lo) & (v <= hi)).all()

    def mixed(img: np.ndarray) -> int:
        return int(((img[..., 0] > xs[None, :] + 2.5) & (img[..., 0] < own - 2.5)).sum())

    assert mixed(cut) < 0.35 * mixed(single), (mixed(cut), mixed(single))  # measured: 254 vs 1988


def test_the_cut_can_put_the_skin_under_the_chin_behind_the_face() -> None:
    """``flow_map(cut_back=...)``: the face layer's outline runs where the triangles behind it begin
    (the skin under the chin, whose flow parts from the jaw's at the fold), while the edited face
    (``face_px``: what the behind-face layer keeps) still counts that skin as face."""
    import torch

    from faceeditor.edit.flow import Sources
    from faceeditor.edit.maps import flow_map

    win = Window(0, 0, 240, 120, 40, 20)  # 6 px cells: the face layer is cut
    yy, xx = np.mgrid[0:20, 0:40]
    head = (xx >= 5) & (xx < 35) & (yy >= 3) & (yy < 17)
    tri = np.where(xx < 18, 0, np.where(xx < 26, 1, 2))  # face, under the chin, scalp
    pix = torch.from_numpy(np.flatnonzero(head.ravel()))
    face = torch.from_numpy(tri.ravel()[pix.numpy()])
    flow = torch.zeros(pix.numel(), 2)
    flow[face == 0, 0] = 12.0  # the face moves, what lies under the chin and the scalp do not
    ones = torch.ones(pix.numel())
    src = Sources(pix, face, torch.zeros(pix.numel(), 2), flow, ones, torch.zeros(pix.numel(), 3),
                  torch.zeros(pix.numel(), 3), torch.zeros(pix.numel(), 3))
    scalp = torch.tensor([False, False, True])
    args = (src, head, head, win, 200.0, (False, False, False, False), scalp, None)
    _, _, by_scalp, face_px = flow_map(*args)
    _, _, by_chin, face_px_chin = flow_map(*args, torch.tensor([False, True, True]))
    np.testing.assert_array_equal(face_px, face_px_chin)
    assert (face_px[6:14, 19:24] > 0.9).all()  # the skin under the chin is still face

    def crossing(sd: np.ndarray) -> float:  # the last sign change of the signed distance along row 10
        return float(np.flatnonzero(np.diff(np.sign(sd[10])) != 0)[-1])

    assert abs(crossing(by_scalp.sd) - 25.5) <= 1.0  # the outline at the scalp (x = 26)
    assert abs(crossing(by_chin.sd) - 17.5) <= 1.0  # the outline at the fold (x = 18)
