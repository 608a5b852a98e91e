"""Where FaceEditor finds its shipped resources, the shared research data and the sample photo."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # faceeditor/
REPO_DIR = PACKAGE_DIR.parent


def resources_dir() -> Path:
    """Shipped models and checkpoints (``resources/`` beside the package, or $FACEEDITOR_RESOURCES)."""
    env = os.environ.get("FACEEDITOR_RESOURCES")
    return Path(env) if env else REPO_DIR / "resources"


def shared_data_dir() -> Path | None:
    """Research data for training/eval/tests: $FACEEDITOR_DATA or ``../shared/data``; None if absent."""
    env = os.environ.get("FACEEDITOR_DATA")
    cand = Path(env) if env else REPO_DIR.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def sample_image_path() -> Path:
    """The embedded sample portrait: scikit-image's astronaut photo, read from the installed package."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed; it carries the sample portrait")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png"
    if not path.is_file():
        raise FileNotFoundError(f"sample portrait missing from scikit-image: {path}")
    return path


def user_dir() -> Path:
    """Per-user state (recent files, autosaved sessions): $FACEEDITOR_HOME or ~/.local/share/faceeditor."""
    env = os.environ.get("FACEEDITOR_HOME")
    base = Path(env) if env else Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "faceeditor"
    base.mkdir(parents=True, exist_ok=True)
    return base
