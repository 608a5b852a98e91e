"""The landmark fitter's parameter layout, the tables a model keeps for the fitter, and the
conventions the fit shares with :mod:`faceeditor.core` (pose, projection)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceeditor.core.camera import project
from faceeditor.core.pose import axis_angle_to_matrix, euler_to_matrix, matrix_to_euler
from faceeditor.fit.contour import contour_candidates
from faceeditor.fit.landmark_terms import euler_degrees, project_px
from faceeditor.fit.landmarks import LandmarkFitConfig, LandmarkFitter, ParamLayout
from faceeditor.fit.pipeline import get_fitter
from faceeditor.fit.texture import texel_maps
from faceeditor.morphable import FaceModel, default_model_path, load_face_model
from faceeditor.morphable.derived import DerivedTables


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return load_face_model("cpu")


def test_param_layout_partitions_the_vector() -> None:
    L = ParamLayout(n_identity=40, n_expression=53)
    parts = [L.rotation, L.translation, L.log_focal, L.identity, L.expression]
    covered = np.concatenate([np.arange(s.start, s.stop) for s in parts])
    assert np.array_equal(covered, np.arange(7 + 40 + 53))
    assert (L.n_rigid, L.n_coeffs) == (7, 93)
    assert L.coeffs == slice(7, 100)
    x = np.arange(100.0)
    c = x[L.coeffs]
    assert np.array_equal(c[L.coeff_identity], x[L.identity]) and np.array_equal(c[L.coeff_expression], x[L.expression])


def test_fitter_layout_follows_the_config(model: FaceModel) -> None:
    fitter = LandmarkFitter(model, LandmarkFitConfig(n_identity=30))
    assert fitter.layout == ParamLayout(30, model.n_expression)
    assert fitter.prior.shape == (fitter.layout.n_coeffs,)


def test_derived_tables_live_on_the_model(model: FaceModel) -> None:
    assert get_fitter(model) is get_fitter(model)
    assert contour_candidates(model) is get_fitter(model).tracker.cands
    assert texel_maps(model, 16) is texel_maps(model, 16) and texel_maps(model, 32) is not texel_maps(model, 16)
    if not default_model_path().is_file():
        pytest.skip("face model missing")
    other = FaceModel.load(default_model_path(), "cpu")  # another model: its own tables
    assert get_fitter(other) is not get_fitter(model)
    assert "fit.landmark_fitter" not in FaceModel.load(default_model_path(), "cpu").derived


def test_derived_tables_build_once() -> None:
    tables, calls = DerivedTables(), []
    build = lambda: calls.append(1) or len(calls)
    assert tables.get("a", build) == 1 and tables.get("a", build) == 1 and calls == [1]
    assert tables.get("b", lambda: tables.get("a", build) + 1) == 2  # a build may ask for another table
    tables.clear()
    assert "a" not in tables


def test_numpy_bridges_match_core() -> None:
    rng = np.random.default_rng(0)
    pc = rng.normal(size=(50, 3)) + (0.0, 0.0, -40.0)
    ref = project(torch.from_numpy(pc)[None], 900.0, 320.0, 240.0)[0, :, :2].numpy()
    np.testing.assert_array_equal(project_px(pc, 900.0, 320.0, 240.0), ref)
    R = euler_to_matrix(20.0, -10.0, 5.0, dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(euler_degrees(R), [20.0, -10.0, 5.0], atol=1e-12)
    np.testing.assert_array_equal(euler_degrees(R), torch.cat(matrix_to_euler(torch.from_numpy(R))).numpy())


def test_axis_angle_has_a_gradient_at_zero() -> None:
    """Refinement (:func:`faceeditor.fit.refine.refine_geometry`) starts its rotation increment at
    w = 0 and moves it by Adam: ``d R / d w`` at 0 must be the cross-product matrix, not zero."""
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    R = axis_angle_to_matrix(w)
    probe = torch.arange(9.0, dtype=torch.float64).reshape(3, 3)
    (R * probe).sum().backward()
    # d/dw sum(probe * [w]_x) = (probe[2,1] - probe[1,2], probe[0,2] - probe[2,0], probe[1,0] - probe[0,1])
    np.testing.assert_allclose(w.grad.numpy(), [2.0, -4.0, 2.0], atol=1e-9)
