"""The campaign store: atomic copy-and-replace transactions, corruption detection."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from optim.campaign.store import CampaignStore, StoreError, connect


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
