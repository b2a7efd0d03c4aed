"""The team store (:class:`optim.campaign.sql_store.SqlStore`) on a real PostgreSQL server the
session starts (``postgres_server`` in conftest) and on a SQLite URL (always available, same
code): failed writes roll back, writers in several processes serialise and lose nothing, a
writer killed mid-transaction changes nothing and holds no lock, bad URLs are one line, and the
whole loop (propose, observe, run, status, export) works through the CLI on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import small_posterior, small_spec

from optim.campaign import Campaign
from optim.campaign.sql_store import SqlStore
from optim.campaign.storage import StoreError, open_store
from optim.cli import main


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request, tmp_path) -> str:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'team.sqlite'}"
    return request.getfixturevalue("postgres_url")


def _store(url: str) -> SqlStore:
    return SqlStore(url)  # (open_store gives the file store for sqlite:/// URLs)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens there once the socket closes


# ---- bad URLs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, message",
    [
        ("postgresql://me:secret@db:notaport/x", "malformed campaign store URL"),
        ("mysql://me@db/x", "SQLite file or a PostgreSQL database, not mysql"),
        ("postgresql+asyncpg://me@db/x", "'asyncpg' is not supported"),
        ("sqlite://", "names no file"),
    ],
)
def test_malformed_or_unsupported_urls_are_one_line_without_the_password(url, message):
    with pytest.raises(StoreError, match=message) as err:
        open_store(url)
    assert "\n" not in str(err.value) and "secret" not in str(err.value)


def test_an_unreachable_server_is_one_line_and_exit_2_from_the_cli(capsys):
    url = f"postgresql://archopt:secret@127.0.0.1:{_closed_port()}/team"
    for argv in (["campaign", "list"], ["status", "small"], ["propose", "small", "-k", "1"]):
        start = time.perf_counter()
        code = main([*argv, "--store", url])
        err = capsys.readouterr().err.splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith("error: ") and "secret" not in err[0]
        # With a driver: the refused connection; without one: what to install.
        assert "cannot connect to campaign store" in err[0] or "no PostgreSQL driver" in err[0]
        assert time.perf_counter() - start < 30


def test_sqlite_urls_open_the_file_store(tmp_path):
    from optim.campaign.store import CampaignStore

    store = open_store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    assert isinstance(store, CampaignStore) and store.path == tmp_path / "c.sqlite"


# ---- Ax's schema on PostgreSQL (needs only the server and psql) ----------------------------------
def test_ax_and_archopt_tables_are_valid_postgresql_ddl(postgres_server):
    """Ax declares TEXT(4294967295) (refused by PostgreSQL, Ax issue #283); the store compiles
    it as TEXT. Every table of Ax's and archopt's schema is created by a real server."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    import optim.campaign.snapshot as snapshot

    snapshot.quiet_ax()  # imports Ax's table definitions
    from ax.storage.sqa_store.db import Base

    tables = [*Base.metadata.sorted_tables, *snapshot.ARCHOPT_TABLES.sorted_tables]
    dialect = postgresql.dialect()
    ddl = []
    for table in tables:
        ddl.append(f"{CreateTable(table).compile(dialect=dialect)};")
        ddl += [f"{CreateIndex(ix).compile(dialect=dialect)};" for ix in table.indexes]
    url = postgres_server.new_database()
    db = url.rsplit("/", 1)[1]
    proc = postgres_server.client(
        "psql", "-v", "ON_ERROR_STOP=1", "-q", "-d", db, "-c", "\n".join(ddl)
    )
    assert proc.returncode == 0, proc.stderr
    listed = postgres_server.client(
        "psql", "-At", "-d", db, "-c", "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    )
    assert set(listed.stdout.split()) == {t.name for t in tables}
    assert {"experiment_v2", "trial_v2", "archopt_campaigns", "archopt_trials"} <= set(
        listed.stdout.split()
    )
    # Ax's JSON columns (VARCHAR(4096), which its generation strategy overflows) are TEXT.
    steps = postgres_server.client(
        "psql",
        "-At",
        "-d",
        db,
        "-c",
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_name = 'generation_strategy' AND column_name = 'steps'",
    )
    assert steps.stdout.strip() == "text"


# ---- transactions -----------------------------------------------------------------------------------
def test_a_failed_write_rolls_back_ax_and_archopt_rows(sql_url):
    store = _store(sql_url)
    with pytest.raises(RuntimeError, match="late"):
        with store.transaction(write=True) as snap:
            snap.ax_create(small_spec())
            snap.insert_campaign("small", small_spec().to_dict(), b"blob", {})
            assert snap.names() == ["small"]  # visible inside the transaction
            raise RuntimeError("bad input discovered late")
    assert store.list_names() == []
    with store.transaction(write=True) as snap:
        snap.ax_create(small_spec())
        snap.insert_campaign("small", small_spec().to_dict(), b"blob", {})
    assert store.list_names() == ["small"]
    with store.transaction(write=False) as snap:
        assert snap.ax_load(small_spec()).records() == []
        assert snap.campaign("small").prior_blob == b"blob"


def test_a_held_writer_lock_gives_a_one_line_busy_error(sql_url, monkeypatch):
    """Writers exclude each other and readers (Ax writes rows when it loads an experiment);
    readers share the lock."""
    store = _store(sql_url)
    with store.transaction(write=True) as snap:  # creates the tables
        snap.insert_campaign("a", {}, b"", {})
    monkeypatch.setenv("ARCHOPT_LOCK_TIMEOUT", "0.3")
    with store.transaction(write=True) as holder:
        holder.insert_campaign("b", {}, b"", {})
        for write in (True, False):
            start = time.perf_counter()
            with pytest.raises(StoreError, match="busy") as err:
                with _store(sql_url).transaction(write=write) as snap:
                    snap.insert_campaign("c", {}, b"", {})
            assert time.perf_counter() - start < 10
            assert "\n" not in str(err.value)
    assert store.list_names() == ["a", "b"]
    if sql_url.startswith("postgresql"):
        with store.transaction(write=False), _store(sql_url).transaction(write=False) as snap:
            assert snap.names() == ["a", "b"]  # two readers at once


def test_corrupt_rows_are_store_errors(sql_url):
    from sqlalchemy import text

    store = _store(sql_url)
    with store.transaction(write=True) as snap:
        snap.insert_campaign("a", {}, b"", {})
        snap.conn.execute(text("UPDATE archopt_campaigns SET spec_json = '{not json'"))
    with store.transaction(write=False) as snap:
        with pytest.raises(StoreError, match="corrupt"):
            snap.campaign("a")


# ---- several processes ----------------------------------------------------------------------------
WRITER = """
import json, sys, time
from optim.campaign import Campaign
from optim.campaign.sql_store import SqlStore
url, trials = sys.argv[1], json.loads(sys.argv[2])
camp = Campaign.load("small", SqlStore(url))
times = []
for trial in trials:
    start = time.perf_counter()
    camp.observe(trial, 3.0 + trial / 100)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


@pytest.fixture
def campaign_url(sql_url) -> str:
    """``sql_url`` holding campaign ``small`` with six pending trials (0-5)."""
    camp = Campaign.create(small_spec(), store=_store(sql_url), prior=small_posterior())
    camp.propose(6, seed=0)
    return sql_url


@pytest.mark.slow
def test_two_writer_processes_record_concurrently_and_none_is_lost(campaign_url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-W", "ignore", "-c", WRITER, campaign_url, json.dumps(trials)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for trials in ([0, 2, 4], [1, 3, 5])
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        assert len(json.loads(out)) == 3
    trials = Campaign.load("small", _store(campaign_url)).trials()
    assert [t["status"] for t in trials] == ["observed"] * 6
    assert [t["observed_loss"] for t in trials] == [pytest.approx(3.0 + i / 100) for i in range(6)]


@pytest.mark.slow
def test_a_writer_killed_mid_transaction_changes_nothing_and_holds_no_lock(campaign_url):
    code = textwrap.dedent(f"""
        import os
        from optim.campaign import Campaign
        from optim.campaign.snapshot import Snapshot
        from optim.campaign.sql_store import SqlStore
        camp = Campaign.load("small", SqlStore({campaign_url!r}))
        Snapshot.put_trial_meta = lambda *a, **k: os._exit(9)  # after Ax completed the trial
        camp.observe(0, 3.0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    store = _store(campaign_url)
    camp = Campaign.load("small", store)
    assert [t["status"] for t in camp.trials()] == ["pending"] * 6
    os.environ["ARCHOPT_LOCK_TIMEOUT"] = "20"  # a lock the dead writer still held: busy error
    try:
        camp.observe(0, 3.0)
    finally:
        del os.environ["ARCHOPT_LOCK_TIMEOUT"]
    assert Campaign.load("small", store).trials()[0]["observed_loss"] == 3.0


# ---- the whole loop on PostgreSQL through the CLI --------------------------------------------------
TRAIN = """
import json, pathlib, sys
cfg = json.load(open(sys.argv[1]))
(pathlib.Path(sys.argv[2]) / "metrics.jsonl").write_text(json.dumps({"loss": 3.2}) + "\\n")
"""


@pytest.mark.slow
def test_propose_observe_run_status_export_on_postgresql(postgres_url, tmp_path, capsys):
    Campaign.create(small_spec(), store=postgres_url, prior=small_posterior())

    def cli(*argv: str) -> str:
        code = main([*argv, "--store", postgres_url])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    proposals = json.loads(cli("propose", "small", "-k", "2", "--json"))
    assert [p["trial"] for p in proposals] == [0, 1]
    cli("observe", "small", "0", "--loss", "3.1")
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    ran = json.loads(
        cli(
            "run",
            "small",
            "--train-cmd",
            f"{sys.executable} {script} {{config}} {{out}}",
            "--max-trials",
            "1",
            "--poll",
            "0.2",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--json",
        )
    )
    assert len(ran["completed"]) == 1
    status = json.loads(cli("status", "small", "--json"))
    assert status["store"] == postgres_url and status["n_observed"] == 2
    by_trial = {t["trial"]: t for t in status["trials"]}
    assert by_trial[0]["observed_loss"] == 3.1 and by_trial[1]["status"] == "pending"
    assert by_trial[ran["completed"][0]]["job_state"] == "completed"
    cli("pareto", "small", "--export", str(tmp_path / "export"))
    assert (tmp_path / "export" / "pareto.json").is_file()
    assert json.loads(cli("campaign", "list", "--json")) == ["small"]
    assert Path(tmp_path / "export" / "pareto.csv").read_text().count("\n") >= 2
