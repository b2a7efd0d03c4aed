"""Test-wide isolation: every test session gets its own ARCHOPT_HOME."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="archopt-test-home-")
os.environ["ARCHOPT_HOME"] = _HOME

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "surrogate" / "data"


@pytest.fixture
def archopt_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty ARCHOPT_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ARCHOPT_HOME", str(home))
    return home
