"""Which photo pixels a magnified edit may trust, and where unseen scalp takes its flow from."""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.core.camera import Camera
from faceeditor.edit.flow import Sources, sample_map, source_trust
from faceeditor.edit.grid import Window
from faceeditor.edit.maps import reroute_unseen


def test_trust_only_matters_when_the_edit_magnifies() -> None:
    ratio = torch.tensor([1.0, 1.0, 3.0, 3.0, 3.0, 1.5])
    facing = torch.tensor([0.1, 0.9, 0.1, 0.9, 0.9, 0.1])
    person = torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    t = source_trust(ratio, facing, person)
    # unmagnified: kept even at a grazing angle or on the background (the silhouette shows just that)
    assert t[0] == 1.0 and t[1] == 1.0
    # magnified: grazing or background sources are untrusted, a head-on person source is trusted
    assert t[2] == 0.0 and t[3] == 1.0 and t[4] == 0.0
    # half-way magnification of a grazing source: half trust
    assert abs(float(t[5]) - 0.5) < 1e-6
    assert torch.equal(source_trust(ratio, facing, None)[:4], torch.tensor([1.0, 1.0, 0.0, 1.0]))


def test_sample_map_reads_the_photo_position() -> None:
    cam = Camera(focal_px=100.0, width=40, height=20)
    values = torch.zeros(10, 20)
    values[:, 10:] = 1.0  # right half of the photo
    got = sample_map(values, torch.tensor([[5.0, 10.0], [35.0, 10.0], [20.0, 10.0]]), cam)
    assert got[0] == 0.0 and got[1] == 1.0 and abs(float(got[2]) - 0.5) < 1e-6


def test_unseen_scalp_takes_the_flow_of_seen_scalp_not_its_own() -> None:
    win = Window(0, 0, 8, 4, 8, 4)
    pix = torch.arange(32)
    face = torch.zeros(32, dtype=torch.long)
    face[:16] = 1  # rows 0-1: face (triangle 0 is scalp, triangle 1 face)
    conf = torch.ones(32)
    conf[24:28] = 0.0  # row 3, columns 0-3: scalp the photo does not show
    flow = torch.zeros(32, 2)
    flow[:16, 0] = 9.0  # the face moves a lot
    flow[16:, 0] = 2.0  # the seen scalp a little
    flow[24:28, 0] = 9.0  # the unseen scalp's own source lies under the face
    src = Sources(pix, face, torch.zeros(32, 2), flow, conf, torch.zeros(32, 3), torch.zeros(32, 3), torch.zeros(32, 3))
    scalp = torch.tensor([True, False])
    out = reroute_unseen(flow.view(4, 8, 2).numpy().copy(), src, scalp, win)
    assert np.allclose(out[3, :3, 0], 2.0, atol=0.3)  # continues the seen scalp, not the face
    assert np.allclose(out[0:2, :, 0], 9.0)  # the face is untouched
    assert np.allclose(out[3, 6:, 0], 2.0)


def test_source_facing_maps_how_squarely_the_photo_saw_each_source() -> None:
    """``maps.source_facing`` puts ``Sources.facing`` (n . view of the source point, computed by
    ``trace_sources``) on the grid: 1 head-on, 0 edge-on, 1 off the head; None without it."""
    from faceeditor.edit.maps import source_facing

    win = Window(0, 0, 4, 1, 4, 1)
    z3 = torch.zeros(3, 3)
    src = Sources(torch.arange(3), torch.zeros(3, dtype=torch.long), torch.zeros(3, 2), torch.zeros(3, 2),
                  torch.ones(3), z3, z3, z3, torch.tensor([1.0, 0.0, 1.0]))
    got = source_facing(src, win)
    np.testing.assert_allclose(got[0], [1.0, 0.0, 1.0, 1.0], atol=1e-6)  # head-on, edge-on, head-on; off the head
    assert source_facing(Sources(*[getattr(src, f) for f in ("pix", "face", "src_xy", "flow", "warp_conf",
                                                             "n_src", "n_dst", "bary")]), win) is None
