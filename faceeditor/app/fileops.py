"""File actions of the editor window: open (dialog, sample, recent, drop), sessions, exports,
presets, and the crash-safe autosave.

Heavy work runs off the UI thread: reading sessions and the full-resolution render of an export
on the render thread (:meth:`MainWindow.submit`), writing export files on a
:class:`~faceeditor.app.background.BackgroundJob`, each export under the progress panel (Cancel).
Dialogs and messages stay here. Each ``*_dialog`` method asks for a path and calls the plain
method, which tests call directly. An autosave that cannot be read is renamed ``*.unreadable``
and reported, never deleted.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from faceeditor.app import prefs
from faceeditor.app.background import BackgroundJob
from faceeditor.app.prefs import IMAGE_FILTER
from faceeditor.core.errors import FaceEditorError
from faceeditor.core.paths import sample_image_path, user_dir
from faceeditor.edit.params import EditParams
from faceeditor.io import save_image
from faceeditor.io.session import (
    SUFFIX,
    PhotoRef,
    Session,
    autosave_path,
    clear_autosave,
    file_key,
    load_session,
    pending_autosave,
    photo_ref,
    save_session,
)
from faceeditor.jobs.renderers import install_personal, personal_files

AUTOSAVE_INTERVAL_MS = 3000
EXPORT_PROGRESS_AFTER_MS = 400  # exports quicker than this never show the progress panel


class FileOps:
    def __init__(self, window) -> None:
        self.w = window
        self._autosaved_version = -1
        self._autosave_thread: threading.Thread | None = None
        # the open photo's reference (path, size, sha256) by its file_key: an autosave every few
        # seconds must not read and hash the photo again (a 12 MP PNG: ~0.2 s of CPU during a drag)
        self._photo_ref: tuple[tuple[str, int, int], PhotoRef] | None = None
        self.autosave_timer = QTimer(window, interval=AUTOSAVE_INTERVAL_MS)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self.last_export: Path | None = None
        self._writers: list[BackgroundJob] = []  # exports being written

    # ----------------------------------------------------------------- opening
    def open_dialog(self) -> None:
        start = str(Path(self.recent()[0]).parent) if self.recent() else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self.w, "Open a photo or session", start,
                                              f"{IMAGE_FILTER};;FaceEditor sessions (*{SUFFIX});;All files (*)")
        if path:
            self.w.open_path(path)

    def open_sample(self) -> None:
        try:
            self.w.open_path(sample_image_path())
        except FileNotFoundError as exc:
            self.w.show_error(str(exc))

    def recent(self) -> list[str]:
        return prefs.recent()

    def add_recent(self, path) -> None:
        """Put ``path`` first in the recent list (written on a thread: the atomic write syncs the disk)."""
        items = prefs.recent_with(path)
        threading.Thread(target=prefs.write_recent, args=(items,), name="recent", daemon=True).start()
        self._show_recent(items)

    def refresh_recent(self) -> None:
        self._show_recent(self.recent())

    def _show_recent(self, items: list[str]) -> None:
        items = [p for p in items if Path(p).exists()]
        menu = self.w.recent_menu
        menu.clear()
        for p in items:
            a = menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.triggered.connect(lambda _=False, p=p: self.w.open_path(p))
        menu.setEnabled(bool(items))
        self.w.welcome.set_recent(items)

    # ----------------------------------------------------------------- sessions
    def open_session_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Open session", str(user_dir()), f"Sessions (*{SUFFIX})")
        if path:
            self.open_session(path)

    def open_session(self, path, dirty: bool = False) -> None:
        engine = self.w.engine

        def job():
            session = load_session(path)
            loaded = engine.load_photo(session.photo_path)
            if session.personal:  # the session's Personal model: the renderer menu reuses it
                install_personal(loaded.pixels, session.personal)
            return session, loaded, engine.head_texture(session.state)

        def done(result) -> None:
            session, loaded, texture = result
            w = self.w
            w.cancel_fit(quiet=True)
            w.doc.restore(session, loaded.pixels, loaded, None if dirty else Path(path))
            w.doc.dirty = dirty
            w.viewport.set_texture(texture)
            w.statusBar().showMessage(f"Session restored: {Path(session.photo_path).name}", 5000)
            w.refresh_all()

        self.w.submit(job, done)
        self.w.statusBar().showMessage(f"Opening session {path}…")

    def save_session(self, wait: bool = False) -> bool:
        doc = self.w.doc
        if doc.session_path is None:
            return self.save_session_as(wait)
        self.save_session_to(doc.session_path, wait)
        return True

    def save_session_as(self, wait: bool = False) -> bool:
        doc = self.w.doc
        stem = doc.photo_path.stem if doc.photo_path else "face"
        path, _ = QFileDialog.getSaveFileName(self.w, "Save session", str(Path.home() / f"{stem}{SUFFIX}"),
                                              f"Sessions (*{SUFFIX})")
        if not path:
            return False
        self.save_session_to(path if path.endswith(SUFFIX) else path + SUFFIX, wait)
        return True

    def save_session_to(self, path, wait: bool = False) -> None:
        """Write the session on the render thread (``wait``: here and now, e.g. while closing)."""
        doc = self.w.doc
        session = doc.to_session()
        photo = doc.photo

        def write():
            if photo is not None:  # the photo's Personal model, when one was fitted, travels with it
                session.personal = personal_files(photo)  # (hashes the photo: off the GUI thread)
            return save_session(path, self._with_photo_ref(session))

        version = doc.version
        if wait:
            write()
            doc.mark_saved(path)
            clear_autosave()
            return

        def done(p) -> None:
            if doc.version == version:
                doc.mark_saved(p)
                clear_autosave()
            else:
                doc.session_path = Path(p)
            self.w.refresh_all()
            self.w.statusBar().showMessage(f"Saved session {p}", 5000)

        self.w.submit(write, done)

    # ----------------------------------------------------------------- autosave
    def autosave(self, wait: bool = False) -> None:
        doc = self.w.doc
        if (not doc.dirty or not doc.has_face or doc.photo_path is None
                or doc.version == self._autosaved_version):
            return
        if self._autosave_thread is not None and self._autosave_thread.is_alive():
            return
        session = doc.to_session()
        self._autosaved_version = doc.version

        def write() -> None:
            try:
                save_session(autosave_path(), self._with_photo_ref(session))
            except Exception as exc:  # noqa: BLE001 - autosave must never disturb editing
                print(f"faceeditor: autosave failed: {exc}")

        self._autosave_thread = threading.Thread(target=write, name="autosave", daemon=True)
        self._autosave_thread.start()
        if wait:
            self._autosave_thread.join()

    def _with_photo_ref(self, session: Session) -> Session:
        """``session`` with its photo's reference, read from the file only when the file changed
        (any thread: the kept pair is replaced whole)."""
        key = file_key(session.photo_path)
        kept = self._photo_ref
        if key is not None and kept is not None and kept[0] == key:
            session.photo = kept[1]
        else:
            session.photo = photo_ref(session.photo_path)
            self._photo_ref = None if key is None or session.photo is None else (key, session.photo)
        return session

    def offer_restore(self) -> bool:
        """At start-up: offer the session a crash left behind. Returns True when there was one."""
        p = pending_autosave()
        if p is None:
            return False
        try:
            s = load_session(p)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: kept aside and reported
            self._keep_unreadable(p, exc)
            return False
        age = max(0.0, time.time() - s.saved_at)
        when = f"{age / 60:.0f} min ago" if age < 7200 else time.strftime("%d %b %H:%M", time.localtime(s.saved_at))
        self.w.banner.show_message(
            f"FaceEditor closed before your edits of <b>{Path(s.photo_path).name}</b> were saved ({when}). "
            "Restore them?", "warn",
            [("Restore", lambda: self.open_session(p, dirty=True)), ("Discard", clear_autosave)])
        return True

    def _keep_unreadable(self, path: Path, exc: Exception) -> Path | None:
        """Rename an autosave that cannot be read to ``*.unreadable`` (never deleted) and say so."""
        aside = path.with_name(path.name + ".unreadable")
        if aside.exists():
            aside = path.with_name(f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}.unreadable")
        try:
            path.replace(aside)
        except OSError as err:
            self.w.banner.show_message(f"Edits autosaved in {path} could not be read ({exc}), nor moved aside "
                                       f"({err}); the file is left as it is.", "warn")
            return None
        self.w.banner.show_message(f"Edits autosaved before FaceEditor last closed could not be read ({exc}). "
                                   f"The file was kept as <b>{aside}</b>.", "warn")
        return aside

    def confirm_discard(self, question: str = "Save the session before closing?") -> bool:
        """True when the current edits may go: none unsaved, saved now, or discarded on purpose
        (Save / Discard / Cancel); False keeps them (Cancel, or a save that failed)."""
        doc = self.w.doc
        if not doc.dirty or not doc.has_face:
            return True
        r = QMessageBox.question(self.w, "Unsaved edits", question,
                                 QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if r == QMessageBox.Cancel:
            return False
        if r == QMessageBox.Save:
            try:
                return self.save_session(wait=True)
            except Exception as exc:  # noqa: BLE001 - a failed save must not lose the edits: stay open
                self.w.show_error(str(exc))
                return False
        doc.dirty = False  # discarded on purpose: nothing to offer back next time
        clear_autosave()
        return True

    def shutdown(self) -> None:
        """Stop the autosave; let exports being written finish (a half-written file helps no one)."""
        self.autosave_timer.stop()
        for writer in list(self._writers):
            writer.wait(30000)
        if self._autosave_thread is not None:
            self._autosave_thread.join(5)
        if not self.w.doc.dirty:
            clear_autosave()

    # ----------------------------------------------------------------- exports
    def _default(self, suffix: str) -> str:
        doc = self.w.doc
        stem = (doc.photo_path.stem if doc.photo_path else "face") + "_edited"
        folder = self.last_export.parent if self.last_export else (doc.photo_path.parent if doc.photo_path else Path.home())
        return str(folder / f"{stem}{suffix}")

    def export_image_dialog(self) -> None:
        path, flt = QFileDialog.getSaveFileName(self.w, "Export image", self._default(".png"),
                                                "PNG image (*.png);;JPEG image (*.jpg *.jpeg)")
        if not path:
            return
        if Path(path).suffix.lower() not in (".png", ".jpg", ".jpeg"):
            path += ".jpg" if "JPEG" in flt else ".png"
        quality = 95
        if Path(path).suffix.lower() in (".jpg", ".jpeg"):
            quality, ok = QInputDialog.getInt(self.w, "JPEG quality", "Quality (1–100):", 92, 1, 100)
            if not ok:
                return
        self.export_image(path, quality)

    def export_image(self, path, quality: int = 95, callback=None) -> None:
        """The edited photo at full resolution: rendered on the render thread, written on its own
        thread, under the progress panel (Cancel stops the render)."""
        w = self.w
        stamp, edit, loaded = w.doc.version, w.doc.resolved_edit(), w.doc.loaded
        stop = threading.Event()
        task = w.tasks.begin(f"Exporting {Path(path).name}", cancel=stop.set, show_after_ms=EXPORT_PROGRESS_AFTER_MS,
                             fraction=None)
        w.tasks.update(task, "Rendering at full resolution", None)
        w.statusBar().showMessage(f"Exporting {Path(path).name}…")

        def rendered(image) -> None:
            if stop.is_set():
                w.tasks.end(task)
                w.statusBar().showMessage("Export cancelled", 4000)
                return
            w.tasks.update(task, "Writing the file", None)
            self._run_export(lambda: save_image(path, image, quality=quality, like=loaded), callback, "image", task)

        w.submit(lambda: w.worker.full_image(stamp, edit, cancel=stop.is_set), rendered, lambda: w.tasks.end(task))

    def export_mesh_dialog(self) -> None:
        frames = {"Wavefront OBJ, head at the origin (*.obj)": "model",
                  "Wavefront OBJ, in the photo's camera frame (*.obj)": "camera"}
        path, chosen = QFileDialog.getSaveFileName(self.w, "Export textured mesh", self._default(".obj"),
                                                   ";;".join(frames))
        if path:
            self.export_mesh(path if path.lower().endswith(".obj") else path + ".obj", frame=frames.get(chosen, "model"))

    def export_mesh(self, path, callback=None, frame: str = "model") -> None:
        """The textured head as OBJ: ``frame="model"`` (default) puts the head at the origin, as 3D
        tools expect; ``"camera"`` keeps the photo's camera frame (the mesh overlays the photo)."""
        state, edit = self.w.doc.state, self.w.doc.resolved_edit()
        task = self.w.tasks.begin(f"Exporting {Path(path).name}", show_after_ms=EXPORT_PROGRESS_AFTER_MS,
                                  fraction=None)
        self._run_export(lambda: self.w.engine.export_mesh(Path(path), state, edit, frame), callback, "mesh", task)

    def export_params_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.w, "Export parameters", self._default(".json"), "JSON (*.json)")
        if path:
            self.export_params(path if path.lower().endswith(".json") else path + ".json")

    def export_params(self, path, callback=None) -> None:
        state, edit = self.w.doc.state, self.w.doc.resolved_edit()
        self._run_export(lambda: self.w.engine.export_params(Path(path), state, edit), callback, "parameters")

    def _run_export(self, job, callback, what: str, task=None) -> None:
        """Write an export on a :class:`BackgroundJob`; ``task``: its progress-panel entry, ended here."""
        w = self.w

        def done(p) -> None:
            w.tasks.end(task)
            self.last_export = Path(p)
            w.statusBar().showMessage(f"Exported {what}: {p}", 6000)
            if callback is not None:
                callback(p)

        def failed(text: str) -> None:
            w.tasks.end(task)
            w.show_error(f"Export failed: {text}")

        w.statusBar().showMessage(f"Exporting {what}…")
        writer = BackgroundJob(job)
        writer.done.connect(done)
        writer.failed.connect(failed)
        writer.cancelled.connect(lambda: w.tasks.end(task))
        writer.finished.connect(lambda: self._writers.remove(writer) if writer in self._writers else None)
        self._writers.append(writer)
        writer.start()

    # ----------------------------------------------------------------- presets
    def presets_dir(self) -> Path:
        d = user_dir() / "presets"
        d.mkdir(exist_ok=True)
        return d

    def save_preset_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.w, "Save preset", str(self.presets_dir() / "preset.json"),
                                              "Presets (*.json)")
        if path:
            self.save_preset(path)

    def save_preset(self, path) -> None:
        self.w.doc.resolved_edit().save(Path(path))
        self.w.statusBar().showMessage(f"Saved preset {path}", 5000)

    def load_preset_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.w, "Load preset", str(self.presets_dir()), "Presets (*.json)")
        if path:
            self.load_preset(path)

    def load_preset(self, path) -> None:
        try:
            params = EditParams.load(Path(path))
        except FaceEditorError as exc:
            self.w.show_error(str(exc))
            return
        notes = self.w.doc.load_preset(params, f"Preset {Path(path).stem}")
        if notes:
            self.w.statusBar().showMessage("Preset values beyond the sliders' ranges were clamped: " + ", ".join(notes),
                                           10000)
