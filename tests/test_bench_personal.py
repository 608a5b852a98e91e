"""bench light's personal_* keys: the held-out gain is the 3-photo model's PSNR on a 4th photo minus
the 1-photo model's (issue 12's definition), over persons with at least 4 usable photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from faceeditor.bench import _personal


@dataclass
class _Fitted:
    name: str
    rgb: object = None
    state: object = None


@dataclass
class _Log:
    seconds: float
    psnr_db: list


class _Judges:
    model = None

    def fit(self, path: Path):
        return None if "broken" in path.name else _Fitted(path.name)


def test_heldout_gain_is_three_photos_minus_one(monkeypatch) -> None:
    persons = {"A": [Path(f"A_{i}.jpg") for i in range(5)],  # 5 photos: the first 4 are used
               "B": [Path("B_0.jpg"), Path("B_broken.jpg"), Path("B_2.jpg"), Path("B_3.jpg")],  # 3 usable: skipped
               "C": [Path("C_0.jpg"), Path("C_1.jpg")]}  # too few
    calls = []

    def heldout(fitted, held, judges, cfg):
        calls.append(([p.name for p in fitted], held.name))
        n = len(fitted)
        return 30.0 + n, _Log(10.0 * n, [31.0] * n)

    monkeypatch.setattr(_personal, "validation_persons", lambda data: (None, persons))
    monkeypatch.setattr(_personal, "heldout_psnr", heldout)
    monkeypatch.setattr(_personal, "prepare", lambda *a: None)
    monkeypatch.setattr(_personal, "sh_psnr", lambda *a: 29.0)
    out = _personal.measure(_Judges(), None, 3, 0)
    assert calls == [(["A_0.jpg", "A_1.jpg", "A_2.jpg"], "A_3.jpg"), (["A_0.jpg"], "A_3.jpg")]
    assert out["personal_heldout_gain_db"] == pytest.approx(2.0)  # 33 - 31
    assert out["personal_fit_s_median"] == pytest.approx(30.0)  # the 3-photo fit
    assert out["personal_psnr_db"] == pytest.approx(31.0)
    row = out["personal_rows"][0]
    assert row["heldout_psnr_1photo_db"] == pytest.approx(31.0) and row["heldout_sh_psnr_db"] == 29.0


def test_no_qualifying_person_gives_null_keys(monkeypatch) -> None:
    monkeypatch.setattr(_personal, "validation_persons", lambda data: (None, {"C": [Path("C_0.jpg")]}))
    out = _personal.measure(_Judges(), None, 3, 0)
    assert out["personal_heldout_gain_db"] is None and out["personal_rows"] == []
