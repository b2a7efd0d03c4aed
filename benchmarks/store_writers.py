"""Concurrent writers on a campaign store: time per recorded result, one writer vs two.

    python benchmarks/store_writers.py [--records 6] [--postgres postgresql://user@host/db]
        [--out results/store_writers.md]

For each store (the SQLite file store; the SQL store on a SQLite URL, the same transactions as
PostgreSQL's with SQLite's write lock; PostgreSQL when ``--postgres`` names an empty database) a
campaign with ``2 * records`` pending trials is created, then (a) one process records
``records`` results, (b) two processes record ``records`` results each at the same time. Every
``Campaign.observe`` is timed in its process (a full transaction: load the campaign and its Ax
experiment, complete the trial, save, commit; the first one also builds the candidate set).
Afterwards every result must be in the store (none lost). The losses are synthetic; the
numbers are wall-clock times on this machine, shared with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRITER = """
import contextlib, json, sys, time, warnings
warnings.simplefilter("ignore")
from optim.campaign import Campaign
from optim.campaign.sql_store import SqlStore
from optim.campaign.storage import open_store
kind, url, trials = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
camp = Campaign.load("bench", SqlStore(url) if kind == "sql" else open_store(url))
held = []  # seconds each write transaction took (lock wait included)
plain = type(camp.store).transaction

@contextlib.contextmanager
def timed(self, *, write):
    start = time.perf_counter()
    with plain(self, write=write) as snapshot:
        yield snapshot
    if write:
        held.append(time.perf_counter() - start)

type(camp.store).transaction = timed
times = []
for trial in trials:
    start = time.perf_counter()
    camp.observe(trial, 3.5 + trial / 1000)
    times.append(time.perf_counter() - start)
print(json.dumps([times, held]))
"""


def _spec():
    from models.throughput import Workload
    from optim.core.problem import CampaignSpec

    return CampaignSpec(
        name="bench",
        params=5e7,
        tokens=1e9,
        hardware="a100-40gb",
        vocab_size=32000,
        workload=Workload(8, 512, 128),
    )


def _writers(
    kind: str, url: str, groups: list[list[int]]
) -> tuple[float, list[float], list[float]]:
    """Run one writer process per group at once: (wall seconds, every observe's seconds, every
    write transaction's seconds)."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, kind, url, json.dumps(g)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for g in groups
    ]
    times: list[float] = []
    held: list[float] = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a writer failed: {err.strip()[-2000:]}")
        observe_s, held_s = json.loads(out)
        times += observe_s
        held += held_s
    return time.perf_counter() - start, times, held


def _bench(name: str, kind: str, url: str, n: int, prior) -> dict:
    from optim.campaign import Campaign
    from optim.campaign.sql_store import SqlStore
    from optim.campaign.storage import open_store

    store = SqlStore(url) if kind == "sql" else open_store(url)
    camp = Campaign.create(_spec(), store=store, prior=prior)
    camp.propose(3 * n, strategy="random", seed=0)
    one_wall, one, one_tx = _writers(kind, url, [list(range(n))])
    groups = [list(range(n, 3 * n, 2)), list(range(n + 1, 3 * n, 2))]
    two_wall, two, two_tx = _writers(kind, url, groups)
    trials = Campaign.load("bench", store).trials()
    landed = sum(t["status"] == "observed" for t in trials)
    return {
        "store": name,
        "records": 3 * n,
        "landed": landed,
        "one_writer_median_s": statistics.median(one[1:]),
        "one_writer_tx_median_s": statistics.median(one_tx[1:]),
        "one_writer_wall_s": one_wall,
        "two_writers_median_s": statistics.median(two),
        "two_writers_tx_median_s": statistics.median(two_tx),
        "two_writers_wall_s": two_wall,
        "two_writers_per_record_wall_s": two_wall / (2 * n),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=6, help="results per writer")
    parser.add_argument("--postgres", help="URL of an empty PostgreSQL database")
    parser.add_argument("--out", type=Path, default=Path("results/store_writers.md"))
    args = parser.parse_args(argv)

    from surrogate.prior import default_prior

    prior = default_prior(progress=False)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stores = [
            ("SQLite file (default)", "file", str(Path(tmp) / "file.sqlite")),
            ("SQL store on a SQLite URL", "sql", f"sqlite:///{Path(tmp) / 'url.sqlite'}"),
        ]
        if args.postgres:
            stores.append(("PostgreSQL", "sql", args.postgres))
        for name, kind, url in stores:
            print(f"{name}: {args.records} records by one writer, then two writers...", flush=True)
            rows.append(_bench(name, kind, url, args.records, prior))
            print(json.dumps(rows[-1]), flush=True)
    if not args.postgres:
        print("PostgreSQL: not measured (pass --postgres URL)")
    lines = [
        "# Concurrent writers on a campaign store",
        "",
        f"`python benchmarks/store_writers.py --records {args.records}"
        + (" --postgres URL" if args.postgres else "")
        + "` (each writer a process; times per `Campaign.observe`, one full transaction;"
        " the one-writer median leaves out the first record, which also builds the candidate"
        " set).",
        "",
        "| store | records landed | 1 writer: s/record (write transaction) "
        "| 2 writers: s/record (write transaction, lock wait included) "
        "| 2 writers: wall s per record |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['landed']}/{r['records']} "
            f"| {r['one_writer_median_s']:.2f} ({r['one_writer_tx_median_s']:.2f}) "
            f"| {r['two_writers_median_s']:.2f} ({r['two_writers_tx_median_s']:.2f}) "
            f"| {r['two_writers_per_record_wall_s']:.2f} |"
        )
    lines += [
        "",
        "Medians. A record is `Campaign.observe`: the write transaction (load the campaign and "
        "its Ax experiment, complete the trial, save, commit) plus, outside the lock, the "
        "prior-band check that fits the loss model. Writers serialise only on the transaction.",
    ]
    lines += [
        "",
        f"Machine: {os.cpu_count()} cores, load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after the run (other processes share the cores: two writers "
        "also compete for CPU outside the lock).",
    ]
    if not args.postgres:
        lines += ["", "PostgreSQL: not measured in this run (no `--postgres`)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["landed"] == r["records"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
