"""G_p, the photo-conditioned renderer: shapes, residual-at-init, a training step, resume, the
rotate-and-render round trip and the photo renderer's paste-back (tiny configs, synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from faceeditor.edit.params import EditParams
from faceeditor.edit.scene import synthetic_photo
from faceeditor.fit.synthetic import state_vertices
from faceeditor.morphable import default_model_path, load_face_model
from faceeditor.neural.data import encode_jpeg, pack_blobs, split_of
from faceeditor.neural.gar import modulated_conv2d
from faceeditor.neural.labels import RegionTable
from faceeditor.neural.photo_g import PhotoG, injected_conv
from faceeditor.neural.photo_renderer import PhotoNeuralRenderer
from faceeditor.neural.photo_rep import CONF, REGIONS, REP_CHANNELS, TEXTURED, WARPED, base_image
from trainers import photo_g_adv, train_photo_g
from trainers.photo_g_data import Shards, round_trip

TINY = {"widths": (8, 8, 8), "inject": (4, 4, 4), "extra_layers": (0, 0, 1), "w_dim": 16, "nim_hidden": 4}


@pytest.fixture(scope="module")
def model():
    if not default_model_path().is_file():
        pytest.skip("resources/face_model.npz missing: python -m trainers.build_face_model")
    return load_face_model("cpu")


def random_rep(b: int = 2, s: int = 32, conf: float | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rep = torch.rand(b, REP_CHANNELS, s, s, generator=g)
    if conf is not None:
        rep[:, CONF] = conf
    return rep


def test_shapes_and_multiple() -> None:
    G = PhotoG(**TINY)
    out = G(random_rep(2, 32))
    assert out["image"].shape == (2, 3, 32, 32) and out["alpha"].shape == (2, 1, 32, 32)
    assert G.multiple == 8
    with pytest.raises(ValueError):
        G(random_rep(1, 36))


def test_residual_starts_as_the_textured_render() -> None:
    G = PhotoG(**TINY).train()
    rep = random_rep(2, 32, conf=1.0)
    out = G(rep)
    assert torch.equal(out["image"], rep[:, TEXTURED])
    assert torch.equal(out["composite"], rep[:, TEXTURED])
    rep = random_rep(1, 32, conf=0.0)
    rep[:, TEXTURED] = 0.0  # stored premultiplied by the confidence
    assert torch.equal(G(rep)["image"], rep[:, WARPED])


def test_injected_conv_is_eq7_on_the_concatenation() -> None:
    g = torch.Generator().manual_seed(1)
    x, c = torch.randn(2, 5, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    w, s = torch.randn(4, 8, 3, 3, generator=g), torch.rand(2, 5, generator=g) + 0.5
    ref = modulated_conv2d(torch.cat([x, c], 1), w, torch.cat([s, torch.ones(2, 3)], 1))
    torch.testing.assert_close(injected_conv(x, c, w, s), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(injected_conv(x[:1], c[:1], w, s[:1]), ref[:1], atol=1e-4, rtol=1e-4)


def test_one_training_step_decreases_the_loss() -> None:
    torch.manual_seed(0)
    G = PhotoG(**TINY)
    cfg = train_photo_g.Config(w_id=0.0)
    rep = random_rep(2, 32, conf=0.5)
    batch = {
        "rep": rep,
        "target": torch.rand(2, 3, 32, 32),
        "valid": torch.ones(2, 1, 32, 32),
        "hole": torch.zeros(2, 1, 32, 32),
    }
    opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    before, _, _ = train_photo_g.losses(G, batch, cfg, None)
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _, _ = train_photo_g.losses(G, batch, cfg, None)
    assert after.item() < before.item()


def test_pair_targets_take_the_base_colour_and_hold_the_alpha() -> None:
    """--pair-colour: a pair's target gets the base's mean colour (B's white balance is not A's);
    --no-pair-alpha: the pairs' composite L1 sends no gradient to the alpha."""
    base = torch.rand(2, 3, 8, 8) * 0.5 + 0.2
    warm = base * torch.tensor([1.2, 1.0, 0.8]).view(1, 3, 1, 1)
    seen = torch.ones(2, 1, 8, 8)
    assert torch.allclose(train_photo_g.colour_matched(warm, base, seen), base, atol=1e-5)
    assert torch.allclose(train_photo_g.colour_matched(warm * 3, base, seen), (warm * 3 / 1.4).clamp(0, 1), atol=1e-5)
    torch.manual_seed(0)
    G = PhotoG(**TINY)
    with torch.no_grad():  # a residual that is not 0 (at initialisation it is: no gradient reaches the alpha)
        for p in G.out.parameters():
            p.normal_(0.0, 0.1)
    batch = {
        "rep": random_rep(2, 32, conf=0.5),
        "target": torch.rand(2, 3, 32, 32),
        "valid": torch.ones(2, 1, 32, 32),
        "hole": torch.zeros(2, 1, 32, 32),
        "alpha_w": torch.zeros(2, 1, 1, 1),  # both pairs: the alpha is taught by nothing then
    }
    def alpha_gradient(pair_alpha: bool) -> float:
        cfg = train_photo_g.Config(w_id=0.0, w_grad=0.0, w_ssim=0.0, w_alpha=0.0, pair_alpha=pair_alpha)
        out = G(batch["rep"])
        grads: list[torch.Tensor] = []
        out["alpha"].register_hook(grads.append)
        G.forward = lambda rep: out  # the same graph, so the hook sees the loss's gradient
        loss, _, _ = train_photo_g.losses(G, batch, cfg, None)
        loss.backward()
        del G.forward
        return float(grads[0].abs().max()) if grads else 0.0

    assert alpha_gradient(True) > 0.0  # the composite L1 trains the alpha ...
    assert alpha_gradient(False) == 0.0  # ... unless it is held on pairs


def test_patch_discriminator_learns_sharp_from_blurred_fills() -> None:
    """D_p separates sharp holes (real) from blurred ones (fake) after a few steps; the G loss it
    gives is weighted by the holes (no hole in any patch: the same loss whatever the hole map's scale)
    and its gradient reaches the image."""
    torch.manual_seed(0)
    rep = random_rep(4, 32, conf=0.5)
    real = torch.rand(4, 3, 32, 32)
    fake = torch.nn.functional.avg_pool2d(real, 5, 1, 2)
    hole = torch.zeros(4, 1, 32, 32)
    hole[..., 8:24, 8:24] = 1.0
    D = photo_g_adv.PatchD(REP_CHANNELS, (8, 16, 16))
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    first = photo_g_adv.d_loss(D, real, fake, rep, hole).item()
    for _ in range(60):
        loss = photo_g_adv.d_loss(D, real, fake, rep, hole)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with torch.no_grad():
        assert D(real, rep).mean() > D(fake, rep).mean()
    x = fake.clone().requires_grad_(True)
    photo_g_adv.g_loss(D, x, rep, hole).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    w = photo_g_adv.patch_weights(hole, D(real, rep))
    assert w.shape == (4, 1, 4, 4) and w.min() >= photo_g_adv.BACKGROUND_WEIGHT and w.max() > 1.0


def write_synthetic_shard(root, n: int = 4) -> None:
    """A shard of frontal heads on noise crops (only what :class:`Shards` reads)."""
    persons, p = [], 0
    while len(persons) < n:  # half train, half val persons
        name = f"p{p}"
        want = "val" if len(persons) % 2 else "train"
        if split_of(name, "lfw") == want:
            persons.append(name)
        p += 1
    rng = np.random.default_rng(0)
    out = {"person": np.array(persons), "source": np.array(["lfw"] * n)}
    for S in (256, 128):
        out[f"image{S}"], out[f"image{S}_off"] = pack_blobs(
            [encode_jpeg(rng.integers(0, 255, (S, S, 3), dtype=np.uint8)) for _ in range(n)]
        )
    out.update(
        rotation=np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
        translation=np.tile(np.array([0, 0, -90], np.float32), (n, 1)),
        focal=np.full(n, 1000, np.float32),
        principal=np.full((n, 2), 128, np.float32),
        identity=np.zeros((n, 100), np.float32),
        expression=np.zeros((n, 53), np.float32),
        sh=np.tile(np.eye(9, 3, dtype=np.float32), (n, 1, 1)),
        align=np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (n, 1, 1)),
        image_size=np.full((n, 2), 256, np.float32),
    )
    np.savez(root / "shard_00000.npz", **out)


def test_round_trip_has_holes_and_the_crop_as_target(model, tmp_path) -> None:
    write_synthetic_shard(tmp_path)
    data = Shards.load(tmp_path, "train", 128)
    s = round_trip(model, RegionTable.of(model), data.batch(np.arange(len(data))), torch.Generator().manual_seed(0))
    assert s["rep"].shape == (len(data), REP_CHANNELS, 128, 128)
    assert torch.equal(s["target"], data.batch(np.arange(len(data)))["image"])
    conf = s["rep"][:, CONF]
    assert (conf > 0.9).float().mean() > 0.05  # the head is textured ...
    assert s["hole"].sum() > 0  # ... and the random view left holes on it


def test_training_resumes_from_last_pt(model, tmp_path) -> None:
    write_synthetic_shard(tmp_path)
    argv = [
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--batch",
        "2",
        "--fresh",
        "1",
        "--widths",
        "8,8,8,8,8",
        "--inject",
        "4,4,4,4,4",
        "--extra-layers",
        "0,0,0,0,0",
        "--w-id",
        "0",
        "--val",
        "2",
        "--sample-every",
        "100",
        "--threads",
        "1",
    ]
    assert train_photo_g.main(argv + ["--steps", "2"])["step"] == 2
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "samples.png").is_file()
    assert train_photo_g.main(argv + ["--steps", "3"])["step"] == 3
    # resumed with D_p (a fresh D_p on a checkpoint without one), then resumed again with it
    adv = ["--w-adv", "0.05", "--d-widths", "4,4,4"]
    assert train_photo_g.main(argv + adv + ["--steps", "4"])["step"] == 4
    assert train_photo_g.load_checkpoint(tmp_path / "run" / "last.pt")["d_model"] is not None
    assert train_photo_g.main(argv + adv + ["--steps", "5"])["step"] == 5


def test_renderer_pastes_near_the_head_only(model) -> None:
    scene = synthetic_photo(model, seed=5, size=(384, 384))
    state = scene.state
    pts = state.camera().project(state_vertices(model, state))[0, model.landmarks68, :2]
    state.fitted_landmarks68 = pts.numpy().astype(np.float32)
    G = PhotoG(**TINY).eval()
    with torch.no_grad():
        G.out.bias[:3] = 0.2  # a visible residual everywhere, alpha 0.5
    r = PhotoNeuralRenderer(scene.photo, state, model, G=G)
    assert np.array_equal(r.render(EditParams()), scene.photo)
    edit = EditParams(yaw=20.0)
    out = r.render(edit)
    base = r.mesh.render(edit)
    assert out.shape == scene.photo.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - base.astype(int)).max(2) > 0
    assert changed.any()
    ys, xs = np.nonzero(changed)
    assert (base[:8] == out[:8]).all() and (base[:, :8] == out[:, :8]).all()  # far from the head: bit-exact
    assert ys.min() > 8 and xs.min() > 8
    small = r.render(edit, scale=0.5)
    assert small.shape == (192, 192, 3)
    assert torch.equal(base_image(torch.zeros(1, REP_CHANNELS, 8, 8)), torch.zeros(1, 3, 8, 8))


def test_on_the_holes_g_p_sees_what_it_was_trained_on(model) -> None:
    """Where the photo cannot texture the edited head, rep's warped channel is the push-pull fill of
    the confident texture (as in ``round_trip``), not the compositor's mesh fill; off the head it is
    the compositor's image; the pasted image is G_p's base + residual."""
    from faceeditor.neural.align import warp_image
    from faceeditor.neural.photo_rep import push_pull_fill

    scene = synthetic_photo(model, seed=6, size=(320, 320))
    state = scene.state
    state.fitted_landmarks68 = state.camera().project(state_vertices(model, state))[0, model.landmarks68, :2].numpy()
    G = PhotoG(**TINY).eval()
    r = PhotoNeuralRenderer(scene.photo, state, model, G=G)
    edit = EditParams(yaw=30.0)
    base = r.mesh.render(edit)
    out = r.crop_output(edit, base, 1.0)
    rep = out["rep"]
    m = torch.from_numpy(warp_image(base, r.crop_matrix(1.0), r.size)).permute(2, 0, 1)[None].float() / 255
    head = rep[:, REGIONS].sum(1, keepdim=True) > 0  # region one-hots: the edited head
    conf = rep[:, CONF]
    holes = head & (conf < 0.05)
    assert holes.sum() > 20
    want = push_pull_fill(m, conf)
    assert torch.allclose(rep[:, WARPED][holes.expand(-1, 3, -1, -1)], want[holes.expand(-1, 3, -1, -1)], atol=1e-5)
    assert torch.allclose(rep[:, WARPED][~head.expand(-1, 3, -1, -1)], m[~head.expand(-1, 3, -1, -1)], atol=1e-6)
    with torch.no_grad():
        g = G(rep, noise=False)
    assert torch.allclose(out["residual"] + m, base_image(rep) + g["residual"].float(), atol=1e-4)
