"""The campaign store: atomic copy-and-replace transactions, corruption detection."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat

import pytest

from optim.campaign.store import CampaignStore, StoreError


def connect(path) -> contextlib.closing:
    """A raw sqlite3 connection to a store file (or the copy a transaction yields)."""
    return contextlib.closing(sqlite3.connect(str(path)))


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path) -> CampaignStore:
    s = CampaignStore(tmp_path / "campaigns.sqlite")
    with s.write() as path, connect(path) as con:  # creates Ax's and archopt's tables
        con.execute("INSERT INTO archopt_campaigns VALUES ('a', '{}', NULL, '{}', 0)")
        con.commit()
    return s


def test_a_new_store_has_ax_and_archopt_tables(store):
    con = sqlite3.connect(store.path)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert {"archopt_campaigns", "archopt_trials", "experiment_v2", "trial_v2"} <= tables
    assert store.list_names() == ["a"]


def test_a_failed_transaction_leaves_the_store_byte_identical(store):
    before = _sha(store.path)
    with pytest.raises(RuntimeError):
        with store.write() as path, connect(path) as con:
            con.execute("INSERT INTO archopt_campaigns VALUES ('b', '{}', NULL, '{}', 0)")
            con.commit()
            raise RuntimeError("bad input discovered late")
    assert _sha(store.path) == before
    assert store.list_names() == ["a"]
    assert not list(store.path.parent.glob(".campaigns.sqlite.*.tmp"))


def test_a_successful_transaction_replaces_the_store(store):
    with store.write() as path, connect(path) as con:
        con.execute("INSERT INTO archopt_campaigns VALUES ('b', '{}', NULL, '{}', 0)")
        con.commit()
    assert store.list_names() == ["a", "b"]


def test_no_store_lists_nothing_and_cannot_be_read(tmp_path):
    s = CampaignStore(tmp_path / "none.sqlite")
    assert s.list_names() == []
    with pytest.raises(StoreError):
        with s.read():
            pass


@pytest.mark.parametrize("content", [b"garbage" * 100, b"SQLite format 3\x00" + b"\xff" * 2000])
def test_corrupt_store_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "campaigns.sqlite"
    path.write_bytes(content)
    s = CampaignStore(path)
    with pytest.raises(StoreError):
        s.list_names()
    with pytest.raises(StoreError):
        with s.write():
            pass
    assert path.read_bytes() == content


def test_an_sqlite_file_of_another_program_is_not_a_store(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not an archopt"):
        CampaignStore(path).list_names()


# ---- issue 10 regressions: identity, permissions, leftovers, locks ----------------------------
def test_a_symlinked_store_stays_a_link_and_its_target_gets_every_write(tmp_path):
    real = tmp_path / "shared" / "team.sqlite"
    real.parent.mkdir()
    link = tmp_path / "campaigns.sqlite"
    link.symlink_to(real)
    s = CampaignStore(link)
    for name in ("a", "b"):
        with s.write() as path, connect(path) as con:
            con.execute("INSERT INTO archopt_campaigns VALUES (?, '{}', NULL, '{}', 0)", (name,))
            con.commit()
    assert link.is_symlink() and real.is_file()
    assert CampaignStore(real).list_names() == ["a", "b"] == s.list_names()


def test_a_write_keeps_the_store_permission_bits(store):
    os.chmod(store.path, 0o664)
    with store.write() as path, connect(path) as con:
        con.execute("INSERT INTO archopt_campaigns VALUES ('b', '{}', NULL, '{}', 0)")
        con.commit()
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o664
    assert store.list_names() == ["a", "b"]


def test_a_new_store_gets_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        s = CampaignStore(tmp_path / "new.sqlite")
        with s.write():
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(s.path).st_mode) == 0o644


def test_a_read_only_store_is_refused_and_left_alone(store):
    os.chmod(store.path, 0o444)
    before = _sha(store.path)
    with pytest.raises(StoreError, match="read-only"):
        with store.write() as path, connect(path) as con:
            con.execute("INSERT INTO archopt_campaigns VALUES ('b', '{}', NULL, '{}', 0)")
            con.commit()
    assert _sha(store.path) == before
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o444
    assert store.list_names() == ["a"]  # still readable


def test_reads_create_nothing_beside_the_store(store):
    before = sorted(p.name for p in store.path.parent.iterdir())
    with store.read() as copy:
        assert copy.parent != store.path.parent
    store.list_names()
    assert sorted(p.name for p in store.path.parent.iterdir()) == before


def test_temporary_copies_of_a_killed_writer_are_removed_by_the_next_write(store):
    stale = [store.path.parent / f".campaigns.sqlite.x{i}.tmp" for i in range(3)]
    for p in stale:
        p.write_bytes(b"half a store")
    with store.write():
        pass
    assert not any(p.exists() for p in stale)


def test_a_held_lock_gives_a_one_line_error_after_the_timeout(store, monkeypatch):
    from filelock import FileLock

    monkeypatch.setenv("ARCHOPT_LOCK_TIMEOUT", "0.2")
    before = _sha(store.path)
    holder = FileLock(str(store.lock_path))
    holder.acquire()
    try:
        with pytest.raises(StoreError, match="busy") as err:
            with store.write():
                pass
    finally:
        holder.release()
    assert "\n" not in str(err.value)
    assert _sha(store.path) == before
    assert store.list_names() == ["a"]  # reads never wait for the lock


@pytest.mark.parametrize(
    "column, value",
    [("spec_json", "{not json"), ("spec_json", "[1, 2]"), ("info_json", "\x00\x01binary")],
)
def test_corrupt_campaign_rows_give_store_errors(store, column, value):
    with store.write() as path, connect(path) as con:
        con.execute(f"UPDATE archopt_campaigns SET {column} = ? WHERE name = 'a'", (value,))
        con.commit()
    with store.transaction(write=False) as snapshot:
        with pytest.raises(StoreError, match="corrupt"):
            snapshot.campaign("a")


def test_a_corrupt_trial_payload_gives_a_store_error(store):
    with store.write() as path, connect(path) as con:
        con.execute("INSERT INTO archopt_trials VALUES ('a', 0, '{\"x\": Infinity}')")
        con.commit()
    with store.transaction(write=False) as snapshot:
        with pytest.raises(StoreError, match="trial 0"):
            snapshot.trial_meta("a")
