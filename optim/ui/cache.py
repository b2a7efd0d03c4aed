"""Cached loaders: the only place the app calls the expensive Python API.

Every function here is a thin wrapper over :mod:`optim.campaign`, :mod:`surrogate` or
:mod:`models.throughput`, cached with ``st.cache_data`` (tables) or ``st.cache_resource``
(live objects). Heavy libraries are imported inside the functions, so importing this module is
cheap. Cache keys include a *version* of the file they read (its modification time), so a
campaign changed by the CLI or by another page shows up on the next rerun.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

__all__ = [
    "file_version",
    "store_version",
    "campaign_names",
    "load_campaign",
    "hardware_ids",
    "calibration_table",
    "throughput_measurements",
    "reference_table",
    "validation_report",
    "campaign_draws",
    "relative",
    "learned_offset",
    "why_proposal",
    "hypervolume_history",
    "loo_check",
    "sensitivity",
    "model_slices",
    "parallel_coordinates",
    "throughput_domain",
    "prior_coverage",
    "default_prior_cached",
    "default_prior_file",
    "REFERENCE_DEFAULT",
]


def file_version(path: str | Path) -> float:
    """Modification time of ``path`` (0.0 when missing): a cache key that changes on writes."""
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def store_version(path: str | Path) -> float:
    """:func:`file_version` of a SQLite store, counting its write-ahead log too."""
    path = Path(path)
    return max(file_version(path), file_version(path.with_name(path.name + "-wal")))


# ---- campaigns ---------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def campaign_names(store: str, version: float) -> list[str]:
    """Names of the campaigns in ``store`` (``version`` only keys the cache)."""
    from optim.campaign import list_campaigns

    if not Path(store).exists():
        return []
    out = []
    for item in list_campaigns(store=store):
        out.append(
            item
            if isinstance(item, str)
            else (item.get("name") if isinstance(item, dict) else getattr(item, "name", str(item)))
        )
    return [str(n) for n in out]


@st.cache_resource(show_spinner="Loading campaign...", max_entries=4)
def load_campaign(name: str, store: str, version: float) -> Any:
    """The live :class:`optim.campaign.Campaign` (reloaded when the store changes)."""
    from optim.campaign import Campaign

    return Campaign.load(name, store=store)


# ---- throughput --------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def hardware_ids(version: float) -> list[tuple[str, str]]:
    """``(id, name)`` of every hardware profile (built-in and ``$ARCHOPT_HOME/hardware.json``)."""
    from models.hardware import list_hardware

    return [(hw.id, hw.name) for hw in list_hardware()]


@st.cache_data(show_spinner=False)
def calibration_table(hardware_id: str, backend: str, version: float) -> dict[str, Any]:
    """The calibration in force for (hardware, backend), as a plain dict."""
    from models.throughput import load_calibration

    return load_calibration(hardware_id, backend).to_dict()


def _measured_rows(hardware_id: str, backend: str) -> list[dict[str, Any]]:
    """Successful measurements from the cache plus the bundled published latencies."""
    from models.arch import SHAPE_FIELDS
    from models.hardware import hardware_for_device
    from models.measure import MeasurementCache
    from surrogate.runs import bundled_path

    rows: list[dict[str, Any]] = []
    for rec in MeasurementCache().records(hardware_id=hardware_id, backend=backend, status="ok"):
        if rec.total_s is None:
            continue
        rows.append(
            {
                **rec.arch.shape(),
                "label": rec.arch.label(),
                "origin": f"measured ({rec.device or hardware_id})",
                "batch_size": rec.batch_size,
                "input_len": rec.input_len,
                "output_len": rec.output_len,
                "dtype": rec.dtype,
                "total_s": float(rec.total_s),
                "ttft_s": rec.ttft_s,
            }
        )
    if backend == "hf":
        ref = pd.read_csv(bundled_path("reference_latency.csv"))
        for _, r in ref.iterrows():
            if hardware_for_device(str(r["gpu"])) != hardware_id or r["backend"] != "hf-generate":
                continue
            rows.append(
                {
                    **{f: r[f] for f in SHAPE_FIELDS},
                    "label": r["name"],
                    "origin": "published (" + str(r["source"]) + ")",
                    "batch_size": int(r["batch_size"]),
                    "input_len": int(r["input_tokens"]),
                    "output_len": int(r["output_tokens"]),
                    "dtype": "bfloat16",
                    "total_s": float(r["latency_s"]),
                    "ttft_s": None,
                }
            )
    return rows


@st.cache_data(show_spinner="Comparing the throughput model with measurements...")
def throughput_measurements(hardware_id: str, backend: str, version: float) -> pd.DataFrame:
    """One row per successful measurement on (hardware, backend) with the model's prediction.

    Columns: the shape fields, ``label``, ``origin``, workload sizes, ``measured`` and
    ``predicted`` (generated tokens/s), ``measured_s`` / ``predicted_s`` (total seconds),
    ``params``, ``non_embedding_params``, ``residual`` = ``log(measured / predicted)`` tokens/s.
    """
    from models.arch import Arch
    from models.throughput import Workload, predict_throughput

    out = []
    for row in _measured_rows(hardware_id, backend):
        arch = Arch.from_mapping(row)
        wl = Workload(row["batch_size"], row["input_len"], row["output_len"], row["dtype"], backend)
        pred = predict_throughput(arch, hardware_id, wl)
        measured = wl.batch_size * wl.output_len / row["total_s"]
        out.append(
            {
                **arch.shape(),
                "label": row["label"],
                "origin": row["origin"],
                "workload": str(wl),
                "batch_size": wl.batch_size,
                "input_len": wl.input_len,
                "output_len": wl.output_len,
                "params": arch.params,
                "non_embedding_params": arch.non_embedding_params,
                "measured_s": row["total_s"],
                "predicted_s": pred.total_s,
                "measured": measured,
                "predicted": pred.tokens_per_s,
                "residual": math.log(measured / pred.tokens_per_s),
            }
        )
    return pd.DataFrame(out)


@st.cache_data(show_spinner="Predicting throughput on every hardware...", max_entries=16)
def hardware_comparison(
    shapes: tuple[tuple[str, tuple], ...], workload: str, version: float
) -> pd.DataFrame:
    """Model tokens/s of each ``(label, shape fields)`` on every hardware profile.

    Returns one row per (architecture, hardware): ``label``, ``hardware``, ``tokens_per_s``,
    ``ttft_s``, ``memory_gb``, ``fits_in_memory`` and ``rel_sigma`` (the calibration's log sd).
    """
    from models.arch import SHAPE_FIELDS, Arch
    from models.hardware import list_hardware
    from models.throughput import Workload, predict_throughput_many

    wl = Workload.parse(workload)
    archs = [Arch(**dict(zip(SHAPE_FIELDS, shape))) for _, shape in shapes]
    rows = []
    for hw in list_hardware():
        out = predict_throughput_many(archs, hw, wl)
        for j, (label, _) in enumerate(shapes):
            rows.append(
                {
                    "label": label,
                    "hardware": hw.id,
                    "tokens_per_s": float(out["tokens_per_s"][j]),
                    "ttft_s": float(out["ttft_s"][j]),
                    "memory_gb": float(out["memory_bytes"][j]) / 1e9,
                    "fits_in_memory": bool(out["fits_in_memory"][j]),
                    "rel_sigma": float(out["rel_sigma"][j]),
                }
            )
    return pd.DataFrame(rows)


# ---- surrogate ---------------------------------------------------------------------------------
@st.cache_data(show_spinner=False)
def reference_table() -> pd.DataFrame:
    """:func:`surrogate.runs.reference_architectures` (published model shapes)."""
    from surrogate.runs import reference_architectures

    return reference_architectures()


@st.cache_data(show_spinner=False)
def validation_report(path: str, version: float) -> str | None:
    """Text of the surrogate's held-out validation report, or None when it is missing."""
    p = Path(path)
    return p.read_text() if p.exists() else None


@st.cache_data(show_spinner=False)
def validation_results(path: str, version: float) -> dict | None:
    """The surrogate validation's JSON results, or None when missing or unreadable (the page
    says so)."""
    import json

    p = Path(path)
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---- law posteriors ----------------------------------------------------------------------------
@st.cache_resource(show_spinner="Fitting the default scaling-law prior (once per server)...")
def default_posterior() -> Any:
    """The package's default prior (:func:`surrogate.default_prior`), fitted once per server."""
    from surrogate import default_prior

    return default_prior(progress=False)


@st.cache_resource(show_spinner="Loading posterior...", max_entries=4)
def posterior_file(path: str, version: float) -> Any:
    """A saved :class:`~surrogate.posterior.LawPosterior` (``version`` keys the cache)."""
    from surrogate.posterior import LawPosterior

    return LawPosterior.load(path)


@st.cache_data(show_spinner=False)
def bundled_run_table() -> pd.DataFrame:
    """:func:`surrogate.runs.bundled_runs` with a ``source_key`` column (per-source terms key)."""
    from surrogate.runs import bundled_runs, source_keys

    df = bundled_runs()
    return df.assign(source_key=source_keys(df))


def prior_draws(law: str, names: list[str], n: int = 2000) -> dict[str, np.ndarray]:
    """Draws from each coefficient's documented prior (for the prior/posterior overlay)."""
    from surrogate.laws import get_law

    law_obj = get_law(law)
    out = {}
    for i, name in enumerate(names):
        try:
            dist = law_obj.param(name).prior.distribution()  # the law's own prior definition
        except Exception:  # noqa: BLE001 - a term without a prior (per-source terms)
            continue
        out[name] = np.asarray(dist.rvs(size=n, random_state=i), dtype=float)
    return out


@st.cache_data(show_spinner="Sweeping the law...", max_entries=64)
def law_sweep(
    _posterior: Any,
    posterior_key: str,
    knob: str,
    n_params: float,
    tokens: float,
    source: str,
    d_over_sqrt_n: float,
    r: float,
    gqa_group: int,
    head_dim: int,
    vocab_size: int,
    tie_embeddings: bool,
) -> pd.DataFrame:
    """:func:`surrogate.slices.law_sweep`, cached by ``posterior_key`` and the slice."""
    from surrogate.slices import law_sweep as sweep

    return sweep(
        _posterior,
        knob,
        n_params=n_params,
        tokens=tokens,
        d_over_sqrt_n=d_over_sqrt_n,
        r=r,
        gqa_group=gqa_group,
        head_dim=head_dim,
        vocab_size=vocab_size,
        tie_embeddings=tie_embeddings,
        source=source,
    )


@st.cache_data(show_spinner="Predicting the observed runs...", max_entries=16)
def run_predictions(_posterior: Any, posterior_key: str, source: str) -> pd.DataFrame:
    """The bundled runs of ``source`` with their posterior-predictive quantiles and features."""
    from surrogate.runs import table_archs

    runs = bundled_run_table()
    runs = runs[runs["source_key"] == source].drop(columns=["source_key"])
    if runs.empty:
        return runs
    from surrogate.slices import BAND_QUANTILES

    pred = _posterior.predict(runs, source=source, quantiles=BAND_QUANTILES)
    archs = table_archs(runs)
    out = runs.reset_index(drop=True).join(pred.reset_index(drop=True))
    for name in ("d_over_sqrt_n", "mlp_attn_ratio", "aspect_ratio", "non_embedding_params"):
        out[name] = [getattr(a, name) for a in archs]
    return out


# ---- campaign tables ---------------------------------------------------------------------------
def _with_keys(
    rows: list[dict[str, Any]] | pd.DataFrame, prefix: str, by: str | None
) -> pd.DataFrame:
    df = pd.DataFrame(rows).reset_index(drop=True)
    if df.empty:
        return df
    ids = df[by].astype(int).astype(str) if by and by in df.columns else df.index.astype(str)
    df.insert(0, "key", [f"{prefix} {i}" for i in ids])
    if "label" not in df.columns and "d_model" in df.columns:
        from models.arch import Arch

        df.insert(1, "label", [Arch.from_mapping(r).label() for r in df.to_dict("records")])
    return df


@st.cache_data(show_spinner="Predicting loss and throughput for every candidate...", max_entries=8)
def campaign_tables(name: str, store: str, version: float) -> dict[str, pd.DataFrame]:
    """The tables the Pareto and Campaigns pages draw, from the campaign API.

    ``candidates``: :meth:`Campaign.candidates_table`; ``trials``: :meth:`Campaign.trials`
    with ``now=True`` (``pred_loss_*`` as predicted at proposal, NaN for an attached trial;
    ``pred_loss_*_now`` the current model's); ``front``:
    :meth:`Campaign.pareto`; ``references``: :func:`surrogate.runs.reference_architectures`
    through :meth:`Campaign.shape_table`. Each has a ``key`` column (``"candidate 12"``,
    ``"trial 3"``, ``"front 0"``, ``"ref Llama-3.2-1B"``) and a ``label``.
    """
    from models.arch import Arch

    campaign = load_campaign(name, store, version)
    candidates = _with_keys(campaign.candidates_table(), "candidate", "candidate")
    trials = _with_keys(campaign.trials(now=True), "trial", "trial")
    for column in (
        "pred_loss_mean",
        "pred_loss_q05",
        "pred_loss_q95",
        "pred_tokens_per_s",
        "ehvi",
        "observed_loss",
    ):
        if column in trials:  # attached trials have no proposal-time value: NaN, not None
            trials[column] = pd.to_numeric(trials[column], errors="coerce")
    front = _with_keys(campaign.pareto(), "front", None)
    refs = reference_table()
    ref_archs = [Arch.from_mapping(r) for r in refs.to_dict("records")]
    references = campaign.shape_table(ref_archs).drop(columns=["label"], errors="ignore")
    references.insert(0, "label", refs["name"].to_numpy())
    references.insert(0, "key", [f"ref {n}" for n in refs["name"]])
    references["reported_loss"] = refs["reported_loss"].to_numpy()
    return {"candidates": candidates, "trials": trials, "front": front, "references": references}


@st.cache_data(show_spinner="Reading the campaign status (Ax frontier)...", max_entries=8)
def campaign_status(name: str, store: str, version: float) -> dict[str, Any]:
    """:meth:`Campaign.status` (slow once results exist: Ax computes its observed frontier)."""
    return load_campaign(name, store, version).status()


@st.cache_data(show_spinner="Writing the export files...", max_entries=8)
def export_files(
    name: str, store: str, version: float, ranks: tuple[int, ...] | None = None
) -> dict[str, bytes]:
    """What ``archopt pareto NAME --export DIR`` writes, as ``relative path -> bytes``.

    ``ranks`` (0-based positions in :meth:`Campaign.pareto`) restricts the export to those
    architectures (:meth:`Campaign.export`); None = all.
    """
    import tempfile

    campaign = load_campaign(name, store, version)
    with tempfile.TemporaryDirectory(prefix="archopt-export-") as tmp:
        paths = campaign.export(tmp, ranks=ranks)
        root = Path(tmp)
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in map(Path, paths)}


# ---- the campaign's own model (optim.campaign.insights) -----------------------------------------
#: The relative view's default reference: the best observed run's shape, else the best
#: predicted one (:func:`optim.campaign.insights.default_reference`).
REFERENCE_DEFAULT = "default"


def _reference_archs() -> list[Any]:
    from models.arch import Arch

    return [Arch.from_mapping(r) for r in reference_table().to_dict("records")]


@st.cache_resource(
    show_spinner="Drawing the campaign's model jointly over its candidates...", max_entries=4
)
def campaign_draws(name: str, store: str, version: float, with_references: bool = False) -> Any:
    """:func:`optim.campaign.insights.model_draws` (the published reference shapes added to the
    pool with ``with_references``)."""
    from optim.campaign import insights

    campaign = load_campaign(name, store, version)
    extra = _reference_archs() if with_references else ()
    return insights.model_draws(campaign, extra_archs=extra)


@st.cache_data(show_spinner=False, max_entries=64)
def relative(name: str, store: str, version: float, reference: str) -> pd.DataFrame:
    """:func:`optim.campaign.insights.relative_table` against ``reference``:
    :data:`REFERENCE_DEFAULT`, ``"best"`` (the best observed run), ``"trial N"``,
    ``"candidate I"`` or ``"ref NAME"`` (a published reference model)."""
    from optim.campaign import insights

    campaign = load_campaign(name, store, version)
    if reference.startswith("ref "):
        draws = campaign_draws(name, store, version, True)
        refs = reference_table()
        arch = _reference_archs()[list(refs["name"]).index(reference[4:])]
        target: Any = arch
    else:
        draws = campaign_draws(name, store, version)
        if reference == REFERENCE_DEFAULT:
            target = insights.default_reference(campaign, draws)
        elif reference.startswith("candidate "):
            target = int(reference.split()[1])
        else:
            target = reference
    index = insights.reference_index(campaign, target, draws.problem)
    return insights.relative_table(campaign, draws, index)


@st.cache_data(show_spinner="Estimating the learned offset...", max_entries=8)
def learned_offset(name: str, store: str, version: float) -> dict[str, Any]:
    """:func:`optim.campaign.insights.learned_offset`."""
    from optim.campaign import insights

    return insights.learned_offset(
        load_campaign(name, store, version), campaign_draws(name, store, version)
    )


@st.cache_data(show_spinner=False, max_entries=32)
def why_proposal(name: str, store: str, version: float, trial: int) -> dict[str, Any]:
    """:func:`optim.campaign.insights.why_proposal`."""
    from optim.campaign import insights

    return insights.why_proposal(
        load_campaign(name, store, version), trial, campaign_draws(name, store, version)
    )


@st.cache_data(show_spinner="Computing the hypervolume over trials...", max_entries=8)
def hypervolume_history(name: str, store: str, version: float) -> dict[str, Any]:
    """:func:`optim.campaign.insights.hypervolume_history`."""
    from optim.campaign import insights

    return insights.hypervolume_history(load_campaign(name, store, version))


@st.cache_data(
    show_spinner="Refitting the model without each run (leave-one-out)...", max_entries=8
)
def loo_check(name: str, store: str, version: float) -> pd.DataFrame:
    """:func:`optim.campaign.insights.loo_check`."""
    from optim.campaign import insights

    return insights.loo_check(load_campaign(name, store, version))


@st.cache_data(show_spinner=False, max_entries=8)
def sensitivity(name: str, store: str, version: float) -> pd.DataFrame:
    """:func:`optim.campaign.insights.sensitivity`."""
    from optim.campaign import insights

    return insights.sensitivity(load_campaign(name, store, version))


@st.cache_data(show_spinner=False, max_entries=32)
def model_slices(name: str, store: str, version: float, centre: int | None) -> pd.DataFrame:
    """:func:`optim.campaign.insights.model_slices` through candidate ``centre``."""
    from optim.campaign import insights

    return insights.model_slices(load_campaign(name, store, version), centre)


@st.cache_data(show_spinner=False, max_entries=8)
def parallel_coordinates(name: str, store: str, version: float) -> pd.DataFrame:
    """:func:`optim.campaign.insights.parallel_coordinates`."""
    from optim.campaign import insights

    return insights.parallel_coordinates(load_campaign(name, store, version))


@st.cache_data(show_spinner=False, max_entries=8)
def throughput_domain(name: str, store: str, version: float) -> dict[str, Any]:
    """:func:`optim.campaign.insights.throughput_domain`."""
    from optim.campaign import insights

    return insights.throughput_domain(load_campaign(name, store, version))


@st.cache_data(show_spinner="Checking the prior's bands on its runs...", max_entries=8)
def prior_coverage(name: str, store: str, version: float) -> dict[str, Any]:
    """:func:`optim.campaign.insights.prior_coverage`."""
    from optim.campaign import insights

    return insights.prior_coverage(load_campaign(name, store, version))


@st.cache_data(show_spinner=False)
def default_prior_file(home: str) -> str:
    """Where :func:`surrogate.default_prior` caches its fit under ``ARCHOPT_HOME`` ``home``."""
    from surrogate.prior import default_prior_path

    return str(default_prior_path())


def default_prior_cached() -> bool:
    """Whether the package's default prior loads without a fit (shipped with the package or
    cached in this ``ARCHOPT_HOME``: about a second; otherwise a NUTS fit of about a minute)."""
    from surrogate.prior import default_prior_is_cached

    return default_prior_is_cached()
