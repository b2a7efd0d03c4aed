"""A campaign: one Ax experiment over the budget-preserving candidate set, resumable from disk.

The :class:`Campaign` object is what the CLI, the app and the benchmarks call. Ax owns the
experiment, its trials, their data and storage (:mod:`optim.campaign.store`); archopt owns the
candidate set (:class:`~optim.core.problem.Problem`), the loss model and the acquisition
(:mod:`optim.core.strategies`). Proposals become Ax trials through ``Client.attach_trial`` (Ax's own
generators cannot express the nonlinear parameter budget) and results arrive through
``Client.complete_trial`` with the loss and the throughput the campaign uses for that shape.

Every state change is a load-modify-save under the store's file lock on a copy of the store
(:meth:`CampaignStore.write`): concurrent processes serialize, a crash leaves the old store,
and a refused input leaves the store byte-identical.

Dict field names are the CLI's JSON contract (:data:`PROPOSAL_FIELDS`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from models.arch import SHAPE_FIELDS, Arch
from models.errors import ArchoptError

from optim.core.problem import LOSS_NOISE_SD, CampaignSpec, Problem
from .store import CampaignStore, StoreError, ax_session, connect

__all__ = ["Campaign", "CampaignSpec", "CampaignError", "list_campaigns", "delete_campaign",
           "PROPOSAL_FIELDS", "TrialRecord", "AX_PARAMETERS"]

#: Fields every proposal / Pareto / trial dict carries (the CLI JSON contract).
PROPOSAL_FIELDS: tuple[str, ...] = (
    "trial", *SHAPE_FIELDS, "params", "non_embedding_params", "pred_loss_mean", "pred_loss_q05",
    "pred_loss_q95", "pred_tokens_per_s", "mlp_attn_ratio", "d_over_sqrt_n", "gqa_group", "ehvi")
#: Arch fields that are Ax parameters (vocab size and tying are fixed per campaign).
AX_PARAMETERS: tuple[str, ...] = ("d_model", "n_layers", "n_heads", "n_kv_heads", "head_dim",
                                  "ffn_dim")
#: Integer bounds of the Ax parameters.
AX_BOUNDS: dict[str, tuple[int, int]] = {"d_model": (32, 65536), "n_layers": (1, 512),
                                         "n_heads": (1, 1024), "n_kv_heads": (1, 1024),
                                         "head_dim": (8, 1024), "ffn_dim": (32, 262144)}
LOSS_METRIC = "loss"
THROUGHPUT_METRIC = "tokens_per_s"
#: Relative tolerance on a run's training tokens versus the campaign's.
TOKENS_RTOL = 0.01


class CampaignError(ArchoptError):
    """Unknown campaign or trial, a repeated result, a run outside the budget..."""


@dataclass
class TrialRecord:
    """One Ax trial as archopt sees it."""

    trial: int
    arch: Arch
    status: str  # "pending" | "observed" | "abandoned"
    loss: float | None
    meta: dict[str, Any] = field(default_factory=dict)


# ---- Ax glue ----------------------------------------------------------------------------------
def _storage_config(url: str):
    from ax.api.configs import StorageConfig

    return StorageConfig(url=url)


def _ax_params(arch: Arch) -> dict[str, float]:
    out = {name: float(getattr(arch, name)) for name in AX_PARAMETERS}
    for name, value in out.items():
        lo, hi = AX_BOUNDS[name]
        if not lo <= value <= hi:
            raise CampaignError(f"{arch.label()}: {name}={value:.0f} is outside [{lo}, {hi}]")
    return out


def _objective_thresholds(spec: CampaignSpec) -> list[str]:
    """Ax objective thresholds: the user's constraints, else bounds that exclude nothing.

    (archopt's own hypervolume reference point moves with the model's predictions; Ax's
    thresholds are fixed at creation, so they must not cut observed trials from Ax's frontier.)
    """
    loss = spec.max_loss if spec.max_loss is not None else 1e6
    tps = spec.min_throughput if spec.min_throughput is not None else 0.0
    return [f"{LOSS_METRIC} <= {loss:.9g}", f"{THROUGHPUT_METRIC} >= {tps:.9g}"]


def _new_client(url: str, spec: CampaignSpec, problem: Problem):
    """Configure a new Ax experiment for ``spec`` (saved to the store by the Client)."""
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    client = Client(storage_config=_storage_config(url))
    # Float-typed on purpose: Ax enumerates every value of an integer range whenever it builds
    # an adapter (its observed Pareto frontier does), seconds for these ranges; archopt never
    # lets Ax generate, values are exact integers and are checked on the way in and out.
    parameters = [RangeParameterConfig(name=name, parameter_type="float",
                                       bounds=tuple(float(b) for b in AX_BOUNDS[name]))
                  for name in AX_PARAMETERS]
    client.configure_experiment(parameters=parameters, name=spec.name,
                                description=f"archopt campaign: {spec.params:.4g} non-embedding "
                                            f"params, {spec.tokens:.4g} tokens, {spec.hardware}")
    # Objective thresholds (outcome constraints on the objectives) = the reference point; Ax
    # otherwise infers them and its Pareto set can come back empty (NOTES.md).
    client.configure_optimization(objective=f"-{LOSS_METRIC}, {THROUGHPUT_METRIC}",
                                  outcome_constraints=_objective_thresholds(spec))
    client.configure_generation_strategy()
    return client


def _load_client(url: str, name: str):
    from ax.api.client import Client

    try:
        return Client.load_from_database(name, storage_config=_storage_config(url))
    except Exception as exc:  # Ax raises ObjectNotFoundError / ValueError variants
        raise CampaignError(f"campaign {name!r} cannot be loaded from the store: "
                            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None


def _records(client, spec: CampaignSpec, meta: dict[int, dict]) -> list[TrialRecord]:
    from ax.core.trial_status import TrialStatus

    exp = client._experiment  # the Client exposes no public accessor for trials in Ax 1.3
    losses = _stored_means(client, LOSS_METRIC)
    out = []
    for index, trial in sorted(exp.trials.items()):
        params = trial.arm.parameters
        arch = Arch(**{k: params[k] for k in AX_PARAMETERS}, vocab_size=spec.vocab_size,
                    tie_embeddings=spec.tie_embeddings)
        if trial.status == TrialStatus.COMPLETED and index in losses:
            status = "observed"
        elif trial.status in (TrialStatus.ABANDONED, TrialStatus.FAILED):
            status = "abandoned"
        else:
            status = "pending"
        out.append(TrialRecord(int(index), arch, status, losses.get(index), meta.get(int(index), {})))
    return out


def _stored_means(client, metric: str) -> dict[int, float]:
    """Trial index -> the mean Ax stores for ``metric`` (the latest attached value)."""
    df = client._experiment.lookup_data().df  # no public data accessor in Ax 1.3
    if not len(df):
        return {}
    part = df[df["metric_name"] == metric]
    return {int(t): float(v) for t, v in zip(part["trial_index"], part["mean"])}


def _throughput_datum(problem: Problem, arch: Arch) -> tuple[float, float]:
    """``(tokens/s, sem)`` the campaign reports to Ax for ``arch`` (measured where cached)."""
    i = problem.index_of(arch)
    tps = float(problem.throughput_mean[i])
    return tps, tps * float(problem.throughput_rel_sigma[i])


def _sync_throughput(client, problem: Problem, records: Sequence[TrialRecord]) -> list[int]:
    """Re-attach the tokens/s of observed trials whose value in the problem changed since they
    completed (a measurement replaced the model value, or a recalibration); returns the trials
    updated. Ax's observed Pareto frontier then uses the current values."""
    stored = _stored_means(client, THROUGHPUT_METRIC)
    updated = []
    for rec in records:
        if rec.status != "observed" or rec.trial not in stored:
            continue
        tps, sem = _throughput_datum(problem, rec.arch)
        if abs(tps / stored[rec.trial] - 1.0) > 1e-9:
            client.attach_data(rec.trial, raw_data={THROUGHPUT_METRIC: (tps, sem)})
            updated.append(rec.trial)
    return updated


# ---- prior blobs ------------------------------------------------------------------------------
def _prior_to_bytes(prior: Any) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = prior.save(Path(tmp) / "prior.nc")
        return Path(path).read_bytes()


def _prior_from_bytes(blob: bytes) -> Any:
    from surrogate.posterior import LawPosterior

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prior.nc"
        path.write_bytes(blob)
        return LawPosterior.load(path)


def _fit_prior(spec: CampaignSpec, runs: pd.DataFrame | None, progress: bool) -> Any:
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


def _finite_loss(loss: Any) -> float:
    try:
        value = float(loss)
    except (TypeError, ValueError):
        raise CampaignError(f"loss must be a number, got {loss!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise CampaignError(f"loss must be a positive finite number, got {loss!r}")
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---- the campaign -----------------------------------------------------------------------------
class Campaign:
    """A loaded campaign (a snapshot; every method re-reads and writes the store under lock).

    Create with :meth:`create`, open with :meth:`load`.
    """

    def __init__(self, spec: CampaignSpec, store: CampaignStore, prior: Any,
                 records: list[TrialRecord], info: dict[str, Any]) -> None:
        self.spec = spec
        self.store = store
        self._prior = prior
        self._records = records
        self.info = info
        self._problem: Problem | None = None
        self._problem_key: tuple | None = None
        self._candidates_override: list[Arch] | None = None

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def create(cls, spec: CampaignSpec, runs: str | Path | pd.DataFrame | Sequence | None = None,
               store: CampaignStore | str | Path | None = None, *, prior: Any | None = None,
               progress: bool = True) -> "Campaign":
        """Create a campaign and save it (refused when the name exists).

        Args:
            spec: what to optimize.
            runs: extra prior run tables (paths or a DataFrame): the law is refitted on the
                bundled tables plus these. ``None``: the cached default prior.
            store: the store (default ``$ARCHOPT_HOME/campaigns.sqlite``).
            prior: use this ``LawPosterior`` instead of fitting one (tests, notebooks).
        """
        store = _as_store(store)
        if spec.name in store.list_names():
            raise CampaignError(f"campaign {spec.name!r} already exists in {store.path}")
        table = None
        if runs is not None and prior is None:
            table = _load_table(runs)
        problem = Problem.build(spec, None)  # validates the spec (candidates, memory) early
        if prior is None:
            prior = _fit_prior(spec, table, progress)
        blob = _prior_to_bytes(prior)
        problem = Problem.build(spec, prior)
        info = {"prior_runs": int(len(table)) if table is not None else 0,
                "prior": repr(prior)}
        with store.write() as path:
            with connect(path) as con:
                if con.execute("SELECT 1 FROM archopt_campaigns WHERE name = ?",
                               (spec.name,)).fetchone():
                    raise CampaignError(f"campaign {spec.name!r} already exists in {store.path}")
            with ax_session(path) as url:
                _new_client(url, spec, problem)
            with connect(path) as con:
                con.execute("INSERT INTO archopt_campaigns VALUES (?,?,?,?,?)",
                            (spec.name, json.dumps(spec.to_dict()), blob, json.dumps(info),
                             time.time()))
                con.commit()
        campaign = cls(spec, store, prior, [], info)
        campaign._problem, campaign._problem_key = problem, ()
        return campaign

    @classmethod
    def load(cls, name: str, store: CampaignStore | str | Path | None = None) -> "Campaign":
        """Open a saved campaign (unknown name: :class:`CampaignError`)."""
        store = _as_store(store)
        if not store.exists():
            raise CampaignError(f"unknown campaign {name!r}: no campaign store at {store.path}")
        with store.read() as path:
            spec, blob, info, meta = _read_row(path, name, store)
            with ax_session(path) as url:
                client = _load_client(url, name)
                records = _records(client, spec, meta)
        return cls(spec, store, _prior_from_bytes(blob), records, info)

    # ---- views -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def prior(self) -> Any:
        """The campaign's ``LawPosterior``."""
        return self._prior

    def trial_records(self) -> list[TrialRecord]:
        return list(self._records)

    @property
    def problem(self) -> Problem:
        """The candidate set with every trial's shape added (built lazily, cached)."""
        return self._problem_for(self._records)

    def _problem_for(self, records: Sequence[TrialRecord], extra: Sequence[Arch] = ()) -> Problem:
        archs = tuple(dict.fromkeys([r.arch for r in records] + list(extra)))
        if self._problem is None or self._problem_key is None or not set(archs) <= set(
                self._problem.candidates):
            self._problem = Problem.build(self.spec, self._prior, extra_archs=archs,
                                          candidates=self._candidates_override)
            self._problem_key = archs
        return self._problem

    def _observations(self, problem: Problem, records: Sequence[TrialRecord]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = [(problem.index_of(r.arch), r.loss) for r in records if r.status == "observed"]
        pend = [problem.index_of(r.arch) for r in records if r.status == "pending"]
        idx = np.array([i for i, _ in obs], dtype=np.int64)
        loss = np.array([v for _, v in obs], dtype=np.float64)
        return idx, loss, np.array(pend, dtype=np.int64)

    def _row(self, problem: Problem, i: int, pred: tuple[np.ndarray, ...], *,
             trial: int | None = None, ehvi: float | None = None) -> dict[str, Any]:
        arch = problem.candidates[i]
        feats = arch.features()
        mean, q05, q95 = pred
        tps = float(problem.throughput_mean[i])
        rel = float(problem.throughput_rel_sigma[i])
        row: dict[str, Any] = {"trial": trial, **arch.shape(), "params": arch.params,
                               "non_embedding_params": arch.non_embedding_params,
                               "pred_loss_mean": float(mean[i]), "pred_loss_q05": float(q05[i]),
                               "pred_loss_q95": float(q95[i]), "pred_tokens_per_s": tps,
                               "pred_tokens_per_s_q05": tps * math.exp(-1.6448536 * rel),
                               "pred_tokens_per_s_q95": tps * math.exp(1.6448536 * rel),
                               "throughput_source": str(problem.throughput_source[i]),
                               "mlp_attn_ratio": feats["mlp_attn_ratio"],
                               "d_over_sqrt_n": feats["d_over_sqrt_n"],
                               "gqa_group": feats["gqa_group"], "aspect_ratio": feats["aspect_ratio"],
                               "ehvi": ehvi, "memory_bytes": float(problem.memory_bytes[i]),
                               "fits_in_memory": bool(problem.fits_in_memory[i]),
                               "in_band": bool(problem.in_band[i]), "label": arch.label()}
        return {k: _jsonable(v) for k, v in row.items()}

    def predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, q05, q95)`` predicted loss of a new run at every candidate of :attr:`problem`."""
        from optim.core.strategies import predict

        problem = self.problem
        idx, loss, _ = self._observations(problem, self._records)
        return predict(problem, idx, loss)

    # ---- the loop --------------------------------------------------------------------
    def propose(self, k: int = 4, *, strategy: str = "archopt", seed: int | None = None,
                **strategy_options: Any) -> list[dict[str, Any]]:
        """Propose ``k`` architectures to train next and record them as Ax trials.

        Returns:
            One dict per proposal with :data:`PROPOSAL_FIELDS` (plus throughput band, source,
            label, strategy).
        """
        from optim.core.strategies import STRATEGIES

        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise CampaignError(f"k must be a positive integer, got {k!r}")
        if strategy not in STRATEGIES:
            raise CampaignError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        with self.store.write() as path:
            spec, _, _, meta = _read_row(path, self.name, self.store)
            with ax_session(path) as url:
                client = _load_client(url, self.name)
                records = _records(client, spec, meta)
                problem = self._problem_for(records)
                _sync_throughput(client, problem, records)
                idx, loss, pending = self._observations(problem, records)
                seed = len(records) if seed is None else int(seed)
                batch = STRATEGIES[strategy](**strategy_options).propose(
                    problem, idx, loss, int(k), pending_idx=pending, seed=seed)
                # Rows show the campaign's model (law prior + GP) for every strategy, so
                # proposals of different methods are comparable; the strategy's own numbers
                # are in the ProposalBatch.
                from optim.core.strategies import predict

                if problem.law_samples is not None:
                    values = predict(problem, idx, loss)
                else:
                    values = tuple(np.full(problem.n, np.nan) for _ in range(3))
                    for arr, own in zip(values, (batch.pred_loss_mean, batch.pred_loss_q05,
                                                 batch.pred_loss_q95)):
                        arr[batch.indices] = own
                rows = []
                for j, i in enumerate(batch.indices):
                    arch = problem.candidates[int(i)]
                    trial = int(client.attach_trial(parameters=_ax_params(arch)))
                    row = self._row(problem, int(i), values, trial=trial,
                                    ehvi=float(batch.ehvi[j]))
                    row["strategy"] = strategy
                    rows.append(row)
                now = time.time()
                payloads = {r["trial"]: {"kind": "proposed", "created_at": now, "proposal": r}
                            for r in rows}
                records = _records(client, spec, {**meta, **payloads})
            with connect(path) as con:
                for trial, payload in payloads.items():
                    con.execute("INSERT OR REPLACE INTO archopt_trials VALUES (?,?,?)",
                                (self.name, trial, json.dumps(payload)))
                con.commit()
            self._records = records
        return rows

    def observe(self, trial: int, loss: float, *, force: bool = False, run: str | None = None
                ) -> dict[str, Any]:
        """Record the final loss of a trained trial.

        A second result for the same trial is refused unless ``force`` (which replaces it).
        """
        value = _finite_loss(loss)
        try:
            trial = int(trial)
        except (TypeError, ValueError):
            raise CampaignError(f"trial must be an integer, got {trial!r}") from None
        with self.store.write() as path:
            spec, _, _, meta = _read_row(path, self.name, self.store)
            with ax_session(path) as url:
                client = _load_client(url, self.name)
                records = {r.trial: r for r in _records(client, spec, meta)}
                if trial not in records:
                    known = ", ".join(str(t) for t in sorted(records)) or "none"
                    raise CampaignError(f"campaign {self.name!r} has no trial {trial} "
                                        f"(trials: {known})")
                rec = records[trial]
                if rec.status == "observed" and not force:
                    raise CampaignError(f"trial {trial} of campaign {self.name!r} already has loss "
                                        f"{rec.loss:.6g}; pass --force to replace it")
                problem = self._problem_for(list(records.values()))
                _sync_throughput(client, problem, list(records.values()))
                self._complete(client, problem, rec.arch, trial, value)
                records = _records(client, spec, meta)
            payload = self._update_meta(path, trial, {"observed_at": time.time(), "run": run})
            for r in records:
                if r.trial == trial:
                    r.meta = payload
            self._records = records
        return self._trial_dict(next(r for r in self._records if r.trial == trial))

    def _complete(self, client, problem: Problem, arch: Arch, trial: int, loss: float) -> None:
        client.complete_trial(trial, raw_data={LOSS_METRIC: (loss, LOSS_NOISE_SD),
                                               THROUGHPUT_METRIC: _throughput_datum(problem, arch)})

    def _update_meta(self, path: Path, trial: int, changes: dict[str, Any]) -> dict[str, Any]:
        with connect(path) as con:
            row = con.execute("SELECT payload_json FROM archopt_trials WHERE campaign=? AND trial=?",
                              (self.name, trial)).fetchone()
            payload = json.loads(row[0]) if row else {"kind": "attached"}
            payload.update({k: v for k, v in changes.items() if v is not None})
            con.execute("INSERT OR REPLACE INTO archopt_trials VALUES (?,?,?)",
                        (self.name, trial, json.dumps(payload)))
            con.commit()
        return payload

    def observe_runs(self, runs: str | Path | pd.DataFrame | Sequence, *, force: bool = False
                     ) -> list[dict[str, Any]]:
        """Ingest finished runs from a run table (``load_runs`` format).

        A run whose shape matches a pending trial completes it; one matching an observed trial
        is refused unless ``force`` (which replaces the result); others are attached as new
        trials. Runs outside the budget (non-embedding params outside the band, another vocab
        size / tying, tokens off by more than 1%) are refused unless ``force``. Nothing is
        written unless every row is accepted.
        """
        table = _load_table(runs)
        lo, hi = self.spec.budget_bounds()
        from surrogate.runs import table_archs

        archs = table_archs(table)
        names = table["run"].astype(str).tolist() if "run" in table.columns else [
            f"row {i}" for i in range(len(table))]
        losses = [_finite_loss(v) for v in table["loss"]]
        tokens = table["tokens"].to_numpy(np.float64) if "tokens" in table.columns else None
        if not force:
            for j, (arch, name) in enumerate(zip(archs, names)):
                where = f"run {name!r} (row {j + 1})"
                n = arch.non_embedding_params
                if not lo <= n <= hi:
                    raise CampaignError(
                        f"{where} has {n:,} non-embedding params, outside the campaign's budget "
                        f"[{lo:,}, {hi:,}]; pass --force to attach it anyway")
                if (arch.vocab_size, arch.tie_embeddings) != (self.spec.vocab_size,
                                                               self.spec.tie_embeddings):
                    raise CampaignError(
                        f"{where} has vocab_size={arch.vocab_size}, tie_embeddings="
                        f"{arch.tie_embeddings}; the campaign uses {self.spec.vocab_size}, "
                        f"{self.spec.tie_embeddings}; pass --force to attach it anyway")
                if tokens is not None and abs(tokens[j] / self.spec.tokens - 1) > TOKENS_RTOL:
                    raise CampaignError(
                        f"{where} was trained on {tokens[j]:.4g} tokens, the campaign on "
                        f"{self.spec.tokens:.4g}; pass --force to attach it anyway")
        # Campaign-level archs carry the campaign's vocab/tying (the Ax trial stores the block
        # shape only); the run's own non-embedding params are what the band checks.
        archs = [a.replace(vocab_size=self.spec.vocab_size, tie_embeddings=self.spec.tie_embeddings)
                 for a in archs]
        done: list[int] = []
        with self.store.write() as path:
            spec, _, _, meta = _read_row(path, self.name, self.store)
            with ax_session(path) as url:
                client = _load_client(url, self.name)
                records = _records(client, spec, meta)
                seen: dict[Arch, int] = {}
                plan: list[tuple[int | None, Arch, float, str]] = []
                for arch, value, name in zip(archs, losses, names):
                    match = [r for r in records if r.arch == arch and r.status != "abandoned"]
                    observed = [r for r in match if r.status == "observed"]
                    pending = [r for r in match if r.status == "pending"]
                    if arch in seen and not force:
                        raise CampaignError(f"run {name!r} repeats the shape of an earlier row; "
                                            "pass --force to attach both")
                    seen[arch] = 1
                    if observed and not force:
                        raise CampaignError(
                            f"run {name!r}: trial {observed[0].trial} with this shape already has "
                            f"loss {observed[0].loss:.6g}; pass --force to replace it")
                    target = pending[0].trial if pending else (observed[0].trial if observed
                                                               else None)
                    plan.append((target, arch, value, name))
                problem = self._problem_for(records, [a for _, a, _, _ in plan])
                _sync_throughput(client, problem, records)
                for target, arch, value, name in plan:
                    if target is None:
                        target = int(client.attach_trial(parameters=_ax_params(arch),
                                                         arm_name=None))
                    self._complete(client, problem, arch, target, value)
                    done.append(target)
                records = _records(client, spec, meta)
            payloads = {}
            for (target, _, _, name), trial in zip(plan, done):
                changes: dict[str, Any] = {"observed_at": time.time(), "run": name}
                if target is None:
                    changes["kind"] = "attached"
                payloads[trial] = self._update_meta(path, trial, changes)
            for r in records:
                r.meta = payloads.get(r.trial, r.meta)
            self._records = records
        return [self._trial_dict(r) for r in self._records if r.trial in set(done)]

    # ---- reporting -------------------------------------------------------------------
    def _trial_dict(self, rec: TrialRecord) -> dict[str, Any]:
        proposal = rec.meta.get("proposal") or {}
        arch = rec.arch
        feats = arch.features()
        out = {"trial": rec.trial, "status": rec.status, "kind": rec.meta.get("kind", "attached"),
               **arch.shape(), "params": arch.params,
               "non_embedding_params": arch.non_embedding_params,
               "observed_loss": rec.loss, "run": rec.meta.get("run"),
               "mlp_attn_ratio": feats["mlp_attn_ratio"], "d_over_sqrt_n": feats["d_over_sqrt_n"],
               "gqa_group": feats["gqa_group"], "label": arch.label(),
               "in_band": self.spec.in_band(arch)}
        for key in ("pred_loss_mean", "pred_loss_q05", "pred_loss_q95", "pred_tokens_per_s",
                    "ehvi", "strategy"):
            out[key] = proposal.get(key)
        return {k: _jsonable(v) for k, v in out.items()}

    def trials(self) -> list[dict[str, Any]]:
        """Every trial (pending, observed, abandoned) with the prediction made at proposal."""
        return [self._trial_dict(r) for r in self._records]

    def status(self) -> dict[str, Any]:
        """A JSON-able summary of the campaign."""
        problem = self.problem
        recs = self._records
        observed = [r for r in recs if r.status == "observed"]
        best = min(observed, key=lambda r: r.loss) if observed else None
        ref_loss, ref_tps = problem.reference_point(self.predictions()[0])
        prior = self._prior
        return {
            "name": self.name, "store": str(self.store.path), "spec": self.spec.to_dict(),
            "hardware": self.spec.hardware, "workload": str(self.spec.workload),
            "tokens": self.spec.tokens, "params": self.spec.params, "band": self.spec.band,
            "budget_bounds": list(self.spec.budget_bounds()),
            "n_candidates": int(problem.n_grid), "n_proposable": int(problem.proposable.sum()),
            "n_measured_throughput": int((problem.throughput_source == "measured").sum()),
            "n_trials": len(recs), "n_pending": sum(r.status == "pending" for r in recs),
            "n_observed": len(observed),
            "best_observed_loss": best.loss if best else None,
            "best_observed_trial": best.trial if best else None,
            "observed_pareto_trials": self._ax_pareto_trials() if observed else [],
            "ref_point": {"loss": ref_loss, "tokens_per_s": ref_tps},
            "prior": {"law": getattr(prior, "law", None),
                      "reference_source": getattr(prior, "reference_source", None),
                      "num_samples": getattr(prior, "num_samples", None),
                      "noise_sigma": _jsonable(getattr(prior, "noise_sigma", None))},
            "source": self.spec.source,
            "trials": self.trials(),
        }

    def _ax_pareto_trials(self) -> list[int]:
        """Observed Pareto-optimal trials by Ax's own observed-data frontier (no model fit)."""
        from ax.plot.pareto_utils import get_observed_pareto_frontiers

        with self.store.read() as path, ax_session(path) as url:
            exp = _load_client(url, self.name)._experiment
            try:
                frontiers = get_observed_pareto_frontiers(exp, rel=False)
            except Exception:  # Ax refuses when it has no complete data for both metrics
                return []
            trial_of_arm = {t.arm.name: int(i) for i, t in exp.trials.items() if t.arm}
        names = frontiers[0].arm_names if frontiers else []
        return sorted(trial_of_arm[n] for n in names or [] if n in trial_of_arm)

    def pareto(self) -> list[dict[str, Any]]:
        """Current Pareto set over the budget: observed trials (observed loss) and unobserved
        candidates (predicted mean loss), maximizing tokens/s and minimizing loss.

        Candidates predicted (or observed) to violate ``max_loss`` / ``min_throughput`` are
        left out. Each dict has the proposal fields plus ``observed_loss``, ``source``
        (``"observed"`` / ``"predicted"``) and ``trial`` (or ``None``), sorted by throughput.
        """
        import torch
        from botorch.utils.multi_objective import is_non_dominated

        problem = self.problem
        pred = self.predictions()
        idx, loss, pending = self._observations(problem, self._records)
        observed_loss: dict[int, list[float]] = {}
        for i, v in zip(idx, loss):
            observed_loss.setdefault(int(i), []).append(float(v))
        trial_of = {problem.index_of(r.arch): r.trial for r in self._records
                    if r.status != "abandoned"}
        pool = np.flatnonzero(problem.proposable | (np.isin(np.arange(problem.n), idx)
                                                    & problem.in_band))
        value = pred[0].copy()
        for i, vs in observed_loss.items():
            value[i] = float(np.mean(vs))
        keep = np.ones(len(pool), dtype=bool)
        if self.spec.max_loss is not None:
            keep &= value[pool] <= self.spec.max_loss
        if self.spec.min_throughput is not None:
            keep &= problem.throughput_mean[pool] >= self.spec.min_throughput
        pool = pool[keep]
        if not len(pool):
            return []
        Y = torch.as_tensor(np.stack([-value[pool], np.log(problem.throughput_mean[pool])], -1))
        front = pool[is_non_dominated(Y, deduplicate=True).numpy()]
        front = front[np.argsort(-problem.throughput_mean[front], kind="stable")]
        rows = []
        for i in front:
            row = self._row(problem, int(i), pred, trial=trial_of.get(int(i)))
            obs = observed_loss.get(int(i))
            row["observed_loss"] = float(np.mean(obs)) if obs else None
            row["source"] = "observed" if obs else "predicted"
            rows.append(row)
        return rows

    def export(self, directory: str | Path) -> list[Path]:
        """Write the Pareto set's HF configs, ``pareto.csv`` and ``pareto.json``."""
        from .export import export_pareto

        return export_pareto(self.pareto(), directory, campaign=self.status_brief())

    def status_brief(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.spec.params, "tokens": self.spec.tokens,
                "hardware": self.spec.hardware, "workload": str(self.spec.workload)}

    def predict(self, archs: Iterable[Arch]) -> pd.DataFrame:
        """Predicted loss (mean, 90% band) and throughput of any shapes under this campaign's
        model and observations; ``in_band`` says whether a shape is inside the budget."""
        from optim.core.strategies import predict

        archs = list(archs)
        if not all(isinstance(a, Arch) for a in archs):
            raise CampaignError("predict takes Arch objects")
        problem = Problem.build(self.spec, self._prior,
                                extra_archs=[r.arch for r in self._records] + archs,
                                candidates=self._candidates_override)
        idx, loss, _ = self._observations(problem, self._records)
        pred = predict(problem, idx, loss)
        rows = [self._row(problem, problem.index_of(a), pred) for a in archs]
        df = pd.DataFrame(rows)
        return df.drop(columns=["trial", "ehvi"])


# ---- helpers ----------------------------------------------------------------------------------
def _as_store(store: CampaignStore | str | Path | None) -> CampaignStore:
    return store if isinstance(store, CampaignStore) else CampaignStore(store)


def _load_table(runs: str | Path | pd.DataFrame | Sequence) -> pd.DataFrame:
    from surrogate.runs import load_runs, validate_runs

    if isinstance(runs, pd.DataFrame):
        return validate_runs(runs, name="runs")
    if isinstance(runs, (str, Path)):
        return load_runs(runs)
    return load_runs(*runs)


def _read_row(path: Path, name: str, store: CampaignStore
              ) -> tuple[CampaignSpec, bytes, dict, dict[int, dict]]:
    with connect(path) as con:
        row = con.execute("SELECT spec_json, prior_netcdf, info_json FROM archopt_campaigns "
                          "WHERE name = ?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in con.execute("SELECT name FROM archopt_campaigns ORDER BY name")]
            raise CampaignError(f"unknown campaign {name!r} in {store.path} "
                                f"(known: {', '.join(names) or 'none'})")
        meta = {int(t): json.loads(p) for t, p in con.execute(
            "SELECT trial, payload_json FROM archopt_trials WHERE campaign = ?", (name,))}
    try:
        spec = CampaignSpec.from_dict(json.loads(row[0]))
    except (ArchoptError, TypeError, ValueError) as exc:
        raise StoreError(f"campaign {name!r} in {store.path} has an unreadable spec: {exc}") from None
    return spec, row[1], json.loads(row[2] or "{}"), meta


def list_campaigns(store: CampaignStore | str | Path | None = None) -> list[str]:
    """Names of the campaigns in the store."""
    return _as_store(store).list_names()


def delete_campaign(name: str, store: CampaignStore | str | Path | None = None) -> None:
    """Remove a campaign (its Ax experiment and archopt rows) from the store."""
    store = _as_store(store)
    if name not in store.list_names():
        raise CampaignError(f"unknown campaign {name!r} in {store.path}")
    with store.write() as path:
        with ax_session(path):
            from ax.storage.sqa_store.delete import delete_experiment

            delete_experiment(name)
        with connect(path) as con:
            con.execute("DELETE FROM archopt_campaigns WHERE name = ?", (name,))
            con.execute("DELETE FROM archopt_trials WHERE campaign = ?", (name,))
            con.commit()
