"""Where archopt keeps its state: ``$ARCHOPT_HOME`` (default ``~/.archopt``).

Readers call ``archopt_home(create=False)`` (nothing is created just to look for a file);
writers call :func:`archopt_home` and :func:`ensure_writable_folder` before writing, so a home
that is a file, cannot be created, or is read-only gives one line naming the folder instead of
a traceback from deep inside a write.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import files
from .errors import ArchoptError

__all__ = ["archopt_home", "ensure_folder", "ensure_writable_folder", "HomeError", "HOME_HINT"]

#: What to do about an unusable home, appended to messages.
HOME_HINT = "set ARCHOPT_HOME to a writable folder"


class HomeError(ArchoptError):
    """``$ARCHOPT_HOME`` (or another state folder) is a file, cannot be created, or is read-only."""


def _home_path() -> Path:
    return Path(os.environ.get("ARCHOPT_HOME") or Path.home() / ".archopt").expanduser()


def archopt_home(create: bool = True) -> Path:
    """The state folder (campaign store, measurement cache, calibrations).

    Args:
        create: create the folder when missing (writers); ``False`` for readers.

    Raises:
        HomeError: the path exists and is not a folder, or it cannot be created.
    """
    home = _home_path()
    if create:
        ensure_folder(home, "ARCHOPT_HOME", HOME_HINT)
    elif os.path.exists(home) and not os.path.isdir(home):
        raise HomeError(f"ARCHOPT_HOME {home} is a file, not a folder; {HOME_HINT}")
    return home


def ensure_folder(path: Path, what: str, hint: str = "") -> Path:
    """:func:`models.files.ensure_folder` raising :class:`HomeError`."""
    return files.ensure_folder(path, what, hint, HomeError)


def ensure_writable_folder(path: Path, what: str, hint: str = "") -> Path:
    """:func:`models.files.ensure_writable_folder` raising :class:`HomeError`."""
    return files.ensure_writable_folder(path, what, hint, HomeError)
