"""Edit ▸ Preferences: how many CPU threads fit and render (kept in ``settings.ini``, see
:mod:`faceeditor.app.prefs`). Automatic takes the cores other programs leave idle when the
editor starts: on a busy machine one thread is much faster than two that wait for each other."""

from __future__ import annotations

import os

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QVBoxLayout

from faceeditor.app import prefs


class PreferencesDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        cores = os.cpu_count() or 1
        self.threads = QComboBox()
        self.threads.addItem(f"Automatic ({prefs.idle_cores()} of {cores} cores idle now)", 0)
        for n in range(1, cores + 1):
            self.threads.addItem(f"{n} thread{'s' if n > 1 else ''}", n)
        self.threads.setCurrentIndex(max(0, self.threads.findData(prefs.thread_setting())))
        self.threads.setToolTip("CPU threads for fitting and rendering")
        note = QLabel(
            "Automatic uses the cores that other programs leave idle (from the load average).\n"
            "The change applies at once and is remembered."
        )
        note.setObjectName("hint")
        form = QFormLayout()
        form.addRow("CPU threads:", self.threads)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(note)
        lay.addWidget(buttons)

    def chosen_threads(self) -> int:
        """The setting chosen: 0 = automatic."""
        return int(self.threads.currentData())


def apply_threads(window, setting: int) -> None:
    """Save ``setting`` (0 = automatic) and give the engine that many threads now (on its render thread)."""
    prefs.set_thread_setting(setting)
    n = setting or prefs.idle_cores()
    window.submit(lambda: window.engine.set_threads(n), window.lbl_device.setText)
    window.statusBar().showMessage(f"Fitting and rendering now use {n} CPU thread{'s' if n > 1 else ''}", 5000)


def edit_preferences(window) -> None:
    dialog = PreferencesDialog(window)
    if dialog.exec() == QDialog.Accepted:
        apply_threads(window, dialog.chosen_threads())
