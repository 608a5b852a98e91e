"""Shared pytest fixtures: research data location, artifact folder, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from faceeditor.core.paths import REPO_DIR, shared_data_dir

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or $FACEEDITOR_DATA); tests needing it skip with a message when absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("research data not found at ../shared/data (set FACEEDITOR_DATA)")
    return d


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save images worth looking at (screenshots, overlays): ./test-artifacts."""
    d = REPO_DIR / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


# ---------------------------------------------------------------- window tests (Qt and torch imported lazily)
@pytest.fixture(scope="module")
def app():
    """The QApplication of a window test module."""
    from faceeditor.app.main import create_application

    return create_application()


@pytest.fixture(scope="module")
def engine():
    """One window engine (1 torch thread) per test module; the thread count is restored after."""
    from faceeditor.app.engine import Engine

    before = torch.get_num_threads()
    yield Engine(threads=1)
    torch.set_num_threads(before)
