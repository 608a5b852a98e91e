"""``faceeditor demo``: the README's no-display path on the embedded sample portrait."""

from __future__ import annotations

import json

import numpy as np

from faceeditor.cli import main


def test_demo_writes_the_fit_and_the_edits(tmp_path, capsys):
    from faceeditor.io import load_image
    from faceeditor.neural.gar_nets import available
    from faceeditor.neural.photo_renderer import photo_g_available

    assert main(["demo", "-o", str(tmp_path), "--gar-seconds", "2"]) == 0
    out = capsys.readouterr().out
    params = json.loads((tmp_path / "params.json").read_text())
    assert len(params["identity"]) == 100 and params["image_size"] == [512, 512]
    photo = None
    for name in ("turn_left", "smile", "relight"):
        img = load_image(tmp_path / f"edit_{name}.png").pixels
        assert img.shape == (512, 512, 3)
        if photo is not None:
            assert np.abs(img.astype(int) - photo.astype(int)).max() > 30  # each edit differs from the last
        photo = img
    for f in ("mesh.obj", "mesh.mtl", "mesh.png", "overlay.png", "before_after.png"):
        assert (tmp_path / f).is_file()
    if photo_g_available():
        turned = load_image(tmp_path / "edit_turn_left_neural.png").pixels
        assert turned.shape == (512, 512, 3) and "neural renderer G_p" in out
    else:
        assert "not shipped" in out
    if available():
        assert (tmp_path / "edit_turn_left_gar.png").is_file() and "GAR renderer: inverted" in out
    else:
        assert "not trained" in out
