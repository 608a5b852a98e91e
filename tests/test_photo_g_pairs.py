"""Same-person reenactment pairs for G_p (trainers/photo_g_pairs.py): B aligned onto the edit, the
pair set's batches, and a training step that mixes pairs into the round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from faceeditor.morphable import default_model_path
from faceeditor.neural.align import warp_image
from faceeditor.neural.photo_rep import CONF, REGIONS, REP_CHANNELS
from tests.test_neural_photo_g import write_synthetic_shard
from trainers import photo_g_pairs, train_photo_g


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_b_aligned_onto_the_edit_matches_a_known_similarity() -> None:
    """B is A moved by a known similarity, and so are its landmarks: B aligned onto A's landmarks and
    resampled through A's crop matrix is A's own crop (up to resampling), inside B's person mask."""
    a = smooth_image(240, 240)
    lm_a = np.random.default_rng(1).uniform(70, 170, (68, 2)).astype(np.float32)
    S0 = cv2.getRotationMatrix2D((120, 120), 12.0, 1.25)
    S0[:, 2] += (9.0, -6.0)
    b = cv2.warpAffine(a, S0, (300, 300), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
    lm_b = (np.c_[lm_a, np.ones(68)] @ S0.T).astype(np.float32)
    person = np.zeros((300, 300), np.float32)
    person[:, :150] = 1.0  # the left half of B is "the person"
    crop = np.array([[0.5, 0, 4.0], [0, 0.5, 2.0]])  # A -> a 128 px crop
    target, weight = photo_g_pairs.aligned_target(b, lm_b, person, lm_a, crop, 128)
    want = warp_image(a, crop, 128)
    inner = weight > 0.99
    assert 0.2 < inner.mean() < 0.8  # the person's half of B, where B covers the crop
    assert np.median(np.abs(target.astype(int) - want.astype(int))[inner]) <= 2
    assert weight[weight > 0].min() >= 0 and weight.max() <= 1.0


def write_pairs(folder, n: int = 3, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    rep = rng.random((n, REP_CHANNELS, size, size)).astype(np.float16)
    rep[:, REGIONS] = 0
    rep[:, REGIONS.start, 8:24, 8:24] = 1  # a head in the middle
    samples = [{"rep": rep[i], "target": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
                "weight": np.full((size, size), 255, np.uint8), "dyaw": np.float32(20)} for i in range(n)]
    photo_g_pairs.write_chunk(folder, samples, ["p1", "p2"])


def test_pair_set_batches_in_the_round_trips_keys(tmp_path) -> None:
    write_pairs(tmp_path)
    pairs = photo_g_pairs.PairSet.load(tmp_path)
    assert len(pairs) == 3 and photo_g_pairs.done_persons(tmp_path) == {"p1", "p2"}
    s = pairs.draw(4, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert s["rep"].shape == (4, REP_CHANNELS, 32, 32) and s["target"].shape == (4, 3, 32, 32)
    assert torch.equal(s["valid"], torch.ones(4, 1, 32, 32))
    assert torch.equal(s["alpha_w"], torch.zeros(4, 1, 1, 1))  # the alpha is taught on round trips only
    head = torch.zeros(4, 1, 32, 32)
    head[..., 8:24, 8:24] = 1
    assert torch.allclose(s["hole"], head * (1 - s["rep"][:, CONF]))
    with pytest.raises(FileNotFoundError):
        photo_g_pairs.PairSet.load(tmp_path / "none")


def test_training_mixes_pairs_into_the_batch(tmp_path) -> None:
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing: python -m trainers.build_face_model")
    write_synthetic_shard(tmp_path)
    write_pairs(tmp_path / "pairs", size=128)
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--batch", "2", "--fresh", "1",
            "--widths", "8,8,8,8,8", "--inject", "4,4,4,4,4", "--extra-layers", "0,0,0,0,0", "--w-id", "0",
            "--val", "2", "--sample-every", "100", "--threads", "1", "--steps", "2",
            "--pairs", str(tmp_path / "pairs"), "--pair-frac", "0.5"]
    out = train_photo_g.main(argv)
    assert out["step"] == 2 and np.isfinite(out["loss"])
