"""The Personal renderer's keys of ``faceeditor bench light`` (:mod:`faceeditor.bench.light`).

Per person with at least 3 photos (``--personal-n`` persons; LFW layout: one folder per person,
default the validation persons of ``../shared/data/lfw``): the Personal model
(:mod:`faceeditor.neural.personal`) is fitted on all but one of its first ``FIT_PHOTOS + 1``
photos (at most :data:`FIT_PHOTOS`), and

* ``personal_psnr_db``: median PSNR of its render vs each fitted photo on the face skin of the
  fitted head (the fit's crop, :class:`~faceeditor.neural.personal_fit.Target`);
* ``personal_fit_s_median``: median seconds of those fits (the Personal fit alone, the face fits
  excluded);
* ``personal_heldout_gain_db``: on the held-out photo, whose light alone is fitted
  (:func:`~faceeditor.neural.personal_fit.add_photo`), the Personal render's PSNR minus that of the
  SH model with the same information: the first fitted photo's albedo texture under the held-out
  photo's own fitted SH light, on the same pixels. Median over persons.
"""

from __future__ import annotations

import numpy as np
import torch

from faceeditor.bench._realism import Judges, median, validation_persons
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.state import FaceState
from faceeditor.neural.personal import PersonalConfig
from faceeditor.neural.personal_fit import Target, add_photo, fit_personal, prepare, psnr_db
from faceeditor.render.interpolate import sample_texture
from faceeditor.render.sh import sh_shading

FIT_PHOTOS = 3  # photos a person's model is fitted on (one fewer when the person has only 3)


@torch.no_grad()
def sh_psnr(t: Target, texture_state: FaceState, light_state: FaceState) -> float:
    """PSNR on ``t``'s face pixels of albedo (``texture_state``'s face tile) x SH shading (``light_state``'s SH)."""
    T = texture_state.texture.shape[0] // 2
    tile = torch.from_numpy(texture_state.texture[:T, :T].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    albedo = sample_texture(tile, t.surface.uv)
    n = t.surface.n_model @ t.surface.rotation.t()
    sh = torch.as_tensor(np.asarray(light_state.sh), dtype=torch.float32)
    pred = (albedo * sh_shading(n, sh.expand(n.shape[0], 9, 3))).clamp(0, 1)
    mse = float(((pred - t.image.view(3, -1)[:, t.pix].t()) ** 2).mean())
    return 10.0 * float(np.log10(1.0 / max(mse, 1e-10)))


def measure(judges: Judges, data, n: int, seed: int, config: PersonalConfig | None = None) -> dict[str, object]:
    """The three ``personal_*`` keys (None where no person qualified) and the per-person rows."""
    keys: dict[str, object] = {"personal_psnr_db": None, "personal_fit_s_median": None,
                               "personal_heldout_gain_db": None}
    if n <= 0:
        return {**keys, "personal_rows": []}
    try:
        _, persons = validation_persons(data)
    except FaceEditorError:  # no LFW folder: the keys stay null
        return {**keys, "personal_rows": []}
    names = [k for k, v in persons.items() if len(v) >= 3]
    order = np.random.default_rng(seed).permutation(len(names))
    cfg = config or PersonalConfig(seed=seed)
    rows = []
    for j in order:
        if len(rows) >= n:
            break
        fitted = [p for p in (judges.fit(f) for f in persons[names[j]][:FIT_PHOTOS + 1]) if p is not None]
        if len(fitted) < 3:
            continue
        train, held = fitted[:-1][:FIT_PHOTOS], fitted[-1]
        net, log = fit_personal([p.rgb for p in train], [p.state for p in train], judges.model, cfg)
        i = add_photo(net, held.rgb, held.state, judges.model)
        t = prepare(held.rgb, held.state, judges.model, cfg.crop)
        ours, sh = psnr_db(net, t, i), sh_psnr(t, train[0].state, held.state)
        rows.append({"person": names[j], "photos": len(train), "fit_s": log.seconds, "psnr_db": log.psnr_db,
                     "heldout_psnr_db": ours, "heldout_sh_psnr_db": sh, "heldout_gain_db": ours - sh})
    if rows:
        keys = {"personal_psnr_db": median([v for r in rows for v in r["psnr_db"]]),
                "personal_fit_s_median": median([r["fit_s"] for r in rows]),
                "personal_heldout_gain_db": median([r["heldout_gain_db"] for r in rows])}
    return {**keys, "personal_rows": rows}

