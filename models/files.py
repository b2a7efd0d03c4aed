"""User files: bounded readers, and checks of folders and outputs before archopt writes.

Every file a user hands archopt (``--hf-config``, ``$ARCHOPT_HOME/hardware.json``,
``calibrations.json``, run tables) goes through :func:`read_bytes`, which

* reads at most ``max_bytes`` (``/dev/zero`` or a mistaken multi-GB file fails at once instead
  of growing memory without bound),
* turns every ``OSError`` (missing, a folder, permission) into a one-line
  :class:`~models.errors.ArchoptError` naming the file.

:func:`read_text` adds strict UTF-8 decoding (binary files are refused) and :func:`read_json`
adds strict JSON: no ``Infinity``/``NaN`` literals, no number that overflows a float
(``1e400``), nesting at most :data:`JSON_MAX_DEPTH` levels, and a required top-level type.

Before an expensive computation whose result goes to a user path, :func:`prepare_output_file`
checks the path can be written (a folder in the way, a parent that is a file, a read-only
folder: one line, before any work), and :func:`write_errors` turns an ``OSError`` during the
write itself into one line.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import ArchoptError

__all__ = [
    "write_atomic",
    "JSON_MAX_BYTES",
    "JSON_MAX_DEPTH",
    "read_bytes",
    "read_text",
    "read_json",
    "parse_json",
    "format_bytes",
    "ensure_folder",
    "ensure_writable_folder",
    "prepare_output_file",
    "write_errors",
]

#: Largest JSON file read (1 MiB). A ``config.json`` or ``hardware.json`` is a few kB.
JSON_MAX_BYTES = 1 << 20
#: Deepest nesting of objects/arrays accepted in a JSON file (real configs nest 2-4 levels).
JSON_MAX_DEPTH = 32


def format_bytes(n: int) -> str:
    """``1048576 -> "1 MiB"``: sizes in binary units for messages."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_bytes(
    path: str | Path, *, max_bytes: int, what: str, error: type[ArchoptError] = ArchoptError
) -> bytes:
    """The bytes of ``path``, refusing files larger than ``max_bytes``.

    Args:
        path: a file (regular file, device or pipe; never more than ``max_bytes + 1`` bytes
            are read from it).
        max_bytes: the size cap.
        what: what the file is, for messages (``"hardware file"``).
        error: the :class:`ArchoptError` subclass to raise.

    Raises:
        error: missing, a folder, unreadable, or larger than ``max_bytes`` (one line, naming
            ``path``).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(21, "Is a directory")
            # A regular file known to be too large is not read at all.
            too_large = stat.S_ISREG(info.st_mode) and info.st_size > max_bytes
            data = b"" if too_large else fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {_os_reason(exc)}") from None
    if too_large or len(data) > max_bytes:
        raise error(f"{what} {path} is larger than {format_bytes(max_bytes)}; refusing to read it")
    return data


def read_text(
    path: str | Path, *, max_bytes: int, what: str, error: type[ArchoptError] = ArchoptError
) -> str:
    """:func:`read_bytes` decoded as strict UTF-8 (a leading BOM is dropped).

    Raises:
        error: as :func:`read_bytes`, or the file is not UTF-8 text (names the byte offset).
    """
    data = read_bytes(path, max_bytes=max_bytes, what=what, error=error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{what} {path} is not UTF-8 text (invalid byte at offset {exc.start}; a binary file?)"
        ) from None


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not allowed (numbers must be finite)")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token} is out of range (numbers must be finite)")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), iteratively."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


# How a message names a JSON value's Python type (anything else is "a number").
_JSON_KINDS: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    type(None): "null",
}


def parse_json(
    text: str,
    *,
    where: str,
    top: type | tuple[type, ...] = dict,
    max_depth: int = JSON_MAX_DEPTH,
    error: type[ArchoptError] = ArchoptError,
) -> Any:
    """Strict JSON: finite numbers only, at most ``max_depth`` levels, top level of type ``top``.

    Args:
        text: the document.
        where: what to call it in messages (``"hardware file /x/hardware.json"``).
        top: accepted type(s) of the top-level value (``dict`` for an object, ``list``).

    Raises:
        error: invalid JSON (line and column), ``Infinity``/``NaN``/overflowing numbers, too deep,
            or the wrong top-level type.
    """
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise error(
            f"cannot read {where}: not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise error(f"{where} nests deeper than {max_depth} levels") from None
    except ValueError as exc:  # our parse hooks, or an integer with too many digits
        raise error(f"{where}: {' '.join(str(exc).split())}") from None
    if _depth(value) > max_depth:
        raise error(f"{where} nests deeper than {max_depth} levels")
    tops = top if isinstance(top, tuple) else (top,)
    if not isinstance(value, tops):
        names = " or ".join(_JSON_KINDS.get(t, t.__name__) for t in tops)
        got = _JSON_KINDS.get(type(value), "a number")
        raise error(f"{where}: expected {names} at the top level, got {got}")
    return value


def read_json(
    path: str | Path,
    *,
    what: str,
    top: type | tuple[type, ...] = dict,
    max_bytes: int = JSON_MAX_BYTES,
    max_depth: int = JSON_MAX_DEPTH,
    error: type[ArchoptError] = ArchoptError,
) -> Any:
    """Read a JSON file with a size cap, strict UTF-8 and :func:`parse_json`'s checks.

    Raises:
        error: one line naming ``path`` for every way the file can be wrong.
    """
    text = read_text(path, max_bytes=max_bytes, what=what, error=error)
    return parse_json(text, where=f"{what} {path}", top=top, max_depth=max_depth, error=error)


# ---- writing --------------------------------------------------------------------------------------
def _with_hint(message: str, hint: str) -> str:
    return f"{message}; {hint}" if hint else message


def ensure_folder(
    path: Path, what: str, hint: str = "", error: type[ArchoptError] = ArchoptError
) -> Path:
    """Create ``path`` (and parents) if missing; ``hint`` (what to do) ends the messages.

    Raises:
        error: ``path`` is a file, a file is in the way, or the folder cannot be created.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise error(_with_hint(f"{what} {path} is a file, not a folder", hint))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise error(
            _with_hint(f"cannot create {what} {path}: a file is in the way of that path", hint)
        ) from None
    except OSError as exc:
        raise error(
            _with_hint(f"cannot create {what} {path}: {exc.strerror or exc}", hint)
        ) from None
    return path


def ensure_writable_folder(
    path: Path, what: str, hint: str = "", error: type[ArchoptError] = ArchoptError
) -> Path:
    """Create ``path`` if missing and check a file can be created in it (by creating one).

    A real probe file, not ``os.access``: root ignores mode bits but not read-only mounts or
    immutable folders, and ``os.access`` cannot tell.

    Raises:
        error: the folder cannot be created or written (one line naming it).
    """
    ensure_folder(path, what, hint, error)
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".archopt-write-probe-"):
            pass
    except OSError as exc:
        raise error(
            _with_hint(f"{what} {path} is not writable ({exc.strerror or exc})", hint)
        ) from None
    return path


def prepare_output_file(
    path: str | Path, *, what: str, error: type[ArchoptError] = ArchoptError
) -> Path:
    """Check, before any work, that a file can be written at ``path``; creates its folder.

    Raises:
        error: ``path`` is a folder, its parent is a file or cannot be created, or the parent
            folder is not writable.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise error(f"{what} {path} is a folder, not a file")
    ensure_writable_folder(path.parent, f"folder of {what}", error=error)
    return path


@contextmanager
def write_errors(
    path: str | Path, *, what: str, error: type[ArchoptError] = ArchoptError
) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into one line naming it."""
    try:
        yield
    except OSError as exc:
        raise error(f"cannot write {what} {path}: {exc.strerror or exc}") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``: readers
    see the old file or the new one, never a part; a link at ``path`` is replaced, never
    followed; the temporary file is removed when the write fails (the ``OSError`` propagates)."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
