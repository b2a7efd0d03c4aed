"""The embedded campaign store: one SQLite file (the default, ``$ARCHOPT_HOME/campaigns.sqlite``).

The file holds Ax's SQL tables and archopt's (:mod:`.snapshot` owns the SQL). The contract
(what callers may rely on):

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

:meth:`CampaignStore.transaction` (the :class:`~optim.campaign.storage.Store` interface) runs one
:func:`~optim.campaign.snapshot.transaction` on the copy a read or a write yields.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from models.home import archopt_home

from .snapshot import CampaignRow, Snapshot, transaction
from .sql_store import make_engine
from .storage import LOCK_TIMEOUT_ENV, StoreError, lock_timeout

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
_SQLITE_MAGIC = b"SQLite format 3\x00"


def default_store_path() -> Path:
    """``$ARCHOPT_HOME/campaigns.sqlite``."""
    return archopt_home() / STORE_FILENAME


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
    def location(self) -> str:
        return str(self.path)

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
    def transaction(self, *, write: bool) -> Iterator[Snapshot]:
        """One transaction on a copy of the store (:meth:`write` or :meth:`read`): a write
        replaces the store when the block succeeds; anything else leaves it untouched."""
        with self.write() if write else self.read() as path:
            with _sql_transaction(path, self.location, write=write) as snapshot:
                yield snapshot

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
                with _sql_transaction(tmp, self.location, write=True):
                    pass  # a new store: Ax's tables and archopt's
                os.chmod(tmp, 0o666 & ~_umask())
            yield tmp
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
        with self.transaction(write=False) as snapshot:
            return snapshot.names()


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite file ``path`` (absolute)."""
    return f"sqlite:///{Path(path).resolve()}"


@contextlib.contextmanager
def _sql_transaction(path: Path, location: str, *, write: bool) -> Iterator[Snapshot]:
    """A :func:`~optim.campaign.snapshot.transaction` on the SQLite file ``path`` (a private
    copy: the file lock, not SQLite's, serialises writers)."""
    url = sqlite_url(path)
    engine = make_engine(make_url(url))
    try:
        with engine.connect() as conn:
            try:
                with transaction(conn, location, url, write=write) as snapshot:
                    yield snapshot
            except DBAPIError as exc:
                reason = " ".join(str(exc.orig).split())[:300]
                raise StoreError(f"campaign store {location}: {reason}") from None
    finally:
        engine.dispose()


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
