"""The campaign store: one SQLite file holding Ax's SQL storage plus archopt's own tables.

Ax keeps experiments, trials, data and generation strategies in its tables (Ax SQL storage,
``StorageConfig(url="sqlite:///...")``). archopt adds two tables in the same file:
``archopt_campaigns`` (the :class:`~optim.core.problem.CampaignSpec`, the law posterior as an ArviZ
netCDF blob so a campaign never depends on a cache elsewhere) and ``archopt_trials`` (per-trial
predictions made at proposal time, run names).

Every change is a transaction on a *copy*: :meth:`CampaignStore.write` takes an exclusive file
lock, copies the store to a temporary file beside it, yields that copy's URL, and on success
``fsync`` s and ``os.replace`` s it over the store. A crash or kill at any point leaves either
the old or the new file, never a half-written one, and any error (bad input) leaves the store
byte-identical. Ax writes several commits per operation; the copy makes them one atomic step.
Reads copy the store under the same lock and work on that private snapshot (Ax writes to
the database it loads from, and the store must not change on a read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Iterator

from models.errors import ArchoptError
from models.home import archopt_home

__all__ = ["default_store_path", "CampaignStore", "StoreError", "STORE_FILENAME"]

STORE_FILENAME = "campaigns.sqlite"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOCK_TIMEOUT_S = 600.0

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
    """The store file is missing, corrupt or not an archopt store."""


def default_store_path() -> Path:
    """``$ARCHOPT_HOME/campaigns.sqlite``."""
    return archopt_home() / STORE_FILENAME


def _quiet_ax_logs() -> None:
    """Ax logs INFO/WARNING lines on every load and fit; archopt reports its own state."""
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # Ax logs an INFO line while it is imported
    try:
        import ax  # noqa: F401  (attaches Ax's stream handler to the "ax" logger)
        import ax.storage.sqa_store.with_db_settings_base  # noqa: F401
    finally:
        logging.disable(previous)

    for handler in logging.getLogger("ax").handlers:
        handler.setLevel(logging.ERROR)
    logging.getLogger("ax").setLevel(logging.ERROR)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("ax."):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from sqlalchemy.exc import SAWarning

        warnings.filterwarnings("ignore", category=SAWarning)
    except ImportError:  # pragma: no cover
        pass


class CampaignStore:
    """A campaign store file (default :func:`default_store_path`).

    Args:
        path: the SQLite file; created on the first write.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"CampaignStore({str(self.path)!r})"

    # ---- validation ----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_file()

    def check(self, path: Path | None = None) -> None:
        """Raise :class:`StoreError` unless ``path`` (default: the store) is a readable store."""
        path = path or self.path
        try:
            with open(path, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except OSError as exc:
            raise StoreError(f"cannot read campaign store {path}: {exc.strerror}") from None
        if head != _SQLITE_MAGIC:
            raise StoreError(f"campaign store {path} is corrupt (not an SQLite file)")
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                ok = con.execute("PRAGMA quick_check").fetchone()[0]
                tables = {r[0] for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise StoreError(f"campaign store {path} is corrupt ({exc})") from None
        if ok != "ok":
            raise StoreError(f"campaign store {path} is corrupt (integrity check: {ok})")
        if "archopt_campaigns" not in tables:
            raise StoreError(f"{path} is not an archopt campaign store")

    # ---- transactions --------------------------------------------------------------------
    def _lock(self):
        from filelock import FileLock, Timeout

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path), timeout=_LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise StoreError(f"campaign store {self.path} is locked by another process") from None
        return lock

    @contextlib.contextmanager
    def read(self) -> Iterator[Path]:
        """Yield a private snapshot of the store (taken under the lock, deleted afterwards).

        Ax's ``load_from_database`` writes to the database it loads from, so reads must never
        touch the store itself; the snapshot also isolates a read from concurrent writers.
        """
        if not self.exists():
            raise StoreError(f"no campaign store at {self.path} (create a campaign first)")
        fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".read")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            lock = self._lock()
            try:
                self.check()
                shutil.copyfile(self.path, tmp)
            finally:
                lock.release()
            yield tmp
        finally:
            _dispose_ax_engine()
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def write(self) -> Iterator[Path]:
        """Lock, copy the store to a temp file, yield it; replace the store when the block
        succeeds, discard the copy when it raises (the store is then untouched)."""
        lock = self._lock()
        fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.",
                                        suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if self.exists():
                self.check()
                shutil.copyfile(self.path, tmp)
            else:
                tmp.unlink()
                _create(tmp)
            yield tmp
            _dispose_ax_engine()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            _dispose_ax_engine()
            if tmp.exists():
                tmp.unlink()
            lock.release()

    # ---- archopt tables ------------------------------------------------------------------
    def list_names(self) -> list[str]:
        """Campaign names in the store (empty when there is no store yet)."""
        if not self.exists():
            return []
        with self.read() as path, _connect(path) as con:
            return [r[0] for r in con.execute("SELECT name FROM archopt_campaigns ORDER BY name")]


def _connect(path: Path) -> contextlib.closing:
    try:
        con = sqlite3.connect(str(path), timeout=60.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open campaign store {path}: {exc}") from None
    return contextlib.closing(con)


def connect(path: Path) -> contextlib.closing:
    """A closing sqlite3 connection to ``path`` (commit explicitly)."""
    return _connect(path)


def _create(path: Path) -> None:
    """A new store: Ax's tables and archopt's."""
    with ax_session(path):
        from ax.storage.sqa_store.db import create_all_tables, get_engine

        create_all_tables(get_engine())
    with _connect(path) as con:
        con.executescript(_SCHEMA)
        con.commit()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


@contextlib.contextmanager
def ax_session(path: Path) -> Iterator[str]:
    """Point Ax's (global) SQL engine at ``path`` for the block; yields the URL."""
    _quiet_ax_logs()
    from ax.storage.sqa_store.db import init_engine_and_session_factory

    url = sqlite_url(path)
    init_engine_and_session_factory(url=url, force_init=True)
    _quiet_ax_logs()
    try:
        yield url
    finally:
        _dispose_ax_engine()


def _dispose_ax_engine() -> None:
    """Close Ax's pooled connections (the file is about to be replaced or read elsewhere)."""
    import sys

    db = sys.modules.get("ax.storage.sqa_store.db")
    if db is None:  # Ax never imported: nothing is open
        return
    if db.SESSION_FACTORY is not None:
        try:
            db.SESSION_FACTORY.remove()
            db._bound_engine(db.SESSION_FACTORY).dispose()
        except Exception:  # pragma: no cover - best effort
            pass
