"""The campaign store: one SQLite file holding Ax's SQL storage plus archopt's own tables.

Ax keeps experiments, trials, data and generation strategies in its tables. archopt adds two
tables in the same file (all of archopt's SQL is in this module):
``archopt_campaigns`` (the :class:`~optim.core.problem.CampaignSpec`, the law posterior as an
ArviZ netCDF blob so a campaign never depends on a cache elsewhere) and ``archopt_trials``
(per-trial predictions made at proposal time, run names).

The contract (what callers may rely on):

* **Writes are atomic and serialised.** :meth:`CampaignStore.write` takes an exclusive file lock
  (``<store>.lock``; waits at most :func:`lock_timeout` seconds, then a one-line
  :class:`StoreError`), copies the store to a temporary file beside it, yields that copy, and on
  success ``fsync`` s it and ``os.replace`` s it over the store. A crash or kill at any point
  leaves either the old or the new file; any error leaves the store byte-identical. Temporary
  copies left by a killed writer are removed by the next writer (which holds the lock).
* **The store keeps its identity.** A symlinked store path is resolved: the link stays a link
  and its target is replaced. The replaced file keeps the old file's permission bits (and group,
  where allowed), so a store shared by a team stays shared. A store without write permission (or
  an immutable one) is refused with a one-line error, never silently written.
* **Reads need no lock and write nothing beside the store.** :meth:`CampaignStore.read` copies
  the store into a private temporary folder (writers replace the file atomically, so an open
  file is always one complete version) and yields the copy: a store in a read-only folder can be
  read, and Ax (which writes to the database it loads) never touches the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from models.errors import ArchoptError
from models.home import archopt_home

from .ax_adapter import create_ax_tables, dispose_engine

__all__ = [
    "default_store_path",
    "CampaignStore",
    "StoreError",
    "STORE_FILENAME",
    "Snapshot",
    "CampaignRow",
    "lock_timeout",
    "LOCK_TIMEOUT_ENV",
]

STORE_FILENAME = "campaigns.sqlite"
#: Environment variable: seconds a writer waits for the store lock (default 60).
LOCK_TIMEOUT_ENV = "ARCHOPT_LOCK_TIMEOUT"
_DEFAULT_LOCK_TIMEOUT_S = 60.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Largest JSON text accepted from a store row (a spec or a trial payload is a few kB).
_MAX_ROW_JSON = 4 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS archopt_campaigns (
    name TEXT PRIMARY KEY,
    spec_json TEXT NOT NULL,
    prior_netcdf BLOB,
    info_json TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS archopt_trials (
    campaign TEXT NOT NULL,
    trial INTEGER NOT NULL,
    payload_json TEXT NOT NULL,
    PRIMARY KEY (campaign, trial)
);
"""


class StoreError(ArchoptError):
    """The store file is missing, corrupt, locked, read-only or not an archopt store."""


def default_store_path() -> Path:
    """``$ARCHOPT_HOME/campaigns.sqlite``."""
    return archopt_home() / STORE_FILENAME


def lock_timeout() -> float:
    """Seconds a writer waits for the lock (``$ARCHOPT_LOCK_TIMEOUT``, default 60)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return _DEFAULT_LOCK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise StoreError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= 86400:
        raise StoreError(f"{LOCK_TIMEOUT_ENV}={raw!r} must be between 0 and 86400 seconds")
    return value


def _os_message(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class CampaignStore:
    """A campaign store file (default :func:`default_store_path`); see the module docstring.

    Args:
        path: the SQLite file; created on the first write. A symlink is followed.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()

    def __repr__(self) -> str:
        return f"CampaignStore({str(self.path)!r})"

    @property
    def target(self) -> Path:
        """The real file behind :attr:`path` (symlinks resolved)."""
        return Path(os.path.realpath(self.path))

    @property
    def lock_path(self) -> Path:
        target = self.target
        return target.with_name(target.name + ".lock")

    # ---- validation ----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.target.is_file()

    def check(self, path: Path | None = None) -> None:
        """Raise :class:`StoreError` unless ``path`` (default: the store) is a readable store."""
        path = path or self.target
        shown = self.path if path == self.target else path
        try:
            with open(path, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(f"cannot read campaign store {shown}: {_os_message(exc)}") from None
        if head != _SQLITE_MAGIC:
            raise StoreError(f"campaign store {shown} is corrupt (not an SQLite file)")
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                ok = con.execute("PRAGMA quick_check").fetchone()[0]
                tables = {
                    r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise StoreError(f"campaign store {shown} is corrupt ({exc})") from None
        if ok != "ok":
            raise StoreError(f"campaign store {shown} is corrupt (integrity check: {ok})")
        if "archopt_campaigns" not in tables:
            raise StoreError(f"{shown} is not an archopt campaign store")

    # ---- transactions --------------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[Path]:
        """Yield a private copy of the store (in a temporary folder, deleted afterwards)."""
        if not self.exists():
            raise StoreError(f"no campaign store at {self.path} (create a campaign first)")
        tmp_dir = Path(tempfile.mkdtemp(prefix="archopt-read-"))
        copy = tmp_dir / STORE_FILENAME
        try:
            try:
                shutil.copyfile(self.target, copy)
            except OSError as exc:
                raise StoreError(
                    f"cannot read campaign store {self.path}: {_os_message(exc)}"
                ) from None
            self._check_copy(copy)
            yield copy
        finally:
            dispose_engine()
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def _check_copy(self, copy: Path) -> None:
        try:
            self.check(copy)
        except StoreError as exc:  # name the store, not the private copy
            raise StoreError(str(exc).replace(str(copy), str(self.path))) from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Path]:
        """Lock, copy the store to a temporary file, yield it; replace the store when the block
        succeeds, discard the copy when it raises (the store is then untouched)."""
        target = self.target
        self._check_writable(target)
        lock = self._lock(target)
        tmp: Path | None = None
        try:
            self._remove_stale_copies(target)
            try:
                fd, tmp_name = tempfile.mkstemp(
                    dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
                )
            except OSError as exc:
                raise StoreError(
                    f"cannot write beside campaign store {self.path}: {_os_message(exc)}"
                ) from None
            os.close(fd)
            tmp = Path(tmp_name)
            if target.is_file():
                self.check(target)
                shutil.copyfile(target, tmp)
                _copy_identity(target, tmp)
            else:
                tmp.unlink()
                _create(tmp)
                os.chmod(tmp, 0o666 & ~_umask())
            yield tmp
            dispose_engine()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise StoreError(
                    f"cannot replace campaign store {self.path}: "
                    f"{_os_message(exc)}; nothing was written"
                ) from None
            _fsync_dir(target.parent)
        finally:
            dispose_engine()
            if tmp is not None and tmp.exists():
                tmp.unlink()
            lock.release()

    def _check_writable(self, target: Path) -> None:
        folder = target.parent
        if target.exists() and not target.is_file():
            raise StoreError(f"campaign store {self.path} is not a regular file")
        if target.is_file():
            # The mode bits too: a store made read-only on purpose (chmod a-w) stays unwritten
            # even for root, whom os.access lets through.
            if not os.access(target, os.W_OK) or not os.stat(target).st_mode & 0o222:
                raise StoreError(f"campaign store {self.path} is read-only; nothing was written")
            flags = getattr(os.stat(target), "st_flags", 0)
            if flags & (getattr(stat, "UF_IMMUTABLE", 0) | getattr(stat, "SF_IMMUTABLE", 0)):
                raise StoreError(f"campaign store {self.path} is immutable; nothing was written")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder of campaign store {self.path}: {_os_message(exc)}"
            ) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(
                f"cannot write campaign store {self.path}: its folder {folder} is not writable"
            )

    def _lock(self, target: Path) -> Any:
        from filelock import FileLock, Timeout

        timeout = lock_timeout()
        lock = FileLock(str(target.with_name(target.name + ".lock")), timeout=timeout)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(
                f"campaign store {self.path} is busy: another archopt process has "
                f"held its lock for over {timeout:g} s (set {LOCK_TIMEOUT_ENV} to "
                "wait longer)"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot lock campaign store {self.path}: {_os_message(exc)}"
            ) from None
        return lock

    def _remove_stale_copies(self, target: Path) -> None:
        """Temporary copies of killed writers (only called with the lock held)."""
        for pattern in (f".{target.name}.*.tmp", f".{target.name}.*.read"):
            for stale in target.parent.glob(pattern):
                with contextlib.suppress(OSError):
                    stale.unlink()

    # ---- archopt tables ------------------------------------------------------------------
    def list_names(self) -> list[str]:
        """Campaign names in the store (empty when there is no store yet)."""
        if not self.exists():
            return []
        with self.read() as path:
            return Snapshot(path, self).names()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _copy_identity(source: Path, dest: Path) -> None:
    """Give ``dest`` the permission bits (and, where allowed, the group) of ``source``."""
    st = os.stat(source)
    os.chmod(dest, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        os.chown(dest, -1, st.st_gid)


def _fsync_dir(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _create(path: Path) -> None:
    """A new store: Ax's tables and archopt's."""
    create_ax_tables(path)
    with contextlib.closing(sqlite3.connect(str(path))) as con:
        con.executescript(_SCHEMA)
        con.commit()


def connect(path: Path) -> contextlib.closing:
    """A closing sqlite3 connection to the snapshot ``path`` (commit explicitly)."""
    try:
        con = sqlite3.connect(str(path), timeout=60.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open campaign store {path}: {exc}") from None
    return contextlib.closing(con)


@dataclass
class CampaignRow:
    """archopt's row of one campaign: the spec as a dict, the prior blob, free-form info."""

    name: str
    spec: dict[str, Any]
    prior_blob: bytes | None
    info: dict[str, Any]
    created_at: float


class Snapshot:
    """archopt's tables in one snapshot of the store (the file :meth:`CampaignStore.read` or
    :meth:`CampaignStore.write` yields). Corrupt rows raise :class:`StoreError`."""

    def __init__(self, path: Path, store: CampaignStore) -> None:
        self.path = path
        self.store = store

    def _json(self, text: Any, what: str) -> Any:
        if not isinstance(text, str) or len(text) > _MAX_ROW_JSON:
            raise StoreError(f"campaign store {self.store.path}: {what} is not JSON text")
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise StoreError(
                f"campaign store {self.store.path}: {what} is corrupt ({type(exc).__name__})"
            ) from None

    def names(self) -> list[str]:
        with connect(self.path) as con:
            return [r[0] for r in con.execute("SELECT name FROM archopt_campaigns ORDER BY name")]

    def has(self, name: str) -> bool:
        with connect(self.path) as con:
            return (
                con.execute("SELECT 1 FROM archopt_campaigns WHERE name = ?", (name,)).fetchone()
                is not None
            )

    def campaign(self, name: str) -> CampaignRow | None:
        """The campaign's row, or ``None`` when there is no campaign ``name``."""
        with connect(self.path) as con:
            row = con.execute(
                "SELECT spec_json, prior_netcdf, info_json, created_at FROM "
                "archopt_campaigns WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        spec = self._json(row[0], f"the spec of campaign {name!r}")
        info = self._json(row[2] or "{}", f"the info of campaign {name!r}")
        if not isinstance(spec, dict) or not isinstance(info, dict):
            raise StoreError(
                f"campaign store {self.store.path}: the row of campaign {name!r} "
                "is corrupt (not a JSON object)"
            )
        blob = row[1]
        if blob is not None and not isinstance(blob, bytes):
            raise StoreError(
                f"campaign store {self.store.path}: the prior of campaign {name!r} is corrupt"
            )
        return CampaignRow(name, spec, blob, info, float(row[3] or 0.0))

    def trial_meta(self, name: str) -> dict[int, dict[str, Any]]:
        """Trial index -> archopt's payload for campaign ``name``."""
        with connect(self.path) as con:
            rows = con.execute(
                "SELECT trial, payload_json FROM archopt_trials WHERE campaign = ?", (name,)
            ).fetchall()
        out = {}
        for trial, text in rows:
            payload = self._json(text, f"trial {trial} of campaign {name!r}")
            if not isinstance(payload, dict):
                raise StoreError(
                    f"campaign store {self.store.path}: trial {trial} of campaign "
                    f"{name!r} is corrupt (not a JSON object)"
                )
            out[int(trial)] = payload
        return out

    def insert_campaign(
        self, name: str, spec: dict[str, Any], prior_blob: bytes, info: dict[str, Any]
    ) -> None:
        with connect(self.path) as con:
            con.execute(
                "INSERT INTO archopt_campaigns VALUES (?,?,?,?,?)",
                (
                    name,
                    json.dumps(spec, allow_nan=False),
                    prior_blob,
                    json.dumps(info, allow_nan=False),
                    time.time(),
                ),
            )
            con.commit()

    def put_trial_meta(self, name: str, payloads: dict[int, dict[str, Any]]) -> None:
        """Insert or replace the payloads of trials of campaign ``name``."""
        with connect(self.path) as con:
            for trial, payload in payloads.items():
                con.execute(
                    "INSERT OR REPLACE INTO archopt_trials VALUES (?,?,?)",
                    (name, int(trial), json.dumps(payload, allow_nan=False)),
                )
            con.commit()

    def delete_campaign(self, name: str) -> None:
        with connect(self.path) as con:
            con.execute("DELETE FROM archopt_campaigns WHERE name = ?", (name,))
            con.execute("DELETE FROM archopt_trials WHERE campaign = ?", (name,))
            con.commit()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
