"""EditParams JSON and presets, command-line edit options, light targets and edited states."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from faceeditor.core.errors import FaceEditorError, ParamsFileError
from faceeditor.core.pose import euler_to_matrix, matrix_to_euler
from faceeditor.core.state import FaceState
from faceeditor.edit.args import add_edit_arguments, base_edit, edit_for_face, parse_expr, parse_preset
from faceeditor.edit.geometry import edited_state, offset_rotation, photo_light, target_sh
from faceeditor.edit.light import LightParams, fit_light, light_from_sh
from faceeditor.edit.params import EditParams
from faceeditor.edit.presets import MACROS, macro_weights
from faceeditor.render.sh import direction_from_angles, directional_sh


def _state(sh: np.ndarray | None = None) -> FaceState:
    R = euler_to_matrix(10.0, -5.0, 3.0)[0].numpy()
    if sh is None:
        sh = directional_sh(direction_from_angles(-30.0, 20.0), 0.6, 0.35).numpy()
    return FaceState(image_size=(640, 480), face_box=(200, 100, 400, 350), rotation=R,
                     translation=np.array([0.0, 0.0, -60.0], np.float32), focal_px=900.0,
                     identity=np.zeros(100, np.float32), expression=np.zeros(53, np.float32), sh=sh)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_edit_arguments(p)
    return p.parse_args(argv)


def test_json_round_trip(tmp_path) -> None:
    e = EditParams(12.5, -3.0, 1.0, {"mouthSmile_L": 0.7, "jawOpen": 0.2}, LightParams(40, 20, 0.9, 0.2, 5000))
    path = tmp_path / "edit.json"
    e.save(path)
    back = EditParams.load(path)
    assert back.to_dict() == e.to_dict()
    assert json.loads(path.read_text())["light"]["azimuth"] == 40
    assert EditParams.from_dict(EditParams().to_dict()).is_zero()


def test_renderer_names_old_and_new() -> None:
    """"photo-neural" (G_p's name before it became "neural") still reads; unknown names do not."""
    assert EditParams.from_dict({"renderer": "photo-neural"}).renderer == "neural"
    assert EditParams.from_dict({"renderer": "gar"}).renderer == "gar"
    with pytest.raises(ValueError, match="unknown renderer"):
        EditParams.from_dict({"renderer": "vgg"})


def test_bad_preset_file_is_a_user_error(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FaceEditorError):
        EditParams.load(bad)


@pytest.mark.parametrize("text", ['{"expression": [1, 2]}', "[1, 2, 3]", '"smile"', "null"])
def test_preset_of_the_wrong_shape_names_the_file(tmp_path, text: str) -> None:
    bad = tmp_path / "shape.json"
    bad.write_text(text)
    with pytest.raises(ParamsFileError, match="shape.json"):
        EditParams.load(bad)


def test_presets() -> None:
    w = macro_weights("smile", 0.5)
    assert w["mouthSmile_L"] == pytest.approx(0.5) and w["mouthSmile_R"] == pytest.approx(0.5)
    assert macro_weights("Mouth open", 2.0)["jawOpen"] == 1.0  # clamped strength
    e = EditParams(expression={"jawOpen": 0.3}).with_preset("blink", 1.0)
    assert e.expression == {"jawOpen": 0.3, "eyeBlink_L": 1.0, "eyeBlink_R": 1.0}
    with pytest.raises(KeyError):
        macro_weights("frown-ish", 1.0)
    assert set(MACROS) >= {"smile", "surprise", "anger", "sadness", "mouth_open", "blink"}


def test_zero_edit_detection() -> None:
    fitted = {"jawOpen": 0.25}
    assert EditParams().is_zero()
    assert EditParams(expression={"jawOpen": 0.25}).is_zero(fitted)
    assert not EditParams(expression={"jawOpen": 0.5}).is_zero(fitted)
    assert not EditParams(yaw=0.5).is_zero()
    assert not EditParams(light=LightParams()).is_zero()


def test_command_line_edit(tmp_path) -> None:
    preset = tmp_path / "p.json"
    EditParams(yaw=5.0, expression={"browInnerUp_L": 0.4}).save(preset)
    args = _parse(["--preset-file", str(preset), "--preset", "smile:0.6", "--expr", "jawOpen=0.3,eyeBlink_L=1",
                   "--pitch", "-5"])
    e = base_edit(args)
    assert (e.yaw, e.pitch, e.roll) == (5.0, -5.0, 0.0)
    assert e.expression["browInnerUp_L"] == 0.4 and e.expression["mouthSmile_L"] == pytest.approx(0.6)
    assert e.expression["jawOpen"] == 0.3 and e.expression["eyeBlink_L"] == 1.0
    assert edit_for_face(e, args, _state()).light is None
    assert parse_preset("surprise") == ("surprise", 1.0)
    assert parse_expr(["a=1", "b=0.5,c=0"]) == {"a": 1.0, "b": 0.5, "c": 0.0}
    for bad in (["--expr", "jawOpen"], ["--expr", "jawOpen=x"], ["--preset", "smile:much"], ["--preset", "nope"]):
        with pytest.raises(FaceEditorError):
            base_edit(_parse(bad))


def test_light_flags_are_relative_to_the_photo() -> None:
    state = _state()
    args = _parse(["--light-azimuth", "40", "--light-elevation", "20", "--light-intensity", "1.5"])
    e = edit_for_face(EditParams(), args, state)
    ref = photo_light(state)
    assert (e.light.azimuth, e.light.elevation) == (40.0, 20.0)
    assert e.light.intensity == pytest.approx(1.5 * ref.intensity)
    assert e.light.ambient == pytest.approx(ref.ambient)


def test_target_sh() -> None:
    state = _state()
    np.testing.assert_array_equal(target_sh(state, EditParams()), state.sh)
    # "as in photo" controls reproduce the fitted SH, even one the directional model cannot express
    odd = state.sh.copy()
    odd[4:] += 0.05
    odd[0, 0] *= 1.1
    state2 = _state(odd)
    np.testing.assert_allclose(target_sh(state2, EditParams(light=photo_light(state2))), odd, atol=1e-5)
    # an explicit SH is used as given
    sh = np.arange(27, dtype=np.float32).reshape(9, 3)
    np.testing.assert_array_equal(target_sh(state, EditParams(light=LightParams(sh=sh.tolist()))), sh)
    # a new direction moves the dominant light there
    new = target_sh(state, EditParams(light=LightParams(60.0, 10.0, 0.6, 0.35)))
    got = light_from_sh(new)
    assert got.azimuth == pytest.approx(60.0, abs=3.0) and got.elevation == pytest.approx(10.0, abs=3.0)


def test_edited_state_composes_rotation() -> None:
    state = _state()
    from faceeditor.morphable import default_model_path, load_face_model

    if not default_model_path().is_file():
        pytest.skip("face model missing")
    model = load_face_model("cpu")
    e = EditParams(yaw=15.0, expression={"jawOpen": 0.5})
    s2 = edited_state(state, e, model)
    rel = s2.rotation.astype(np.float64) @ state.rotation.astype(np.float64).T
    y, p, r = (float(v[0]) for v in matrix_to_euler(__import__("torch").as_tensor(rel)))
    assert (y, p, r) == pytest.approx((15.0, 0.0, 0.0), abs=1e-3)
    np.testing.assert_allclose(rel, offset_rotation(e).numpy(), atol=1e-5)
    assert s2.expression[model.expression_index("jawOpen")] == pytest.approx(0.5)
    np.testing.assert_array_equal(s2.translation, state.translation)
    assert state.expression.sum() == 0  # the input is untouched


def test_fit_light_recovers_a_directional_light() -> None:
    for L in (LightParams(30.0, 10.0, 0.7, 0.3), LightParams(-60.0, 40.0, 1.2, 0.0), LightParams(0.0, 0.0, 0.2, 0.8),
              LightParams(20.0, -15.0, 0.6, 0.4, 4000.0)):
        f = fit_light(L.to_sh())
        assert (f.azimuth, f.elevation) == pytest.approx((L.azimuth, L.elevation), abs=1.0)
        assert (f.intensity, f.ambient) == pytest.approx((L.intensity, L.ambient), abs=0.02)
        assert f.temperature == pytest.approx(L.temperature, rel=0.05)
    # second-order terms that a one-face SH fit produces do not move it much
    sh = LightParams(25.0, 20.0, 0.7, 0.3).to_sh()
    sh[4:] += np.array([0.05, -0.04, 0.06, 0.03, -0.05], np.float32)[:, None]
    f = fit_light(sh)
    assert abs(f.azimuth - 25.0) < 10.0 and abs(f.elevation - 20.0) < 10.0


def test_a_white_light_reads_neutral_whatever_its_constant_term():
    """A fit on one face may leave the SH's constant term negative: its sign must not colour the light
    (it turned white lights 3800 K orange, and relit faces blue or orange)."""
    import numpy as np

    from faceeditor.edit.light import LightParams, fit_light, light_from_sh

    sh = np.zeros((9, 3), np.float32)
    sh[0], sh[2], sh[3] = -0.21, 2.86, -0.59  # white (equal channels), negative DC: measured on an LFW photo
    assert fit_light(sh).temperature == 6500.0 and light_from_sh(sh).temperature == 6500.0
    for kelvin in (3000.0, 6500.0, 9000.0):
        assert fit_light(LightParams(20.0, 10.0, 0.8, 0.3, kelvin).to_sh()).temperature == kelvin
