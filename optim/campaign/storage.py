"""What a campaign asks of its store, and which store a ``--store`` value names.

Two implementations share the :class:`Store` interface:

* :class:`optim.campaign.store.CampaignStore` -- one SQLite file (the embedded default,
  ``$ARCHOPT_HOME/campaigns.sqlite``): writers serialise on a file lock and replace the file
  atomically; readers copy it.
* :class:`optim.campaign.sql_store.SqlStore` -- a PostgreSQL database named by an SQLAlchemy URL
  (``postgresql://user@host/db``), shared by writers on several machines: each write is one
  database transaction holding a transaction-scoped advisory lock.

Either way a transaction yields a :class:`optim.campaign.snapshot.Snapshot` (archopt's rows and
the Ax experiments, read and written in that one transaction) and commits only when its block
succeeds: a failed write leaves the store as it was.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager, Protocol, runtime_checkable

from models.errors import ArchoptError

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = [
    "Store",
    "StoreError",
    "open_store",
    "is_url",
    "lock_timeout",
    "LOCK_TIMEOUT_ENV",
]

#: Environment variable: seconds a writer waits for the store's lock (default 60).
LOCK_TIMEOUT_ENV = "ARCHOPT_LOCK_TIMEOUT"
_DEFAULT_LOCK_TIMEOUT_S = 60.0
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class StoreError(ArchoptError):
    """The store is missing, corrupt, locked, read-only, unreachable or not an archopt store."""


@runtime_checkable
class Store(Protocol):
    """A campaign store. ``location`` names it in messages (a path, or a URL without its
    password); ``transaction(write=...)`` yields a :class:`Snapshot` and commits a write only
    when the block succeeds."""

    @property
    def location(self) -> str: ...

    def exists(self) -> bool: ...

    def list_names(self) -> list[str]: ...

    def transaction(self, *, write: bool) -> ContextManager["Snapshot"]: ...


def lock_timeout() -> float:
    """Seconds a writer waits for the store's lock (``$ARCHOPT_LOCK_TIMEOUT``, default 60)."""
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


def is_url(value: str) -> bool:
    """Whether ``value`` looks like a URL (``scheme://...``) rather than a file path."""
    return bool(_URL.match(value))


def open_store(store: Store | str | Path | None = None) -> Store:
    """The store a ``--store`` value names.

    Args:
        store: a :class:`Store` (returned as is); ``None`` (the default SQLite file); a path or
            a ``sqlite:///PATH`` URL (that SQLite file, with the file store's guarantees); a
            ``postgresql[+driver]://...`` URL (a :class:`~optim.campaign.sql_store.SqlStore`).

    Raises:
        StoreError: another URL scheme, or a malformed URL (one line).
    """
    from .sql_store import SqlStore, sqlite_url_path
    from .store import CampaignStore

    if store is None or isinstance(store, Path):
        return CampaignStore(store)
    if isinstance(store, str):
        if not is_url(store):
            return CampaignStore(store)
        path = sqlite_url_path(store)
        return CampaignStore(path) if path is not None else SqlStore(store)
    if isinstance(store, Store):
        return store
    raise StoreError(f"a campaign store is a path or a URL, got {type(store).__name__}")
