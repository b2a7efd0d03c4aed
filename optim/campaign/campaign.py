"""A campaign: one Ax experiment over the budget-preserving candidate set, resumable from disk.

:class:`Campaign` is the facade the CLI, the app and the benchmarks call, in the manner of Ax's
``Client``: its methods are grouped in sections (construction, views, the loop, reporting) and
it holds no SQL and no Ax code of its own. The store (:mod:`.store`) owns the file and
archopt's tables, the Ax adapter (:mod:`.ax_adapter`) owns the experiment, the optimization core
(:mod:`optim.core`) owns the candidate set, the loss model and the acquisition, and
:mod:`.rows` formats the JSON rows (:data:`PROPOSAL_FIELDS`).

Every state change is one transaction (:meth:`Campaign._session`): lock, copy, load the Ax
experiment, change, save, atomic replace. Concurrent processes serialise, a crash leaves the old
store, and a refused input leaves the store byte-identical.

A loaded :class:`Campaign` is a snapshot: the loss model conditioned on its observed runs is fitted
once per snapshot and reused by :meth:`candidate_loss`, :meth:`status` and :meth:`pareto`.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from models.errors import ArchoptError
from optim.core.problem import LOSS_NOISE_SD, CampaignSpec, Problem

from .ax_adapter import (
    AX_PARAMETERS,
    LOSS_METRIC,
    THROUGHPUT_METRIC,
    AxCampaign,
    AxError,
    TrialRecord,
    ax_session,
    delete_ax_experiment,
)
from .errors import CampaignError
from .rows import PRIOR_FIELDS, PROPOSAL_FIELDS, candidate_row, jsonable, trial_row
from .runs import check_runs_belong, checked_loss, load_table, plan_runs
from .store import CampaignStore, Snapshot, StoreError

if TYPE_CHECKING:
    from surrogate.posterior import LawPosterior

__all__ = [
    "Campaign",
    "CampaignSpec",
    "CampaignError",
    "list_campaigns",
    "delete_campaign",
    "PROPOSAL_FIELDS",
    "TrialRecord",
    "AX_PARAMETERS",
    "MAX_PROPOSALS",
    "LOSS_METRIC",
    "THROUGHPUT_METRIC",
    "as_store",
]

#: Most proposals one call may make (acquisition cost grows faster than linearly in k; the
#: pending trials of one call are counted by the next, so larger batches are several calls).
MAX_PROPOSALS = 32
#: Optimistic proposal attempts: the acquisition runs without the store lock and is redone when
#: another process changed the trials meanwhile.
_PROPOSE_ATTEMPTS = 3


def as_store(store: CampaignStore | str | Path | None) -> CampaignStore:
    """A :class:`CampaignStore` from a store, a path or ``None`` (the default store)."""
    return store if isinstance(store, CampaignStore) else CampaignStore(store)


@dataclass
class _Session:
    """One open transaction: the snapshot's tables, the Ax experiment and the trials in it."""

    snapshot: Snapshot
    ax: AxCampaign
    spec: CampaignSpec
    meta: dict[int, dict[str, Any]]
    records: list[TrialRecord]


# ---- the campaign -----------------------------------------------------------------------------
class Campaign:
    """A loaded campaign (a snapshot; every mutating method re-reads and writes the store under
    its lock). Create with :meth:`create`, open with :meth:`load`."""

    def __init__(
        self,
        spec: CampaignSpec,
        store: CampaignStore,
        prior: LawPosterior,
        records: list[TrialRecord],
        info: dict[str, Any],
    ) -> None:
        self.spec = spec
        self.store = store
        self._prior = prior
        self._records = records
        self.info = info
        self._problem: Problem | None = None
        self._loss_cache: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        spec: CampaignSpec,
        runs: str | Path | pd.DataFrame | Sequence | None = None,
        store: CampaignStore | str | Path | None = None,
        *,
        prior: LawPosterior | None = None,
        progress: bool = True,
    ) -> "Campaign":
        """Create a campaign and save it (refused when the name exists).

        Args:
            spec: what to optimize.
            runs: extra prior run tables (paths or a DataFrame): the law is refitted on the
                bundled tables plus these. ``None``: the cached default prior.
            store: the store (default ``$ARCHOPT_HOME/campaigns.sqlite``).
            prior: use this ``LawPosterior`` instead of fitting one (tests, notebooks).
        """
        store = as_store(store)
        if spec.name in store.list_names():
            raise CampaignError(f"campaign {spec.name!r} already exists in {store.path}")
        table = load_table(runs) if runs is not None and prior is None else None
        Problem.build(spec, None)  # validates the spec (candidates, memory) before a long fit
        if prior is None:
            prior = _campaign_prior(spec, table, progress)
        blob = _prior_to_bytes(prior)
        problem = Problem.build(spec, prior)
        info = {"prior_runs": int(len(table)) if table is not None else 0, "prior": repr(prior)}
        with store.write() as path:
            snapshot = Snapshot(path, store)
            if snapshot.has(spec.name):
                raise CampaignError(f"campaign {spec.name!r} already exists in {store.path}")
            with ax_session(path) as url:
                AxCampaign.create(url, spec)
            snapshot.insert_campaign(spec.name, spec.to_dict(), blob, info)
        campaign = cls(spec, store, prior, [], info)
        campaign._problem = problem
        return campaign

    @classmethod
    def load(cls, name: str, store: CampaignStore | str | Path | None = None) -> "Campaign":
        """Open a saved campaign (unknown name: :class:`CampaignError`)."""
        store = as_store(store)
        if not store.exists():
            raise CampaignError(f"unknown campaign {name!r}: no campaign store at {store.path}")
        with store.read() as path:
            snapshot = Snapshot(path, store)
            row = _campaign_row(snapshot, name)
            spec = _spec_of(row.spec, name, store)
            with ax_session(path) as url:
                records = _ax_load(url, spec, store).records(snapshot.trial_meta(name))
        return cls(spec, store, _prior_from_bytes(row.prior_blob, name, store), records, row.info)

    @contextlib.contextmanager
    def _session(self) -> Iterator[_Session]:
        """The prologue of every change: lock and copy the store, re-read this campaign's row
        and trials, load its Ax experiment; commit when the block succeeds."""
        with self.store.write() as path:
            snapshot = Snapshot(path, self.store)
            row = _campaign_row(snapshot, self.name)
            spec = _spec_of(row.spec, self.name, self.store)
            meta = snapshot.trial_meta(self.name)
            with ax_session(path) as url:
                ax = _ax_load(url, spec, self.store)
                yield _Session(snapshot, ax, spec, meta, ax.records(meta))

    # ---- views ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def prior(self) -> LawPosterior:
        """The campaign's ``LawPosterior``."""
        return self._prior

    def trial_records(self) -> list[TrialRecord]:
        return list(self._records)

    @property
    def problem(self) -> Problem:
        """The candidate set with every trial's shape added (built lazily, cached)."""
        return self._problem_for(self._records)

    def _problem_for(self, records: Sequence[TrialRecord], extra: Sequence[Arch] = ()) -> Problem:
        archs = list(dict.fromkeys([r.arch for r in records] + list(extra)))
        if self._problem is None or not set(archs) <= set(self._problem.candidates):
            self._problem = Problem.build(self.spec, self._prior, extra_archs=archs)
            self._loss_cache.clear()
        return self._problem

    @staticmethod
    def _observations(
        problem: Problem, records: Sequence[TrialRecord]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(observed_idx, observed_loss, pending_idx)`` over ``problem``'s candidates."""
        obs = [(problem.index_of(r.arch), r.loss) for r in records if r.status == "observed"]
        pend = [problem.index_of(r.arch) for r in records if r.status == "pending"]
        idx = np.array([i for i, _ in obs], dtype=np.int64)
        loss = np.array([v for _, v in obs], dtype=np.float64)
        return idx, loss, np.array(pend, dtype=np.int64)

    def _loss_at_candidates(
        self, problem: Problem, records: Sequence[TrialRecord]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The campaign model's ``(mean, q05, q95)`` at every candidate (fitted once per set of
        observations, then cached)."""
        from optim.core.strategies import candidate_loss

        idx, loss, _ = self._observations(problem, records)
        key = (id(problem), problem.n, tuple(idx.tolist()), tuple(loss.tolist()))
        if key not in self._loss_cache:
            if problem.law_samples is None:
                nan = np.full(problem.n, np.nan)
                self._loss_cache[key] = (nan, nan.copy(), nan.copy())
            else:
                self._loss_cache[key] = candidate_loss(problem, idx, loss)
        return self._loss_cache[key]

    def candidate_loss(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, q05, q95)`` predicted loss of a new run at every candidate of :attr:`problem`
        (each ``(n,)``), given the observed runs."""
        return self._loss_at_candidates(self.problem, self._records)

    # ---- the loop ------------------------------------------------------------------------
    def propose(
        self,
        k: int = 4,
        *,
        strategy: str = "archopt",
        seed: int | None = None,
        **strategy_options: Any,
    ) -> list[dict[str, Any]]:
        """Propose ``k`` architectures to train next and record them as (pending) Ax trials.

        The acquisition runs on a snapshot without holding the store's lock; the proposals are
        attached under the lock, and the acquisition is redone if another process changed the
        trials meanwhile (so a long proposal never blocks ``status`` or ``observe``).

        Returns:
            One dict per proposal with :data:`PROPOSAL_FIELDS` (plus throughput band, source,
            label, strategy) and :data:`PRIOR_FIELDS` (the law prior's current weight and LOO
            rank correlation, :func:`optim.core.weighting.prior_status`).
        """
        from optim.core.strategies import STRATEGIES
        from optim.core.weighting import prior_status

        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise CampaignError(f"k must be a positive integer, got {k!r}")
        if k > MAX_PROPOSALS:
            raise CampaignError(
                f"k={k} is more than {MAX_PROPOSALS} proposals in one call; "
                f"propose in batches of at most {MAX_PROPOSALS} (pending "
                "trials are counted by the next call)"
            )
        if strategy not in STRATEGIES:
            raise CampaignError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        records = self._reload_records()
        for _ in range(_PROPOSE_ATTEMPTS):
            problem = self._problem_for(records)
            idx, loss, pending = self._observations(problem, records)
            batch = STRATEGIES[strategy](**strategy_options).propose(
                problem,
                idx,
                loss,
                int(k),
                pending_idx=pending,
                seed=len(records) if seed is None else int(seed),
            )
            # Rows show the campaign's model (law prior + GP) for every strategy, so proposals
            # of different methods are comparable; the strategy's own numbers are in the batch.
            values = self._loss_at_candidates(problem, records)
            if problem.law_samples is None:
                values = (
                    np.full(problem.n, np.nan),
                    np.full(problem.n, np.nan),
                    np.full(problem.n, np.nan),
                )
                for arr, own in zip(
                    values, (batch.pred_loss_mean, batch.pred_loss_q05, batch.pred_loss_q95)
                ):
                    arr[batch.indices] = own
            prior = prior_status(problem, idx, loss)
            with self._session() as s:
                if _trial_state(s.records) != _trial_state(records):
                    records = s.records  # another process changed the trials: redo
                    continue
                s.ax.sync_throughput(self._throughput_of_observed(problem, s.records))
                rows = []
                for j, i in enumerate(batch.indices):
                    trial = s.ax.attach(problem.candidates[int(i)])
                    row = candidate_row(
                        problem, int(i), values, trial=trial, ehvi=float(batch.ehvi[j])
                    )
                    row["strategy"] = strategy
                    row.update({f: jsonable(prior[f]) for f in PRIOR_FIELDS})
                    rows.append(row)
                now = time.time()
                payloads = {
                    r["trial"]: {"kind": "proposed", "created_at": now, "proposal": r} for r in rows
                }
                s.snapshot.put_trial_meta(self.name, payloads)
                self._records = s.ax.records({**s.meta, **payloads})
            return rows
        raise CampaignError(
            f"campaign {self.name!r} changed under {_PROPOSE_ATTEMPTS} proposal "
            "attempts in a row (other processes are writing); try again"
        )

    def _reload_records(self) -> list[TrialRecord]:
        with self.store.read() as path:
            snapshot = Snapshot(path, self.store)
            meta = snapshot.trial_meta(self.name)
            with ax_session(path) as url:
                self._records = _ax_load(url, self.spec, self.store).records(meta)
        return self._records

    def observe(
        self, trial: int, loss: float, *, force: bool = False, run: str | None = None
    ) -> dict[str, Any]:
        """Record the final loss of a trained trial.

        A second result for the same trial is refused unless ``force`` (which replaces it); a
        loss outside the plausible range is refused unless ``force``. A loss outside the 90%
        band the law prior predicts for the trial from the other runs is recorded and warned
        about (:class:`optim.core.weighting.PriorBandWarning`).
        """
        from optim.core.weighting import warn_if_outside_band

        value = checked_loss(loss, force=force)
        if isinstance(trial, bool) or not isinstance(trial, (int, np.integer)):
            raise CampaignError(f"trial must be an integer, got {trial!r}")
        trial = int(trial)
        with self._session() as s:
            records = {r.trial: r for r in s.records}
            if trial not in records:
                known = ", ".join(str(t) for t in sorted(records)) or "none"
                raise CampaignError(
                    f"campaign {self.name!r} has no trial {trial} (trials: {known})"
                )
            rec = records[trial]
            if rec.status == "observed" and not force:
                raise CampaignError(
                    f"trial {trial} of campaign {self.name!r} already has loss "
                    f"{rec.loss:.6g}; pass --force to replace it"
                )
            problem = self._problem_for(s.records)
            s.ax.sync_throughput(self._throughput_of_observed(problem, s.records))
            s.ax.complete(trial, (value, LOSS_NOISE_SD), self._throughput_datum(problem, rec.arch))
            payload = _updated(s.meta.get(trial), {"observed_at": time.time(), "run": run})
            s.snapshot.put_trial_meta(self.name, {trial: payload})
            self._records = s.ax.records({**s.meta, trial: payload})
        problem = self._problem_for(self._records)
        idx, losses, _ = self._observations(problem, self._records)
        order = [r.trial for r in self._records if r.status == "observed"]
        warn_if_outside_band(problem, idx, losses, order.index(trial), f"trial {trial}")
        return self._trial_dict(next(r for r in self._records if r.trial == trial))

    def observe_runs(
        self, runs: str | Path | pd.DataFrame | Sequence, *, force: bool = False
    ) -> list[dict[str, Any]]:
        """Ingest finished runs from a run table (``load_runs`` format).

        A run whose shape matches a pending trial completes it; one matching an observed trial
        is refused unless ``force`` (which replaces the result); others are attached as new
        trials. Runs outside the budget (non-embedding params outside the band, another vocab
        size / tying, tokens off by more than 1%) are refused unless ``force``. Nothing is
        written unless every row is accepted.
        """
        from surrogate.runs import table_archs

        table = load_table(runs, force=force)
        archs = table_archs(table)
        names = (
            table["run"].astype(str).tolist()
            if "run" in table.columns
            else [f"row {i}" for i in range(len(table))]
        )
        losses = [
            checked_loss(v, force=force, where=f"run {n!r}") for v, n in zip(table["loss"], names)
        ]
        tokens = table["tokens"].to_numpy(np.float64) if "tokens" in table.columns else None
        if not force:
            check_runs_belong(self.spec, archs, names, tokens)
        # Campaign-level archs carry the campaign's vocab/tying (the Ax trial stores the block
        # shape only); the run's own non-embedding params are what the band checks.
        archs = [
            a.replace(vocab_size=self.spec.vocab_size, tie_embeddings=self.spec.tie_embeddings)
            for a in archs
        ]
        with self._session() as s:
            plan = plan_runs(s.records, archs, losses, names, force)
            problem = self._problem_for(s.records, [a for _, a, _, _ in plan])
            s.ax.sync_throughput(self._throughput_of_observed(problem, s.records))
            payloads: dict[int, dict[str, Any]] = {}
            for target, arch, value, name in plan:
                changes: dict[str, Any] = {"observed_at": time.time(), "run": name}
                if target is None:
                    target = s.ax.attach(arch)
                    changes["kind"] = "attached"
                s.ax.complete(target, (value, LOSS_NOISE_SD), self._throughput_datum(problem, arch))
                payloads[target] = _updated(s.meta.get(target), changes)
            s.snapshot.put_trial_meta(self.name, payloads)
            self._records = s.ax.records({**s.meta, **payloads})
        return [self._trial_dict(r) for r in self._records if r.trial in payloads]

    @staticmethod
    def _throughput_datum(problem: Problem, arch: Arch) -> tuple[float, float]:
        """``(tokens/s, sem)`` the campaign reports to Ax for ``arch`` (measured where cached)."""
        i = problem.index_of(arch)
        tps = float(problem.throughput_mean[i])
        return tps, tps * float(problem.throughput_rel_sigma[i])

    def _throughput_of_observed(
        self, problem: Problem, records: Sequence[TrialRecord]
    ) -> dict[int, tuple[float, float]]:
        return {
            r.trial: self._throughput_datum(problem, r.arch)
            for r in records
            if r.status == "observed"
        }

    # ---- training jobs -------------------------------------------------------------------
    def record_job(self, trial: int, job: dict[str, Any]) -> None:
        """Store ``job`` (backend, id, run folder, state, reason: JSON-able) with ``trial``;
        keys given replace the stored ones (:mod:`optim.campaign.jobs` keeps this current)."""
        with self._session() as s:
            if trial not in {r.trial for r in s.records}:
                raise CampaignError(f"campaign {self.name!r} has no trial {trial}")
            payload = _updated(s.meta.get(trial), {})
            payload["job"] = {**payload.get("job", {}), **job}
            s.snapshot.put_trial_meta(self.name, {trial: payload})
            self._records = s.ax.records({**s.meta, trial: payload})

    def fail_trial(self, trial: int, reason: str) -> None:
        """Mark a pending trial failed (its training job failed) with ``reason``; a failed
        trial is not pending any more and its shape may be proposed again."""
        with self._session() as s:
            rec = next((r for r in s.records if r.trial == trial), None)
            if rec is None or rec.status != "pending":
                raise CampaignError(f"trial {trial} of campaign {self.name!r} is not pending")
            s.ax.fail(trial, reason)
            payload = _updated(s.meta.get(trial), {})
            payload["job"] = {**payload.get("job", {}), "state": "failed", "reason": reason}
            s.snapshot.put_trial_meta(self.name, {trial: payload})
            self._records = s.ax.records({**s.meta, trial: payload})

    def reload(self) -> "Campaign":
        """This campaign's current state from the store (another process may have changed it)."""
        self._reload_records()
        return self

    # ---- reporting -----------------------------------------------------------------------
    def _trial_dict(self, rec: TrialRecord) -> dict[str, Any]:
        row = trial_row(rec, self.spec.in_band(rec.arch))
        job = rec.meta.get("job") or {}
        state = {"observed": "completed", "failed": "failed"}.get(rec.status)
        row.update(
            {
                "job_backend": job.get("backend"),
                "job_id": job.get("id"),
                "job_state": state
                or job.get("state")
                or ("pending" if rec.status == "pending" else rec.status),
                "failure_reason": job.get("reason") if rec.status == "failed" else None,
            }
        )
        return row

    def trials(self, *, now: bool = False) -> list[dict[str, Any]]:
        """Every trial (pending, observed, abandoned) with the prediction made at proposal.

        Args:
            now: also give the current model's prediction for each trial's shape
                (``pred_loss_mean_now``, ``pred_loss_q05_now``, ``pred_loss_q95_now``,
                ``pred_tokens_per_s_now``; fits the model once per snapshot).
        """
        rows = [self._trial_dict(r) for r in self._records]
        if now and rows:
            problem = self.problem
            mean, q05, q95 = self.candidate_loss()
            for row, rec in zip(rows, self._records):
                i = problem.index_of(rec.arch)
                row.update(
                    {
                        "pred_loss_mean_now": jsonable(mean[i]),
                        "pred_loss_q05_now": jsonable(q05[i]),
                        "pred_loss_q95_now": jsonable(q95[i]),
                        "pred_tokens_per_s_now": jsonable(problem.throughput_mean[i]),
                    }
                )
        return rows

    def candidates_table(self) -> pd.DataFrame:
        """The proposable candidates: ``candidate`` (index into :attr:`problem`), ``label``,
        shape features, ``pred_loss_mean/q05/q95`` (a new run given the observations),
        ``pred_tokens_per_s`` and ``throughput_source``."""
        problem = self.problem
        mean, q05, q95 = self.candidate_loss()
        rows = []
        for i in np.flatnonzero(problem.proposable):
            arch = problem.candidates[i]
            rows.append(
                {
                    "candidate": int(i),
                    "label": arch.label(),
                    **arch.features(),
                    "pred_loss_mean": float(mean[i]),
                    "pred_loss_q05": float(q05[i]),
                    "pred_loss_q95": float(q95[i]),
                    "pred_tokens_per_s": float(problem.throughput_mean[i]),
                    "throughput_source": str(problem.throughput_source[i]),
                }
            )
        return pd.DataFrame(rows)

    def status(self) -> dict[str, Any]:
        """A JSON-able summary of the campaign (with :func:`optim.core.weighting.prior_status`:
        ``prior_weight``, ``prior_loo_spearman`` and ``warnings`` for observed runs outside
        the prior's 90% band for them given the others)."""
        from optim.core.weighting import prior_status

        problem = self.problem
        recs = self._records
        observed = [r for r in recs if r.status == "observed"]
        best = min(observed, key=lambda r: r.loss or math.inf) if observed else None
        ref_loss, ref_tps = problem.reference_point(self.candidate_loss()[0])
        prior = self._prior
        return {
            "name": self.name,
            "store": str(self.store.path),
            "spec": self.spec.to_dict(),
            "hardware": self.spec.hardware,
            "workload": str(self.spec.workload),
            "tokens": self.spec.tokens,
            "params": self.spec.params,
            "band": self.spec.band,
            "budget_bounds": list(self.spec.budget_bounds()),
            "n_candidates": int(problem.n_grid),
            "n_proposable": int(problem.proposable.sum()),
            "n_measured_throughput": int((problem.throughput_source == "measured").sum()),
            "n_trials": len(recs),
            "n_pending": sum(r.status == "pending" for r in recs),
            "n_observed": len(observed),
            "best_observed_loss": best.loss if best else None,
            "best_observed_trial": best.trial if best else None,
            "observed_pareto_trials": self.observed_pareto_trials() if observed else [],
            "ref_point": {"loss": ref_loss, "tokens_per_s": ref_tps},
            "prior": {
                "law": prior.law,
                "reference_source": prior.reference_source,
                "num_samples": prior.num_samples,
                "noise_sigma": jsonable(prior.noise_sigma_for(self.spec.source)),
            },
            "source": self.spec.source,
            "throughput_backend": self.spec.workload.backend,
            "throughput_warnings": list(problem.throughput_warnings),
            **prior_status(
                problem,
                *self._observations(problem, recs)[:2],
                [f"trial {r.trial}" for r in observed],
            ),
            "trials": self.trials(now=True),
        }

    def observed_pareto_trials(self) -> list[int]:
        """Observed Pareto-optimal trials by Ax's own observed-data frontier (no model fit)."""
        with self.store.read() as path, ax_session(path) as url:
            ax = _ax_load(url, self.spec, self.store)
            try:
                return ax.observed_pareto_trials()
            except Exception as exc:  # noqa: BLE001 - shown, never hidden as an empty front
                raise CampaignError(
                    f"Ax could not compute the observed Pareto frontier of "
                    f"{self.name!r}: {type(exc).__name__}: "
                    f"{' '.join(str(exc).split())[:200]}"
                ) from None

    def pareto(self) -> list[dict[str, Any]]:
        """Current Pareto set over the budget: observed trials (observed loss) and unobserved
        candidates (predicted mean loss), maximizing tokens/s and minimizing loss.

        Candidates predicted (or observed) to violate ``max_loss`` / ``min_throughput`` are
        left out. Each dict has the proposal fields plus ``observed_loss``, ``source``
        (``"observed"`` / ``"predicted"``) and ``trial`` (or ``None``), sorted by throughput.
        """
        from optim.core.front import front_indices

        problem = self.problem
        pred = self.candidate_loss()
        idx, loss, _ = self._observations(problem, self._records)
        observed_loss: dict[int, list[float]] = {}
        for i, v in zip(idx, loss):
            observed_loss.setdefault(int(i), []).append(float(v))
        trial_of = {
            problem.index_of(r.arch): r.trial
            for r in self._records
            if r.status in ("pending", "observed")
        }
        value = pred[0].copy()
        for i, vs in observed_loss.items():
            value[i] = float(np.mean(vs))
        observed_in_band = np.isin(np.arange(problem.n), idx) & problem.in_band
        front = front_indices(problem, value, np.flatnonzero(problem.proposable | observed_in_band))
        rows = []
        for i in front:
            row = candidate_row(problem, int(i), pred, trial=trial_of.get(int(i)))
            obs = observed_loss.get(int(i))
            row["observed_loss"] = float(np.mean(obs)) if obs else None
            row["source"] = "observed" if obs else "predicted"
            rows.append(row)
        return rows

    def export(self, directory: str | Path, ranks: Sequence[int] | None = None) -> list[Path]:
        """Write the Pareto set's HF configs, ``pareto.csv`` and ``pareto.json`` into
        ``directory`` (``ranks``: 0-based positions in :meth:`pareto` to export; all if None)."""
        from .export import export_pareto

        rows = self.pareto()
        if ranks is not None:
            rows = [rows[i] for i in ranks]
        return export_pareto(rows, directory, campaign=self.status_brief())

    def status_brief(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.spec.params,
            "tokens": self.spec.tokens,
            "hardware": self.spec.hardware,
            "workload": str(self.spec.workload),
        }

    def shape_table(self, archs: Iterable[Arch]) -> pd.DataFrame:
        """Predicted loss (mean, 90% band) and throughput of any shapes under this campaign's
        model and observations; ``in_band`` says whether a shape is inside the budget."""
        archs = list(archs)
        if not all(isinstance(a, Arch) for a in archs):
            raise CampaignError("shape_table takes Arch objects")
        # A problem of its own: the campaign's candidate set (and its cached model) stays as is.
        problem = Problem.build(
            self.spec, self._prior, extra_archs=[r.arch for r in self._records] + archs
        )
        pred = self._loss_at_candidates(problem, self._records)
        rows = [candidate_row(problem, _index(problem, a), pred) for a in archs]
        return pd.DataFrame(rows).drop(columns=["trial", "ehvi"])


# ---- helpers ----------------------------------------------------------------------------------
def _index(problem: Problem, arch: Arch) -> int:
    """``arch``'s candidate index (it was added to ``problem``, so it is there)."""
    i = problem.index_of(arch)
    if i is None:
        raise CampaignError(f"{arch.label()} is not among the problem's candidates")
    return i


def _trial_state(records: Sequence[TrialRecord]) -> list[tuple[int, str]]:
    return [(r.trial, r.status) for r in records]


def _updated(payload: dict[str, Any] | None, changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(payload) if payload else {"kind": "attached"}
    out.update({k: v for k, v in changes.items() if v is not None})
    return out


def _campaign_row(snapshot: Snapshot, name: str) -> Any:
    row = snapshot.campaign(name)
    if row is None:
        names = snapshot.names()
        raise CampaignError(
            f"unknown campaign {name!r} in {snapshot.store.path} "
            f"(known: {', '.join(names) or 'none'})"
        )
    return row


def _spec_of(data: dict[str, Any], name: str, store: CampaignStore) -> CampaignSpec:
    try:
        return CampaignSpec.from_dict(data)
    except (ArchoptError, TypeError, ValueError, KeyError) as exc:
        raise StoreError(
            f"campaign {name!r} in {store.path} has an unreadable spec: "
            f"{' '.join(str(exc).split())[:200]}"
        ) from None


def _ax_load(url: str, spec: CampaignSpec, store: CampaignStore) -> AxCampaign:
    try:
        return AxCampaign.load(url, spec)
    except AxError as exc:
        raise StoreError(f"campaign {spec.name!r} in {store.path}: {exc}") from None


def _campaign_prior(spec: CampaignSpec, runs: pd.DataFrame | None, progress: bool) -> LawPosterior:
    """The default prior, or the law refitted on the bundled tables plus ``runs``."""
    from surrogate.prior import DEFAULT_PRIOR_SETTINGS, default_prior, default_prior_runs

    if runs is None and spec.law == DEFAULT_PRIOR_SETTINGS["law"]:
        return default_prior(progress=progress)
    from surrogate.bayes import fit_bayes
    from surrogate.runs import bundled_runs

    table = bundled_runs() if runs is None else pd.concat([bundled_runs(), runs], ignore_index=True)
    settings = dict(DEFAULT_PRIOR_SETTINGS)
    settings.pop("law")
    return fit_bayes(default_prior_runs(table), spec.law, progress=progress, **settings)


def _prior_to_bytes(prior: LawPosterior) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = prior.save(Path(tmp) / "prior.nc")
        return Path(path).read_bytes()


def _prior_from_bytes(blob: bytes | None, name: str, store: CampaignStore) -> LawPosterior:
    from surrogate.posterior import LawPosterior

    if not blob:
        raise StoreError(f"campaign {name!r} in {store.path} has no stored prior")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prior.nc"
        path.write_bytes(blob)
        try:
            return LawPosterior.load(path)
        except ArchoptError as exc:
            raise StoreError(
                f"campaign {name!r} in {store.path}: its stored prior is unreadable ({exc})"
            ) from None


def list_campaigns(store: CampaignStore | str | Path | None = None) -> list[str]:
    """Names of the campaigns in the store."""
    return as_store(store).list_names()


def delete_campaign(name: str, store: CampaignStore | str | Path | None = None) -> None:
    """Remove a campaign (its Ax experiment and archopt rows) from the store."""
    store = as_store(store)
    if name not in store.list_names():
        raise CampaignError(f"unknown campaign {name!r} in {store.path}")
    with store.write() as path:
        with ax_session(path):
            delete_ax_experiment(name)
        Snapshot(path, store).delete_campaign(name)
