"""A campaign: one Ax experiment over the budget-preserving candidate set, resumable from disk.

:class:`Campaign` is the facade the CLI, the app and the benchmarks call, in the manner of Ax's
``Client``: its methods are grouped in sections (construction, views, the loop, reporting) and
it holds no SQL and no Ax code of its own. The store (:mod:`.storage`: a SQLite file or a
PostgreSQL database) owns the transactions, :mod:`.snapshot` archopt's tables, the Ax adapter
(:mod:`.ax_adapter`) the experiment, the optimization core (:mod:`optim.core`) the candidate set,
the loss model and the acquisition, and :mod:`.rows` formats the JSON rows
(:data:`PROPOSAL_FIELDS`).

Every state change is one store transaction (:meth:`Campaign._session`): load the Ax experiment,
change, save, commit. Concurrent processes serialise, a crash leaves the store as it was, and a
refused input changes nothing.

A loaded :class:`Campaign` is a snapshot: the loss model conditioned on its observed runs is fitted
once per snapshot and reused by :meth:`candidate_loss`, :meth:`status` and :meth:`pareto`.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from models.arch import Arch
from optim.core.problem import LOSS_NOISE_SD, CampaignSpec, Problem

from .ax_adapter import AX_PARAMETERS, LOSS_METRIC, THROUGHPUT_METRIC, TrialRecord
from .errors import CampaignError
from .rows import (
    PRIOR_FIELDS,
    PROPOSAL_FIELDS,
    candidate_row,
    candidates_frame,
    current_prediction,
    jsonable,
    pareto_rows,
    trial_row,
)
from .runs import checked_loss, checked_runs, load_table, observations, plan_runs
from .snapshot import CampaignState, prior_from_bytes, prior_to_bytes
from .storage import Store, open_store

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


#: A store from a :class:`~optim.campaign.storage.Store`, a path, a URL or ``None`` (default).
as_store = open_store
StoreArg = Store | str | Path | None


# ---- the campaign -----------------------------------------------------------------------------
class Campaign:
    """A loaded campaign (a snapshot; every mutating method re-reads and writes the store under
    its lock). Create with :meth:`create`, open with :meth:`load`."""

    def __init__(
        self,
        spec: CampaignSpec,
        store: Store,
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
        store: StoreArg = None,
        *,
        prior: LawPosterior | None = None,
        progress: bool = True,
    ) -> "Campaign":
        """Create a campaign and save it (refused when the name exists).

        Args:
            spec: what to optimize.
            runs: extra prior run tables (paths or a DataFrame): the law is refitted on the
                bundled tables plus these. ``None``: the cached default prior.
            store: the store: a path, a ``postgresql://`` URL or a :class:`Store` (default
                ``$ARCHOPT_HOME/campaigns.sqlite``).
            prior: use this ``LawPosterior`` instead of fitting one (tests, notebooks).
        """
        store = open_store(store)
        if spec.name in store.list_names():
            raise CampaignError(f"campaign {spec.name!r} already exists in {store.location}")
        table = load_table(runs) if runs is not None and prior is None else None
        Problem.build(spec, None)  # validates the spec (candidates, memory) before a long fit
        if prior is None:
            from surrogate.prior import campaign_prior

            prior = campaign_prior(spec.law, table, progress=progress)
        blob = prior_to_bytes(prior)
        problem = Problem.build(spec, prior)
        info = {"prior_runs": int(len(table)) if table is not None else 0, "prior": repr(prior)}
        with store.transaction(write=True) as snapshot:
            if snapshot.has(spec.name):
                raise CampaignError(f"campaign {spec.name!r} already exists in {store.location}")
            snapshot.ax_create(spec)
            snapshot.insert_campaign(spec.name, spec.to_dict(), blob, info)
        campaign = cls(spec, store, prior, [], info)
        campaign._problem = problem
        return campaign

    @classmethod
    def load(cls, name: str, store: StoreArg = None) -> "Campaign":
        """Open a saved campaign (unknown name: :class:`CampaignError`)."""
        store = open_store(store)
        if not store.exists():
            raise CampaignError(f"unknown campaign {name!r}: no campaign store at {store.location}")
        with store.transaction(write=False) as snapshot:
            state = snapshot.open_campaign(name)
        prior = prior_from_bytes(state.row, store.location)
        return cls(state.spec, store, prior, state.records, state.row.info)

    @contextlib.contextmanager
    def _session(self) -> Iterator[CampaignState]:
        """The prologue of every change: open a write transaction, re-read this campaign's row
        and trials, load its Ax experiment; commit when the block succeeds."""
        with self.store.transaction(write=True) as snapshot:
            yield snapshot.open_campaign(self.name)

    # ---- views ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def prior(self) -> LawPosterior:
        """The campaign's ``LawPosterior``."""
        return self._prior

    def trial_records(self) -> list[TrialRecord]:
        """The trials as loaded (Ax state plus archopt's per-trial rows), in trial order."""
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

    def _loss_at_candidates(
        self, problem: Problem, records: Sequence[TrialRecord]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The campaign model's ``(mean, q05, q95)`` at every candidate (fitted once per set of
        observations, then cached)."""
        from optim.core.strategies import candidate_loss

        idx, loss, _ = observations(problem, records)
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
            idx, loss, pending = observations(problem, records)
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
        with self.store.transaction(write=False) as snapshot:
            self._records = snapshot.open_campaign(self.name, self.spec).records
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
        self._warn_outside_band({trial: f"trial {trial}"})
        return self._trial_dict(next(r for r in self._records if r.trial == trial))

    def observe_runs(
        self, runs: str | Path | pd.DataFrame | Sequence, *, force: bool = False
    ) -> list[dict[str, Any]]:
        """Ingest finished runs from a run table (``load_runs`` format).

        A run whose shape matches a pending trial completes it; one matching an observed trial
        is refused unless ``force`` (which replaces the result); others are attached as new
        trials. Runs outside the budget (non-embedding params outside the band, another vocab
        size / tying, tokens off by more than 1%) are refused unless ``force``. Nothing is
        written unless every row is accepted. Each ingested run outside the 90% band the law
        prior predicts for it from the other runs is recorded and warned about (one
        :class:`optim.core.weighting.PriorBandWarning` per run, named by its run name).
        """
        archs, losses, names = checked_runs(self.spec, runs, force=force)
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
        self._warn_outside_band({t: f"run {payloads[t]['run']!r} (trial {t})" for t in payloads})
        return [self._trial_dict(r) for r in self._records if r.trial in payloads]

    def _warn_outside_band(self, labels: dict[int, str]) -> None:
        """:func:`optim.core.weighting.warn_outside_band` for the trials in ``labels`` (trial ->
        how the warning names it), given every observed run."""
        from optim.core.weighting import warn_outside_band

        problem = self._problem_for(self._records)
        idx, losses, _ = observations(problem, self._records)
        order = [r.trial for r in self._records if r.status == "observed"]
        warn_outside_band(problem, idx, losses, {order.index(t): n for t, n in labels.items()})

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
    def record_job(self, trial: int, job: dict[str, Any], *, key: str = "job") -> None:
        """Store ``job`` (backend, id, run folder, state, reason: JSON-able) with ``trial`` under
        ``key`` (``"job"``: its training job, ``"measure"``: its measurement job); keys given
        replace the stored ones (:mod:`optim.campaign.jobs` keeps this current)."""
        with self._session() as s:
            if trial not in {r.trial for r in s.records}:
                raise CampaignError(f"campaign {self.name!r} has no trial {trial}")
            self._put_job(s, trial, job, key)

    def fail_trial(self, trial: int, reason: str) -> None:
        """Mark a pending trial failed (its training job failed) with ``reason``; a failed
        trial is not pending any more and its shape may be proposed again."""
        with self._session() as s:
            rec = next((r for r in s.records if r.trial == trial), None)
            if rec is None or rec.status != "pending":
                raise CampaignError(f"trial {trial} of campaign {self.name!r} is not pending")
            s.ax.fail(trial, reason)
            self._put_job(s, trial, {"state": "failed", "reason": reason})

    def _put_job(self, s: CampaignState, trial: int, job: dict[str, Any], key: str = "job") -> None:
        payload = _updated(s.meta.get(trial), {})
        payload[key] = {**payload.get(key, {}), **job}
        s.snapshot.put_trial_meta(self.name, {trial: payload})
        self._records = s.ax.records({**s.meta, trial: payload})

    def refresh_throughput(self) -> list[int]:
        """Rebuild the candidate set with the measurement cache as it is now and update the
        tokens/s Ax stores for observed trials whose value changed; returns those trials."""
        self._problem = None
        with self._session() as s:
            problem = self._problem_for(s.records)
            return s.ax.sync_throughput(self._throughput_of_observed(problem, s.records))

    def reload(self) -> "Campaign":
        """This campaign's current state from the store (another process may have changed it)."""
        self._reload_records()
        return self

    # ---- reporting -----------------------------------------------------------------------
    def _trial_dict(self, rec: TrialRecord) -> dict[str, Any]:
        return trial_row(rec, self.spec.in_band(rec.arch))

    def trials(self, *, now: bool = False) -> list[dict[str, Any]]:
        """Every trial (pending, observed, abandoned) with the prediction made at proposal.

        Args:
            now: also give the current model's prediction for each trial's shape
                (``pred_loss_mean_now``, ``pred_loss_q05_now``, ``pred_loss_q95_now``,
                ``pred_tokens_per_s_now``; fits the model once per snapshot).
        """
        rows = [self._trial_dict(r) for r in self._records]
        if now and rows:
            for row, rec in zip(rows, self._records):
                row.update(current_prediction(self.problem, self.candidate_loss(), rec.arch))
        return rows

    def candidates_table(self) -> pd.DataFrame:
        """The proposable candidates: ``candidate`` (index into :attr:`problem`), ``label``,
        shape features, ``pred_loss_mean/q05/q95`` (a new run given the observations),
        ``pred_tokens_per_s`` and ``throughput_source``."""
        return candidates_frame(self.problem, self.candidate_loss())

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
            "store": self.store.location,
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
                *observations(problem, recs)[:2],
                [f"trial {r.trial}" for r in observed],
            ),
            "trials": self.trials(now=True),
        }

    def observed_pareto_trials(self) -> list[int]:
        """Observed Pareto-optimal trials by Ax's own observed-data frontier (no model fit)."""
        with self.store.transaction(write=False) as snapshot:
            ax = snapshot.ax_load(self.spec)
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
        return pareto_rows(self.problem, self.candidate_loss(), self._records)

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


def list_campaigns(store: StoreArg = None) -> list[str]:
    """Names of the campaigns in the store."""
    return open_store(store).list_names()


def delete_campaign(name: str, store: StoreArg = None) -> None:
    """Remove a campaign (its Ax experiment and archopt rows) from the store."""
    store = open_store(store)
    if name not in store.list_names():  # (a missing file store is not created)
        raise CampaignError(f"unknown campaign {name!r} in {store.location}")
    with store.transaction(write=True) as snapshot:
        snapshot.require(name)
        snapshot.delete_campaign(name)
