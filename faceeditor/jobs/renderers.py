"""The photo renderers by name: one factory for the CLI, the batch runner, the benchmarks and the GUI.

* ``"mesh"``: :class:`~faceeditor.edit.compose.MeshCompositor` (warp + relight + mesh fill).
* ``"neural"``: :class:`~faceeditor.neural.photo_renderer.PhotoNeuralRenderer`, the compositor's
  edit redrawn feed-forward by the photo-conditioned renderer G_p (issue 15; no inversion); needs
  ``resources/photo_g.pt`` or ``$FACEEDITOR_PHOTO_G``. (Earlier files call it ``"photo-neural"``.)
  When the photo already has a Personal model (chosen before, or carried in its session) the
  compositor under G_p is the Personal renderer's: one light model relights what G_p is given.
* ``"gar"``: :class:`~faceeditor.neural.gar_renderer.GarRenderer`, the same compositor with the
  GAR renderer G as its fill layer; the face is inverted first when its state has no latent code
  for the shipped G (:func:`faceeditor.neural.invert.invert`, seconds on a CPU).
* ``"personal"``: :class:`~faceeditor.neural.personal_renderer.PersonalRenderer`, the compositor
  relit by the person's Personal model (paper 001; ``personal=`` a fitted or loaded
  :class:`~faceeditor.neural.personal.PersonalModel`, else fitted on the photo alone, seconds;
  ``progress`` follows the fit). :class:`RendererFactory` keeps the fitted model per photo, in
  memory and under the user directory (:func:`personal_cache_dir`): reopening the photo, in this
  session or a later one, reuses it instead of fitting again; :func:`personal_files` and
  :func:`install_personal` carry it in and out of session files.

``make_renderer(kind, photo, state, model, **kw)`` returns a
:class:`~faceeditor.edit.renderer.PhotoRenderer`; ``available_renderers()`` says which can be made
now (``"neural"`` needs ``resources/photo_g.pt``, ``"gar"`` ``resources/gar_generator.pt`` and
``gar_inverter.pt``). A caller that makes several renderers (the window: a preview and a
full-resolution one per face) keeps a :class:`RendererFactory`: it loads the networks once (G_p;
:class:`~faceeditor.neural.gar_nets.GarNets`) and passes them to every renderer, with the caches
they carry (tuned G, recent inversions: one inversion serves both GAR renderers of a face).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np

from faceeditor.core.atomic import atomic_write_bytes
from faceeditor.core.errors import FaceEditorError, RendererUnavailableError
from faceeditor.core.paths import user_dir
from faceeditor.core.progress import Progress
from faceeditor.core.state import FaceState
from faceeditor.edit.compose import MeshCompositor
from faceeditor.edit.params import RENDERER_ALIASES, RENDERERS
from faceeditor.morphable import load_face_model
from faceeditor.morphable.model import FaceModel
from faceeditor.neural.gar_nets import GarNets, load_gar
from faceeditor.neural.gar_nets import available as gar_available
from faceeditor.neural.gar_renderer import GarRenderer
from faceeditor.neural.personal import MANIFEST, WEIGHTS, PersonalModel, photo_key
from faceeditor.neural.personal_renderer import PersonalRenderer
from faceeditor.neural.photo_g import PhotoG
from faceeditor.neural.photo_renderer import PhotoNeuralRenderer, load_photo_g, photo_g_available

PERSONAL_CACHE_MODELS = 20  # Personal models kept on disk (a few MB each)
# long side of a preview's work grid: 96 cells over a 224 px preview's head window (~200 px), still ~3x
# finer than a full render's (1/6 of its resolution); at 128 the grid cost a 224 px preview 40 ms, at 96
# 33 ms, at 80 30 ms on this 2-core CPU, the picture differing from the full render downscaled by 0.41,
# 0.41 and 0.49 grey levels (mean abs, 2026-12-08)
PREVIEW_WORK_PX = 96


def personal_cache_dir(key: str) -> Path:
    """Where the Personal model fitted on the photo ``key`` (:func:`photo_key`) is kept between
    sessions: ``<user dir>/personal/<key>`` (the newest :data:`PERSONAL_CACHE_MODELS` are kept)."""
    return user_dir() / "personal" / key


def load_cached_personal(key: str) -> PersonalModel | None:
    """The kept Personal model of photo ``key``, or None (none kept, or unreadable: fitted again)."""
    folder = personal_cache_dir(key)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        return PersonalModel.load(folder)
    except (FaceEditorError, KeyError, TypeError, ValueError, RuntimeError, OSError):
        return None


def cache_personal(key: str, personal: PersonalModel) -> None:
    """Keep ``personal`` for photo ``key`` (a full disk only costs the reuse), dropping the oldest
    kept models beyond :data:`PERSONAL_CACHE_MODELS`."""
    try:
        personal.save(personal_cache_dir(key), {"cached_for": key})
        kept = sorted((p for p in personal_cache_dir(key).parent.iterdir() if p.is_dir()),
                      key=lambda p: p.stat().st_mtime)
        for old in kept[:-PERSONAL_CACHE_MODELS]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


def personal_files(photo: np.ndarray) -> dict[str, bytes] | None:
    """The kept Personal model of ``photo`` (uint8 pixels) as its files' bytes (for a session file), or None."""
    folder = personal_cache_dir(photo_key(photo))
    try:
        if not (folder / MANIFEST).is_file():
            return None
        return {name: (folder / name).read_bytes() for name in (MANIFEST, WEIGHTS) if (folder / name).is_file()}
    except OSError:
        return None


def install_personal(photo: np.ndarray, files: dict[str, bytes]) -> bool:
    """Keep the Personal model ``files`` (from a session) for ``photo`` unless one is kept already;
    only the model's own file names are written. True when the photo now has a kept model that loads."""
    key = photo_key(photo)
    folder = personal_cache_dir(key)
    if load_cached_personal(key) is not None:
        return True
    if set(files) != {MANIFEST, WEIGHTS}:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            atomic_write_bytes(folder / name, data)
    except OSError:
        return False
    if load_cached_personal(key) is None:  # not a model after all: do not keep it
        shutil.rmtree(folder, ignore_errors=True)
        return False
    return True


def available_renderers() -> dict[str, tuple[bool, str]]:
    """``{name: (available, reason or description)}`` for every name in :data:`RENDERERS`."""
    out = {"mesh": (True, "Warp and relight the photo through the fitted mesh")}
    ok = photo_g_available()
    out["neural"] = (ok, "The edit redrawn by the photo-conditioned neural renderer G_p (feed-forward)" if ok else
                     "No trained photo-conditioned renderer in resources/ (python -m trainers.train_photo_g)")
    ok = gar_available()
    out["gar"] = (ok, "Compositor with the GAR renderer filling unseen parts (inverts the face first)" if ok else
                  "No trained GAR renderer in resources/ (python -m trainers.train_gar)")
    out["personal"] = (True, ("The compositor relit by a Personal model (paper 001) fitted to this photo in the "
                              "background: highlights move and nose, brow and lips cast soft shadows with the light"))
    return out


def make_renderer(kind: str, photo: np.ndarray, state: FaceState, model: FaceModel | None = None,
                  preview: bool = False, progress: Progress | None = None, nets: GarNets | None = None, **kw):
    """A PhotoRenderer of ``kind`` bound to ``photo`` and the fitted face ``state``.

    ``preview`` lets the compositor's work grid go down to :data:`PREVIEW_WORK_PX` (the GUI's slider
    previews);
    ``progress`` is passed to the inversion of the GAR renderer (or the Personal fit); ``nets`` is the
    loaded GAR renderer to use (loaded from ``resources/`` for this renderer alone when not given: see
    :class:`RendererFactory`); other keywords go to the renderer (e.g. ``invert_config``,
    ``max_work_px``). Raises :class:`~faceeditor.core.errors.RendererUnavailableError` when a
    network renderer is asked for and is not trained. Older names (``"photo-neural"``) are accepted.
    """
    kind = RENDERER_ALIASES.get(kind, kind)
    if kind not in RENDERERS:
        raise ValueError(f"unknown renderer {kind!r}; choose from {RENDERERS}")
    if model is None:
        model = load_face_model()
    if preview:
        kw.setdefault("min_work_px", PREVIEW_WORK_PX)
    if kind == "mesh":
        return MeshCompositor(photo, state, model, **kw)
    if kind == "neural":
        G, personal = kw.pop("photo_g", None), kw.pop("personal", None)
        if personal is not None:  # one light model: the Personal model relights what G_p is given
            mesh = PersonalRenderer(photo, state, model, personal=personal, progress=progress, **kw).comp
            return PhotoNeuralRenderer(photo, state, model, G=G, mesh=mesh)
        return PhotoNeuralRenderer(photo, state, model, G=G, **kw)
    if kind == "personal":
        return PersonalRenderer(photo, state, model, personal=kw.pop("personal", None), progress=progress, **kw)
    if nets is None:
        ok, why = available_renderers()["gar"]
        if not ok:
            raise RendererUnavailableError(f"the GAR renderer is not available: {why}")
    return GarRenderer(photo, state, model, nets=nets, progress=progress, **kw)


class RendererFactory:
    """:func:`make_renderer` for a caller that makes many renderers: the face model and the
    renderers' networks (G_p, GAR's: loaded on first use, or given) are kept and shared."""

    def __init__(self, model: FaceModel | None = None, nets: GarNets | None = None,
                 photo_g: PhotoG | None = None) -> None:
        self.model = model
        self._nets = nets
        self._photo_g = photo_g
        self._lock = threading.Lock()
        self._personal: dict[str, PersonalModel] = {}  # Personal models by photo (:func:`photo_key`)

    def photo_g(self) -> PhotoG:
        """The photo-conditioned renderer G_p, loaded once (raises RendererUnavailableError when untrained)."""
        with self._lock:
            if self._photo_g is None:
                self._photo_g = load_photo_g()
            return self._photo_g

    def gar_nets(self) -> GarNets:
        """The GAR renderer's networks and caches, loaded once."""
        with self._lock:
            if self._nets is None:
                self._nets = load_gar()
            return self._nets

    def known_personal(self, key: str) -> PersonalModel | None:
        """The Personal model of photo ``key`` kept in memory or under the user directory (then kept
        in memory too), or None."""
        with self._lock:
            got = self._personal.get(key)
        if got is None:
            got = load_cached_personal(key)
            if got is not None:
                with self._lock:
                    self._personal[key] = got
        return got

    def make(self, kind: str, photo: np.ndarray, state: FaceState, preview: bool = False,
             progress: Progress | None = None, **kw):
        """:func:`make_renderer` with the kept model and, for ``"neural"`` and ``"gar"``, the shared networks."""
        kind = RENDERER_ALIASES.get(kind, kind)
        if self.model is None:
            self.model = load_face_model()
        if kind == "gar" and (self._nets is not None or gar_available()):
            kw.setdefault("nets", self.gar_nets())
        if kind == "neural":
            kw.setdefault("photo_g", self.photo_g())
            kw.setdefault("personal", self.known_personal(photo_key(photo)))  # never fitted for this
        if kind == "personal":  # fitted once per photo, shared by its preview and full-size renderers
            key = photo_key(photo)
            kw.setdefault("personal", self.known_personal(key))
            fitted_now = kw["personal"] is None
            renderer = make_renderer(kind, photo, state, self.model, preview=preview, progress=progress, **kw)
            with self._lock:
                self._personal[key] = renderer.personal
            if fitted_now:
                cache_personal(key, renderer.personal)
            return renderer
        return make_renderer(kind, photo, state, self.model, preview=preview, progress=progress, **kw)
