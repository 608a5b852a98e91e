"""The 3D view's materials: ivory teeth and darker gums occluded toward the back of the mouth,
shaded off-white sclera, teeth hidden behind closed lips; the shaders compiled ahead of the head."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")


@pytest.fixture(scope="module")
def engine():
    from faceeditor.app.engine import Engine
    from faceeditor.app.main import create_application

    create_application()  # the views are widgets

    return Engine(threads=1)


def _state(engine, jaw: float):
    from faceeditor.fit.synthetic import random_face_state

    m = engine.model
    st = random_face_state(m, 2, (400, 400))
    st.rotation = np.eye(3, dtype=np.float32)
    st.expression = np.zeros_like(st.expression)
    st.expression[m.expression_index("jawOpen")] = jaw
    return st


def _view(engine, head, texture, yaw: float = 0.0, zoom: float = 1.0, drop: float = 0.0):
    """An offscreen 3D view of ``head``, no gizmo, orbited by ``yaw`` and zoomed toward the mouth."""
    from faceeditor.app.viewport import ImageViewport

    vp = ImageViewport()
    vp.resize(300, 300)
    if vp.render_frame() is None:
        pytest.skip(vp.error)
    vp.show_gizmo = False
    vp.set_mesh(head, 1)
    vp.set_texture(texture)
    vp.cam.yaw = yaw
    vp.cam.distance /= zoom
    vp.cam.pan = np.array([0.0, -drop, 0.0])
    return vp


def _frame(vp) -> np.ndarray:
    from faceeditor.app.driver import qimage_to_array

    return qimage_to_array(vp.render_frame()).astype(np.int32)


def test_mouth_and_eye_occlusion(engine):
    from faceeditor.app.materials import GUMS, SCLERA, TEETH

    _, _, mats = engine._corner_tables()
    mat, ao = mats[:, 0], mats[:, 1]
    assert set(np.unique(mat)) >= {0.0, GUMS, TEETH, SCLERA}
    teeth = ao[mat == TEETH]
    assert teeth.max() > 0.95 and teeth.min() < 0.45, "front teeth lit, molars in the mouth's shadow"
    assert 0.55 < ao[mat == SCLERA].min() < 0.9 and ao[mat == 0.0].min() == 1.0


def test_teeth_hidden_behind_closed_lips(engine):
    """With the mouth closed, removing the teeth changes no pixel (beyond the shadow between the
    lips), from the front or the side."""
    from faceeditor.app.materials import TEETH
    from faceeditor.edit.params import EditParams

    head = engine.head_mesh(_state(engine, 0.0), EditParams())
    assert head.mouth_open < 0.2
    without = _without(head, TEETH)
    tex = engine.head_texture(_state(engine, 0.0))
    for yaw in (0.0, 35.0, -60.0):
        a = _frame(_view(engine, head, tex, yaw, zoom=2.5, drop=4.0))
        b = _frame(_view(engine, without, tex, yaw, zoom=2.5, drop=4.0))
        changed = (np.abs(a - b).sum(-1) > 40).mean()
        assert changed < 2e-4, f"teeth show through closed lips at yaw {yaw}: {changed:.2%} of the view"


def _without(head, material: float):
    """``head`` with the triangles of ``material`` collapsed deep inside the head."""
    import dataclasses

    pos = head.buffers.positions.copy()
    inside = head.buffers.colors[:, 0] == material
    pos[inside] = pos[inside].mean(0) - np.array([0.0, 0.0, 3.0], np.float32)
    return dataclasses.replace(head, buffers=dataclasses.replace(head.buffers, positions=pos))


def test_materials_screenshot(engine, artifacts_dir):
    """Open mouth: the teeth seen are ivory, brighter than the gums; saves gui_3d_materials.png."""
    import cv2

    from faceeditor.app.materials import GUMS, TEETH
    from faceeditor.edit.params import EditParams

    shots, seen = [], {}
    for jaw, yaw, zoom, drop in ((0.0, 0.0, 1.0, 0.0), (0.6, 0.0, 3.0, 4.5), (0.6, 30.0, 2.2, 4.0),
                                 (0.0, 20.0, 4.0, -3.0)):
        st = _state(engine, jaw)
        head, tex = engine.head_mesh(st, EditParams()), engine.head_texture(st)
        img = _frame(_view(engine, head, tex, yaw, zoom, drop))
        shots.append(img)
        if jaw and yaw:
            for name, material in (("teeth", TEETH), ("gums", GUMS)):
                other = _frame(_view(engine, _without(head, material), tex, yaw, zoom, drop))
                mask = np.abs(img - other).sum(-1) > 30
                seen[name] = img[mask].mean(0) if mask.sum() > 20 else None
    out = artifacts_dir / "gui_3d_materials.png"
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(shots, 1).astype(np.uint8), cv2.COLOR_RGB2BGR))
    assert seen["teeth"] is not None and seen["gums"] is not None, "the open mouth shows teeth and gums"
    r, g, b = seen["teeth"]
    assert r >= g >= b > 0.6 * r, f"teeth not ivory: {(r, g, b)}"
    gr, gg, _ = seen["gums"]
    assert gr > 1.3 * gg and seen["teeth"].sum() > seen["gums"].sum(), f"gums {seen['gums']}, teeth {(r, g, b)}"


def test_warm_up_leaves_the_scene_as_it_was(engine):
    """The shader warm-up (its effect on stalls is measured by ``bench gui``'s ``ui_stall_ms_max``)
    draws off screen and restores the scene: no head, no texture; a head set afterwards draws, and
    a warm-up once a head is shown does nothing."""
    from faceeditor.app.viewport import ImageViewport
    from faceeditor.edit.params import EditParams

    st = _state(engine, 0.3)
    head, tex = engine.head_mesh(st, EditParams()), engine.head_texture(st)
    vp = ImageViewport()
    vp.resize(300, 300)
    empty = vp.render_frame()
    if empty is None:
        pytest.skip(vp.error)
    vp.scene.warm_up()
    assert not vp.scene.has_mesh and vp.scene.mesh.texture is None
    assert vp.render_frame() == empty  # nothing of the warm-up is left on screen (QImage equality)
    vp.set_texture(tex)
    vp.set_mesh(head, 1)
    shown = vp.render_frame()
    assert shown != empty  # the head is drawn
    vp.scene.warm_up()  # a head is shown: nothing happens
    assert vp.scene.has_mesh and vp.render_frame() == shown
