"""A campaign store in a PostgreSQL database, for teams steering one campaign from several
machines; and the SQLAlchemy engines of both stores.

``SqlStore("postgresql://user@host/db")`` keeps Ax's tables and archopt's in that database. The
contract (what callers may rely on):

* **Writers serialise on the database, not on a file.** Every write is one transaction that
  first takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``; waits at most
  :func:`~optim.campaign.storage.lock_timeout` seconds, then a one-line :class:`StoreError`), so
  writers on any machine see each other's committed changes and never interleave. The lock is
  released by the commit or rollback, and by the server when a writer's connection dies.
* **A failed write changes nothing.** Ax's writes and archopt's rows are one transaction
  (:mod:`.snapshot`); an error, a refused input or a killed writer rolls all of it back.
* **Reads wait only for writers.** A read takes the same lock in shared mode and always rolls
  back. (Ax saves an experiment back when it loads one, so a read writes rows too, then rolls
  them back: under the shared lock readers never overlap a writer, so they never see a
  half-written store nor fail on rows a writer changed meanwhile.)
* **Bad URLs are one line.** A malformed URL, another database, a missing driver or an
  unreachable server is a :class:`StoreError`; the URL is shown without its password.

A plain ``postgresql://`` URL uses psycopg (3) when it is installed, else psycopg2. SQLite URLs
are accepted too (the same transactions; ``BEGIN IMMEDIATE`` takes SQLite's one write lock for
reads and writes alike): the tests use them; ``--store sqlite:///PATH`` opens the file store
(:mod:`.store`) instead.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from .storage import LOCK_TIMEOUT_ENV, StoreError, lock_timeout

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["SqlStore", "make_engine", "sqlite_url_path", "CONNECT_TIMEOUT_S"]

#: Seconds to wait for a PostgreSQL server to answer a connection (unless the URL sets
#: ``connect_timeout``).
CONNECT_TIMEOUT_S = 10
#: The advisory lock's key: one lock per database ("archopt" in ASCII).
_LOCK_KEY = 0x617263686F7074
_PG_DRIVERS = (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2"))
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout
_ENGINES: dict[str, Engine] = {}
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _one_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(inner).splitlines() if ln.strip()]
    return (lines[0] if lines else type(inner).__name__)[:300]


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        shown = _PASSWORD.sub(r"\1***@", url)
        raise StoreError(
            f"malformed campaign store URL {shown!r} ({_one_line(exc)}); expected "
            "postgresql://user[:password]@host[:port]/database or a file path"
        ) from None
    parsed = parsed.set(drivername=parsed.drivername.lower())
    if parsed.drivername.split("+")[0] == "postgres":  # the short scheme many tools print
        parsed = parsed.set(drivername="postgresql" + parsed.drivername[len("postgres") :])
    return parsed


def _backend(url: URL) -> str:
    return url.drivername.split("+")[0]


def sqlite_url_path(url: str) -> Path | None:
    """The file a ``sqlite:///PATH`` URL names (``None`` for other databases).

    Raises:
        StoreError: a malformed URL, or an in-memory SQLite URL.
    """
    parsed = _parse(url)
    if _backend(parsed) != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise StoreError(f"campaign store URL {url!r} names no file (sqlite:///PATH)")
    return Path(parsed.database)


def make_engine(url: URL) -> Engine:
    """An engine whose transactions work as the stores need: SQLite with real transactions
    (``BEGIN IMMEDIATE``, waiting at most :func:`lock_timeout` s for the write lock) and
    savepoints; PostgreSQL with a connect timeout and a pinged pool."""
    if _backend(url) == "sqlite":
        engine = create_engine(url, poolclass=NullPool)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(lock_timeout() * 1000)}")
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # Ax writes even when it loads

        return engine
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)


def _resolve_driver(url: URL, shown: str) -> URL:
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        return url
    if backend != "postgresql":
        raise StoreError(
            f"campaign store {shown}: archopt stores campaigns in a SQLite file or a "
            f"PostgreSQL database, not {backend}"
        )
    if not driver:
        for module, name in _PG_DRIVERS:
            if importlib.util.find_spec(module) is not None:
                return url.set(drivername=name)
        raise StoreError(
            f"campaign store {shown}: no PostgreSQL driver is installed "
            "(pip install 'psycopg[binary]')"
        )
    if driver not in dict(_PG_DRIVERS):
        raise StoreError(
            f"campaign store {shown}: the PostgreSQL driver {driver!r} is not supported "
            "(use postgresql://, postgresql+psycopg:// or postgresql+psycopg2://)"
        )
    if importlib.util.find_spec(driver) is None:
        raise StoreError(
            f"campaign store {shown}: the PostgreSQL driver {driver!r} is not installed "
            "(pip install 'psycopg[binary]')"
        )
    return url


class SqlStore:
    """A campaign store in the database an SQLAlchemy URL names; see the module docstring.

    Args:
        url: ``postgresql[+psycopg|+psycopg2]://user[:password]@host[:port]/database`` (or a
            ``sqlite:///PATH`` URL, for tests).
    """

    def __init__(self, url: str) -> None:
        parsed = _parse(url)
        self._shown = parsed.render_as_string(hide_password=True)
        self.url = _resolve_driver(parsed, self._shown)

    def __repr__(self) -> str:
        return f"SqlStore({self._shown!r})"

    @property
    def location(self) -> str:
        """The URL without its password."""
        return self._shown

    @property
    def is_postgresql(self) -> bool:
        return _backend(self.url) == "postgresql"

    def _engine(self) -> Engine:
        key = self.url.render_as_string(hide_password=False)
        if key not in _ENGINES:
            try:
                _ENGINES[key] = make_engine(self.url)
            except (ArgumentError, ImportError, SQLAlchemyError) as exc:
                raise StoreError(f"campaign store {self._shown}: {_one_line(exc)}") from None
        return _ENGINES[key]

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            conn = self._engine().connect()
        except DBAPIError as exc:
            raise StoreError(
                f"cannot connect to campaign store {self._shown}: {_one_line(exc)}"
            ) from None
        try:
            yield conn
        finally:
            conn.close()

    def _lock(self, conn: Connection, *, write: bool) -> None:
        """Wait (at most :func:`lock_timeout` s) for the store's advisory lock (exclusive for a
        writer, shared for a reader), held until the transaction ends."""
        if not self.is_postgresql:
            return  # SQLite: BEGIN IMMEDIATE took the database's write lock
        mode = "" if write else "_shared"
        timeout = lock_timeout()
        if timeout == 0:
            query = text(f"SELECT pg_try_advisory_xact_lock{mode}(:k)")
            if not conn.execute(query, {"k": _LOCK_KEY}).scalar():
                raise self._busy(timeout)
            return
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {max(1, int(timeout * 1000))}")
        conn.execute(text(f"SELECT pg_advisory_xact_lock{mode}(:k)"), {"k": _LOCK_KEY})

    def _busy(self, timeout: float) -> StoreError:
        return StoreError(
            f"campaign store {self._shown} is busy: another archopt process has held its "
            f"lock for over {timeout:g} s (set {LOCK_TIMEOUT_ENV} to wait longer)"
        )

    def _error(self, exc: DBAPIError, write: bool) -> StoreError:
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if code == _LOCK_NOT_AVAILABLE or "database is locked" in str(orig):
            return self._busy(lock_timeout())
        tail = "; nothing was written" if write else ""
        return StoreError(f"campaign store {self._shown}: {_one_line(exc)}{tail}")

    # ---- the Store interface ----------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator["Snapshot"]:
        """One transaction (see the module docstring): a write commits when the block
        succeeds; anything else rolls back."""
        from .snapshot import transaction

        ax_url = self.url.render_as_string(hide_password=False)
        with self._connect() as conn:
            try:
                with transaction(
                    conn, self._shown, ax_url, write=write, lock=partial(self._lock, write=write)
                ) as snapshot:
                    yield snapshot
            except DBAPIError as exc:
                raise self._error(exc, write) from None

    def exists(self) -> bool:
        """Whether the database holds archopt's tables."""
        with self._connect() as conn:
            try:
                return bool(inspect(conn).has_table("archopt_campaigns"))
            except DBAPIError as exc:
                raise self._error(exc, False) from None

    def list_names(self) -> list[str]:
        """Campaign names in the store (empty when it has no archopt tables yet)."""
        if not self.exists():
            return []
        with self.transaction(write=False) as snapshot:
            return snapshot.names()
