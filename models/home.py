"""Where archopt keeps its state: ``$ARCHOPT_HOME`` (default ``~/.archopt``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["archopt_home"]


def archopt_home() -> Path:
    """The state folder (campaign store, measurement cache, calibrations); created on demand."""
    home = Path(os.environ.get("ARCHOPT_HOME") or Path.home() / ".archopt").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
