"""One transaction on a campaign store: archopt's rows and the Ax experiments, in one SQL
transaction on one SQLAlchemy connection (all of archopt's own SQL is in this module).

Ax keeps experiments, trials, data and generation strategies in its tables. archopt adds two:
``archopt_campaigns`` (the :class:`~optim.core.problem.CampaignSpec`, the law posterior as an
ArviZ netCDF blob so a campaign never depends on a cache elsewhere) and ``archopt_trials``
(per-trial predictions made at proposal time, run names, training jobs).

:func:`transaction` begins a transaction on a connection, creates the tables on a first write,
and points Ax's (process-global) SQL session at the same connection with
``join_transaction_mode="create_savepoint"``: each of Ax's own commits becomes a savepoint inside
archopt's transaction, so Ax's writes and archopt's rows commit together or not at all. A write
commits only when its block succeeds; a read always rolls back.

Ax's table definitions declare lengths PostgreSQL refuses (``TEXT(4294967295)``,
``VARCHAR(4294967295)``: Ax issue #283, open) and JSON columns of ``VARCHAR(4096)`` that its
generation strategy overflows (SQLite ignores declared lengths, PostgreSQL enforces them); this
module compiles all of them as ``TEXT`` for the PostgreSQL dialect only (checked with
PostgreSQL 15).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sqlalchemy import (
    VARCHAR,
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
)
from sqlalchemy.ext.compiler import compiles

from models.errors import ArchoptError
from optim.core.problem import CampaignSpec

from .ax_adapter import AxCampaign, AxError, TrialRecord, delete_ax_experiment
from .errors import CampaignError
from .storage import StoreError

if TYPE_CHECKING:
    from surrogate.posterior import LawPosterior

__all__ = [
    "Snapshot",
    "CampaignRow",
    "CampaignState",
    "transaction",
    "prior_to_bytes",
    "prior_from_bytes",
    "ARCHOPT_TABLES",
    "quiet_ax",
]

#: Largest JSON text accepted from a store row (a spec or a trial payload is a few kB).
_MAX_ROW_JSON = 4 * 1024 * 1024
#: Declared string lengths from which the PostgreSQL dialect compiles ``TEXT`` (Ax's JSON
#: columns are ``VARCHAR(4096)``; its names are at most 255).
_PG_TEXT_FROM_LENGTH = 4096

ARCHOPT_TABLES = MetaData()
_CAMPAIGNS = Table(
    "archopt_campaigns",
    ARCHOPT_TABLES,
    Column("name", Text, primary_key=True),
    Column("spec_json", Text, nullable=False),
    Column("prior_netcdf", LargeBinary),
    Column("info_json", Text, nullable=False, server_default="{}"),
    Column("created_at", Float, nullable=False),
)
_TRIALS = Table(
    "archopt_trials",
    ARCHOPT_TABLES,
    Column("campaign", Text, primary_key=True),
    Column("trial", Integer, primary_key=True, autoincrement=False),
    Column("payload_json", Text, nullable=False),
)


@compiles(Text, "postgresql")
def _pg_text(type_: Text, compiler: Any, **kw: Any) -> str:
    return "TEXT"  # PostgreSQL's TEXT takes no length (Ax declares MySQL's LONGTEXT size)


@compiles(String, "postgresql")
def _pg_string(type_: String, compiler: Any, **kw: Any) -> str:
    if type_.length is not None and type_.length >= _PG_TEXT_FROM_LENGTH:
        return "TEXT"
    return str(compiler.visit_string(type_, **kw))


@compiles(VARCHAR, "postgresql")
def _pg_varchar(type_: VARCHAR, compiler: Any, **kw: Any) -> str:
    if type_.length is not None and type_.length >= _PG_TEXT_FROM_LENGTH:
        return "TEXT"
    return str(compiler.visit_VARCHAR(type_, **kw))


@dataclass
class CampaignRow:
    """archopt's row of one campaign: the spec as a dict, the prior blob, free-form info."""

    name: str
    spec: dict[str, Any]
    prior_blob: bytes | None
    info: dict[str, Any]
    created_at: float


@dataclass
class CampaignState:
    """One campaign as a transaction sees it: its row and spec, archopt's trial payloads, the
    Ax experiment and the trials in it."""

    snapshot: "Snapshot"
    row: CampaignRow
    spec: CampaignSpec
    meta: dict[int, dict[str, Any]]
    ax: AxCampaign
    records: list[TrialRecord]


# ---- Ax in the transaction ----------------------------------------------------------------------
def quiet_ax() -> None:
    """Ax logs INFO/WARNING lines on import, every load and fit; archopt reports its own state."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # Ax logs an INFO line while it is imported
    try:
        import ax.api.client  # noqa: F401  (registers Ax's tables; attaches its log handler)
        import ax.storage.sqa_store.with_db_settings_base  # noqa: F401
    finally:
        logging.disable(previous)
    for name in ["ax", *(n for n in logging.root.manager.loggerDict if n.startswith("ax."))]:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        for handler in logger.handlers:
            handler.setLevel(logging.ERROR)
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", category=SAWarning)


@contextlib.contextmanager
def _ax_bound(conn: Connection) -> Iterator[None]:
    """Point Ax's global SQL session at ``conn`` for the block (Ax's commits: savepoints)."""
    from ax.storage.sqa_store import db
    from sqlalchemy.orm import scoped_session, sessionmaker

    previous = db.SESSION_FACTORY
    factory = scoped_session(
        sessionmaker(bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint")
    )
    db.SESSION_FACTORY = factory
    try:
        yield
    finally:
        factory.remove()
        db.SESSION_FACTORY = previous


def _has_schema(conn: Connection) -> bool:
    return bool(inspect(conn).has_table(_CAMPAIGNS.name))


def _create_schema(conn: Connection) -> None:
    """Ax's tables and archopt's, inside the open transaction."""
    from ax.storage.sqa_store.db import create_all_tables

    create_all_tables(conn)  # type: ignore[arg-type]  # Base.metadata.create_all takes either
    ARCHOPT_TABLES.create_all(conn)


@contextlib.contextmanager
def transaction(
    conn: Connection,
    location: str,
    ax_url: str,
    *,
    write: bool,
    lock: Callable[[Connection], None] | None = None,
) -> Iterator["Snapshot"]:
    """Begin a transaction on ``conn``, yield its :class:`Snapshot`, then commit (a write whose
    block succeeded) or roll back (a read, or any error).

    Args:
        location: the store as messages name it.
        ax_url: the URL handed to Ax's ``StorageConfig`` (Ax uses the bound session).
        lock: called first in the transaction (the store's lock).

    Raises:
        StoreError: a read of a database without archopt's tables.
    """
    quiet_ax()
    tx = conn.begin()
    try:
        if lock is not None:
            lock(conn)
        if not _has_schema(conn):
            if not write:
                raise StoreError(f"no campaign store at {location} (create a campaign first)")
            _create_schema(conn)
        with _ax_bound(conn):
            yield Snapshot(conn, location, ax_url)
    except BaseException:
        if tx.is_active:
            tx.rollback()
        raise
    if write:
        tx.commit()
    else:
        tx.rollback()


# ---- the snapshot -------------------------------------------------------------------------------
class Snapshot:
    """archopt's tables and the Ax experiments in one open transaction (:func:`transaction`).
    Corrupt rows raise :class:`StoreError`; nothing is committed until the transaction ends."""

    def __init__(self, conn: Connection, location: str, ax_url: str) -> None:
        self.conn = conn
        self.location = location
        self.ax_url = ax_url

    def _json(self, text: Any, what: str) -> Any:
        if not isinstance(text, str) or len(text) > _MAX_ROW_JSON:
            raise StoreError(f"campaign store {self.location}: {what} is not JSON text")
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise StoreError(
                f"campaign store {self.location}: {what} is corrupt ({type(exc).__name__})"
            ) from None

    # ---- archopt's rows ----------------------------------------------------------------------
    def names(self) -> list[str]:
        rows = self.conn.execute(select(_CAMPAIGNS.c.name).order_by(_CAMPAIGNS.c.name))
        return [str(r[0]) for r in rows]

    def has(self, name: str) -> bool:
        query = select(_CAMPAIGNS.c.name).where(_CAMPAIGNS.c.name == name)
        return self.conn.execute(query).first() is not None

    def campaign(self, name: str) -> CampaignRow | None:
        """The campaign's row, or ``None`` when there is no campaign ``name``."""
        c = _CAMPAIGNS.c
        row = self.conn.execute(
            select(c.spec_json, c.prior_netcdf, c.info_json, c.created_at).where(c.name == name)
        ).first()
        if row is None:
            return None
        spec = self._json(row[0], f"the spec of campaign {name!r}")
        info = self._json(row[2] or "{}", f"the info of campaign {name!r}")
        if not isinstance(spec, dict) or not isinstance(info, dict):
            raise StoreError(
                f"campaign store {self.location}: the row of campaign {name!r} "
                "is corrupt (not a JSON object)"
            )
        blob = bytes(row[1]) if isinstance(row[1], memoryview) else row[1]
        if blob is not None and not isinstance(blob, bytes):
            raise StoreError(
                f"campaign store {self.location}: the prior of campaign {name!r} is corrupt"
            )
        return CampaignRow(name, spec, blob, info, float(row[3] or 0.0))

    def trial_meta(self, name: str) -> dict[int, dict[str, Any]]:
        """Trial index -> archopt's payload for campaign ``name``."""
        t = _TRIALS.c
        rows = self.conn.execute(select(t.trial, t.payload_json).where(t.campaign == name))
        out = {}
        for trial, text in rows:
            payload = self._json(text, f"trial {trial} of campaign {name!r}")
            if not isinstance(payload, dict):
                raise StoreError(
                    f"campaign store {self.location}: trial {trial} of campaign "
                    f"{name!r} is corrupt (not a JSON object)"
                )
            out[int(trial)] = payload
        return out

    def insert_campaign(
        self, name: str, spec: dict[str, Any], prior_blob: bytes, info: dict[str, Any]
    ) -> None:
        self.conn.execute(
            insert(_CAMPAIGNS).values(
                name=name,
                spec_json=json.dumps(spec, allow_nan=False),
                prior_netcdf=prior_blob,
                info_json=json.dumps(info, allow_nan=False),
                created_at=time.time(),
            )
        )

    def put_trial_meta(self, name: str, payloads: dict[int, dict[str, Any]]) -> None:
        """Insert or replace the payloads of trials of campaign ``name``."""
        if not payloads:
            return
        t = _TRIALS.c
        self.conn.execute(
            delete(_TRIALS).where(t.campaign == name, t.trial.in_([int(k) for k in payloads]))
        )
        self.conn.execute(
            insert(_TRIALS),
            [
                {"campaign": name, "trial": int(k), "payload_json": json.dumps(v, allow_nan=False)}
                for k, v in payloads.items()
            ],
        )

    def delete_campaign(self, name: str) -> None:
        """Remove campaign ``name``: its Ax experiment and archopt's rows."""
        delete_ax_experiment(name)
        self.conn.execute(delete(_CAMPAIGNS).where(_CAMPAIGNS.c.name == name))
        self.conn.execute(delete(_TRIALS).where(_TRIALS.c.campaign == name))

    # ---- one campaign ------------------------------------------------------------------------
    def require(self, name: str) -> CampaignRow:
        """The campaign's row; :class:`CampaignError` naming the known ones when unknown."""
        row = self.campaign(name)
        if row is None:
            raise CampaignError(
                f"unknown campaign {name!r} in {self.location} "
                f"(known: {', '.join(self.names()) or 'none'})"
            )
        return row

    def spec_of(self, row: CampaignRow) -> CampaignSpec:
        try:
            return CampaignSpec.from_dict(row.spec)
        except (ArchoptError, TypeError, ValueError, KeyError) as exc:
            raise StoreError(
                f"campaign {row.name!r} in {self.location} has an unreadable spec: "
                f"{' '.join(str(exc).split())[:200]}"
            ) from None

    def ax_create(self, spec: CampaignSpec) -> AxCampaign:
        return AxCampaign.create(self.ax_url, spec)

    def ax_load(self, spec: CampaignSpec) -> AxCampaign:
        try:
            return AxCampaign.load(self.ax_url, spec)
        except AxError as exc:
            raise StoreError(f"campaign {spec.name!r} in {self.location}: {exc}") from None

    def open_campaign(self, name: str, spec: CampaignSpec | None = None) -> CampaignState:
        """Campaign ``name``'s row, spec (``spec``: skip re-reading it), trial payloads and Ax
        experiment in this transaction."""
        row = self.require(name)
        spec = spec or self.spec_of(row)
        meta = self.trial_meta(name)
        ax = self.ax_load(spec)
        return CampaignState(self, row, spec, meta, ax, ax.records(meta))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# ---- the prior column ---------------------------------------------------------------------------
def prior_to_bytes(prior: "LawPosterior") -> bytes:
    """``prior`` as the netCDF bytes stored in ``archopt_campaigns.prior_netcdf``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = prior.save(Path(tmp) / "prior.nc")
        return Path(path).read_bytes()


def prior_from_bytes(row: CampaignRow, location: str) -> "LawPosterior":
    """The campaign's stored ``LawPosterior`` (:class:`StoreError` when missing or unreadable)."""
    from surrogate.posterior import LawPosterior

    if not row.prior_blob:
        raise StoreError(f"campaign {row.name!r} in {location} has no stored prior")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prior.nc"
        path.write_bytes(row.prior_blob)
        try:
            return LawPosterior.load(path)
        except ArchoptError as exc:
            raise StoreError(
                f"campaign {row.name!r} in {location}: its stored prior is unreadable ({exc})"
            ) from None
