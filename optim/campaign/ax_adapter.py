"""Everything archopt asks of Ax, through Ax's public API only (``ax.api.client.Client``).

Ax owns the experiment, its trials, their data and their SQL storage. archopt never lets Ax
generate (Ax's generators cannot express the nonlinear parameter budget): proposals are attached
with ``Client.attach_trial`` and results arrive with ``Client.complete_trial``. Trial state is
read back with ``Client.summarize`` and the observed frontier with
``Client.get_pareto_frontier(use_model_predictions=False)``.

Storage is the caller's: :class:`AxCampaign` loads and saves through Ax's (process-global) SQL
session, which :func:`optim.campaign.snapshot.transaction` binds to its own connection for the
block (that module also quiets Ax's logs, :func:`~optim.campaign.snapshot.quiet_ax`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from models.arch import SHAPE_FIELDS, Arch
from optim.core.problem import CampaignSpec

__all__ = [
    "AX_PARAMETERS",
    "AX_BOUNDS",
    "LOSS_METRIC",
    "THROUGHPUT_METRIC",
    "AxCampaign",
    "AxError",
    "TrialRecord",
]

#: Arch fields that are Ax parameters (vocab size and tying are fixed per campaign).
AX_PARAMETERS: tuple[str, ...] = tuple(
    f for f in SHAPE_FIELDS if f not in ("vocab_size", "tie_embeddings")
)
#: Integer bounds of the Ax parameters.
AX_BOUNDS: dict[str, tuple[int, int]] = {
    "d_model": (32, 65536),
    "n_layers": (1, 512),
    "n_heads": (1, 1024),
    "n_kv_heads": (1, 1024),
    "head_dim": (8, 1024),
    "ffn_dim": (32, 262144),
}
LOSS_METRIC = "loss"
THROUGHPUT_METRIC = "tokens_per_s"


class AxError(Exception):
    """Ax refused an operation on a store archopt wrote (the campaign layer words it)."""


@dataclass
class TrialRecord:
    """One Ax trial as archopt sees it.

    ``status`` is ``"pending"`` (attached, no result yet), ``"observed"`` (completed with a loss),
    ``"failed"`` (its training job failed; the reason is in ``meta``) or ``"abandoned"``.
    """

    trial: int
    arch: Arch
    status: str
    loss: float | None
    meta: dict[str, Any] = field(default_factory=dict)


# ---- one experiment -----------------------------------------------------------------------------
def _objective_thresholds(spec: CampaignSpec) -> list[str]:
    """Ax objective thresholds: the user's constraints, else bounds that exclude nothing.

    archopt's own hypervolume reference point moves with the model's predictions; Ax's
    thresholds are fixed at creation, so they must not cut observed trials from Ax's frontier.
    (Without thresholds Ax infers them and its Pareto set can come back empty.)
    """
    loss = spec.max_loss if spec.max_loss is not None else 1e6
    tps = spec.min_throughput if spec.min_throughput is not None else 0.0
    return [f"{LOSS_METRIC} <= {loss:.9g}", f"{THROUGHPUT_METRIC} >= {tps:.9g}"]


def ax_parameters(arch: Arch) -> dict[str, float]:
    """The Ax parameterization of ``arch`` (raises :class:`AxError` outside :data:`AX_BOUNDS`)."""
    out = {name: float(getattr(arch, name)) for name in AX_PARAMETERS}
    for name, value in out.items():
        lo, hi = AX_BOUNDS[name]
        if not lo <= value <= hi:
            raise AxError(f"{arch.label()}: {name}={value:.0f} is outside [{lo}, {hi}]")
    return out


class AxCampaign:
    """One campaign's Ax experiment in the store transaction Ax's session is bound to."""

    def __init__(self, client: Any, spec: CampaignSpec) -> None:
        self.client = client
        self.spec = spec

    @classmethod
    def create(cls, url: str, spec: CampaignSpec) -> "AxCampaign":
        """Configure and save a new Ax experiment for ``spec``."""
        from ax.api.client import Client
        from ax.api.configs import RangeParameterConfig, StorageConfig

        client = Client(storage_config=StorageConfig(url=url))
        # Float-typed on purpose: Ax enumerates every value of an integer range whenever it
        # builds an adapter (its observed Pareto frontier does), seconds for these ranges;
        # archopt never lets Ax generate, and values are checked exact integers both ways.
        parameters = [
            RangeParameterConfig(
                name=name,
                parameter_type="float",
                bounds=(float(AX_BOUNDS[name][0]), float(AX_BOUNDS[name][1])),
            )
            for name in AX_PARAMETERS
        ]
        client.configure_experiment(
            parameters=parameters,
            name=spec.name,
            description=f"archopt campaign: {spec.params:.4g} non-embedding params, "
            f"{spec.tokens:.4g} tokens, {spec.hardware}",
        )
        client.configure_optimization(
            objective=f"-{LOSS_METRIC}, {THROUGHPUT_METRIC}",
            outcome_constraints=_objective_thresholds(spec),
        )
        client.configure_generation_strategy()
        return cls(client, spec)

    @classmethod
    def load(cls, url: str, spec: CampaignSpec) -> "AxCampaign":
        from ax.api.client import Client
        from ax.api.configs import StorageConfig

        try:
            client = Client.load_from_database(spec.name, storage_config=StorageConfig(url=url))
        except Exception as exc:  # noqa: BLE001 - Ax raises ObjectNotFoundError/ValueError/SQL errors
            raise AxError(
                f"Ax cannot load experiment {spec.name!r}: {type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}"
            ) from None
        return cls(client, spec)

    # ---- reading -------------------------------------------------------------------------
    def _summary(self) -> Any:
        """Ax's per-arm summary (``trial_index``, ``trial_status``, metric means, parameters)."""
        return self.client.summarize()

    def records(self, meta: Mapping[int, dict] | None = None) -> list[TrialRecord]:
        """Every trial, in index order, with the loss Ax stores for completed ones."""
        meta = meta or {}
        df = self._summary()
        if not len(df):
            return []
        out = []
        for _, row in df.sort_values("trial_index").iterrows():
            index = int(row["trial_index"])
            try:
                shape = {k: _exact_int(row[k], k) for k in AX_PARAMETERS}
            except KeyError as exc:
                raise AxError(f"trial {index} has no parameter {exc}") from None
            arch = Arch(
                **shape, vocab_size=self.spec.vocab_size, tie_embeddings=self.spec.tie_embeddings
            )
            status = str(row["trial_status"]).upper()
            loss = row.get(LOSS_METRIC) if LOSS_METRIC in df.columns else None
            loss = float(loss) if loss is not None and math.isfinite(float(loss)) else None
            if status == "COMPLETED" and loss is not None:
                state = "observed"
            elif status == "FAILED":
                state = "failed"
            elif status in ("ABANDONED", "EARLY_STOPPED"):
                state = "abandoned"
            else:
                state = "pending"
            out.append(
                TrialRecord(
                    index,
                    arch,
                    state,
                    loss if state == "observed" else None,
                    dict(meta.get(index, {})),
                )
            )
        return out

    def stored_means(self, metric: str) -> dict[int, float]:
        """Trial index -> the mean Ax stores for ``metric`` (completed trials)."""
        df = self._summary()
        if not len(df) or metric not in df.columns:
            return {}
        part = df[["trial_index", metric]].dropna()
        return {int(t): float(v) for t, v in zip(part["trial_index"], part[metric])}

    def observed_pareto_trials(self) -> list[int]:
        """Observed Pareto-optimal trials by Ax's observed-data frontier (no model fit)."""
        if not self.stored_means(LOSS_METRIC):
            return []
        frontier = self.client.get_pareto_frontier(use_model_predictions=False)
        return sorted(int(trial) for _, _, trial, _ in frontier)

    # ---- writing -------------------------------------------------------------------------
    def attach(self, arch: Arch) -> int:
        """Attach ``arch`` as a new (pending) trial; returns its index."""
        return int(self.client.attach_trial(parameters=ax_parameters(arch)))

    def complete(
        self, trial: int, loss: tuple[float, float], tokens_per_s: tuple[float, float]
    ) -> None:
        """Complete ``trial`` with ``(mean, sem)`` of the loss and of tokens/s."""
        self.client.complete_trial(
            trial, raw_data={LOSS_METRIC: loss, THROUGHPUT_METRIC: tokens_per_s}
        )

    def fail(self, trial: int, reason: str) -> None:
        """Mark ``trial`` failed in Ax (its job failed; it may be proposed again)."""
        self.client.mark_trial_failed(trial, failed_reason=reason[:500])

    def sync_throughput(self, values: Mapping[int, tuple[float, float]]) -> list[int]:
        """Re-attach tokens/s of observed trials whose value changed (a measurement replaced the
        model value, or a recalibration), so Ax's frontier uses current values.

        Args:
            values: trial -> ``(tokens/s, sem)`` the campaign uses now.

        Returns:
            The trials updated.
        """
        stored = self.stored_means(THROUGHPUT_METRIC)
        updated = []
        for trial, (tps, sem) in values.items():
            if trial in stored and abs(tps / stored[trial] - 1.0) > 1e-9:
                self.client.attach_data(trial, raw_data={THROUGHPUT_METRIC: (tps, sem)})
                updated.append(trial)
        return updated


def delete_ax_experiment(name: str) -> None:
    """Delete experiment ``name`` from the store Ax's engine points at."""
    from ax.storage.sqa_store.delete import delete_experiment

    delete_experiment(name)


def _exact_int(value: Any, name: str) -> int:
    as_float = float(value)
    if not math.isfinite(as_float) or as_float != round(as_float):
        raise AxError(f"stored parameter {name}={value!r} is not an integer")
    return int(round(as_float))


def trial_values(records: Sequence[TrialRecord], value_of: Any) -> dict[int, tuple[float, float]]:
    """``trial -> value_of(arch)`` for the observed trials (helper for :meth:`sync_throughput`)."""
    return {r.trial: value_of(r.arch) for r in records if r.status == "observed"}
