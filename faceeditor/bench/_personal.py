"""The Personal renderer's keys of ``faceeditor bench light`` (:mod:`faceeditor.bench.light`).

Per person with at least ``FIT_PHOTOS + 1`` = 4 photos (``--personal-n`` persons; LFW layout: one
folder per person, default the validation persons of ``../shared/data/lfw``): the Personal model
(:mod:`faceeditor.neural.personal`) is fitted on the first :data:`FIT_PHOTOS` photos, and again on
the first photo alone; the 4th photo is held out. Keys:

* ``personal_psnr_db``: median PSNR of the 3-photo model's render vs each fitted photo on the face
  skin of the fitted head (the fit's crop, :class:`~faceeditor.neural.personal_fit.Target`);
* ``personal_fit_s_median``: median seconds of the 3-photo fits (the Personal fit alone, the face
  fits excluded);
* ``personal_heldout_gain_db`` (issue 12's definition): on the held-out photo, whose light alone is
  fitted (:func:`~faceeditor.neural.personal_fit.add_photo`), the PSNR of the model fitted on 3
  photos minus that of the model fitted on 1 photo. Median over persons.

Per-person rows also give the held-out PSNR of the SH model with the 1-photo information (the
first photo's albedo texture under the held-out photo's own fitted SH light), for reference.
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

FIT_PHOTOS = 3  # photos the person model is fitted on; a 4th is held out


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


def heldout_psnr(fitted: list, held, judges: Judges, cfg: PersonalConfig) -> tuple[float, object]:
    """PSNR on ``held`` of a model fitted on ``fitted`` (its light alone fitted to ``held``), and the fit's log."""
    net, log = fit_personal([p.rgb for p in fitted], [p.state for p in fitted], judges.model, cfg)
    i = add_photo(net, held.rgb, held.state, judges.model)
    return psnr_db(net, prepare(held.rgb, held.state, judges.model, cfg.crop), i), log


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
    names = [k for k, v in persons.items() if len(v) >= FIT_PHOTOS + 1]
    order = np.random.default_rng(seed).permutation(len(names))
    cfg = config or PersonalConfig(seed=seed)
    rows = []
    for j in order:
        if len(rows) >= n:
            break
        fitted = []
        for f in persons[names[j]]:
            if len(fitted) > FIT_PHOTOS:
                break
            p = judges.fit(f)
            if p is not None:
                fitted.append(p)
        if len(fitted) < FIT_PHOTOS + 1:
            continue
        train, held = fitted[:FIT_PHOTOS], fitted[FIT_PHOTOS]
        psnr3, log = heldout_psnr(train, held, judges, cfg)
        psnr1, _ = heldout_psnr(train[:1], held, judges, cfg)
        t = prepare(held.rgb, held.state, judges.model, cfg.crop)
        rows.append({"person": names[j], "photos": len(train), "fit_s": log.seconds, "psnr_db": log.psnr_db,
                     "heldout_psnr_db": psnr3, "heldout_psnr_1photo_db": psnr1,
                     "heldout_sh_psnr_db": sh_psnr(t, train[0].state, held.state), "heldout_gain_db": psnr3 - psnr1})
    if rows:
        keys = {"personal_psnr_db": median([v for r in rows for v in r["psnr_db"]]),
                "personal_fit_s_median": median([r["fit_s"] for r in rows]),
                "personal_heldout_gain_db": median([r["heldout_gain_db"] for r in rows])}
    return {**keys, "personal_rows": rows}
