"""Where archopt keeps its state: ``$ARCHOPT_HOME`` (default ``~/.archopt``).

Readers call ``archopt_home(create=False)`` (nothing is created just to look for a file);
writers call :func:`archopt_home` and :func:`ensure_writable_folder` before writing, so a home
that is a file, cannot be created, or is read-only gives one line naming the folder instead of
a traceback from deep inside a write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ArchoptError

__all__ = ["archopt_home", "ensure_folder", "ensure_writable_folder", "HomeError", "HOME_HINT"]

#: What to do about an unusable home, appended to messages.
HOME_HINT = "set ARCHOPT_HOME to a writable folder"


class HomeError(ArchoptError):
    """``$ARCHOPT_HOME`` (or another state folder) is a file, cannot be created, or is read-only."""


def _home_path() -> Path:
    return Path(os.environ.get("ARCHOPT_HOME") or Path.home() / ".archopt").expanduser()


def _check_folder(path: Path, what: str, hint: str = "") -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise HomeError(_with_hint(f"{what} {path} is a file, not a folder", hint))


def archopt_home(create: bool = True) -> Path:
    """The state folder (campaign store, measurement cache, calibrations).

    Args:
        create: create the folder when missing (writers); ``False`` for readers.

    Raises:
        HomeError: the path exists and is not a folder, or it cannot be created.
    """
    home = _home_path()
    _check_folder(home, "ARCHOPT_HOME", HOME_HINT)
    if create:
        ensure_folder(home, "ARCHOPT_HOME", hint=HOME_HINT)
    return home


def _with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


def ensure_folder(path: Path, what: str, hint: str = "") -> Path:
    """Create ``path`` (and parents) if missing; ``hint`` (what to do) ends the messages.

    Raises:
        HomeError: a file is in the way or the folder cannot be created (names ``what``/``path``).
    """
    _check_folder(path, what, hint)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise HomeError(_with_hint(f"cannot create {what} {path}: a file is in the way of that "
                                   f"path", hint)) from None
    except OSError as exc:
        raise HomeError(_with_hint(f"cannot create {what} {path}: {exc.strerror or exc}",
                                   hint)) from None
    return path


def ensure_writable_folder(path: Path, what: str, hint: str = "") -> Path:
    """Create ``path`` if missing and check a file can be created in it (by creating one).

    A real probe file, not ``os.access``: root ignores mode bits but not read-only mounts or
    immutable folders, and ``os.access`` cannot tell.

    Raises:
        HomeError: the folder cannot be created or written (one line naming it).
    """
    ensure_folder(path, what, hint)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".archopt-write-probe-"):
            pass
    except OSError as exc:
        raise HomeError(_with_hint(f"{what} {path} is not writable ({exc.strerror or exc})",
                                   hint)) from None
    return path
