"""Campaigns page: create a campaign, see its status, propose the next batch, record results.

Every action is one call of the campaign API (:mod:`optim.campaign`), the same the CLI makes:
``Campaign.create``, ``propose``, ``observe`` and ``observe_runs``. Uploaded run tables are
validated with :func:`surrogate.runs.validate_runs` first; on any error nothing is saved.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import pandas as pd
import streamlit as st

from models.arch import DEFAULT_VOCAB_SIZE
from optim.core.spec import DEFAULT_WORKLOAD
from optim.ui import cache, figures
from optim.ui.common import SELECT_NEXT_KEY, current_campaign, fmt_params, show_error, store_path

__all__ = ["render", "read_run_tables"]

_PRED_COLUMNS = [
    "trial",
    "status",
    "label",
    "observed_loss",
    "pred_loss_mean",
    "pred_loss_q05",
    "pred_loss_q95",
    "pred_loss_mean_now",
    "pred_loss_q05_now",
    "pred_loss_q95_now",
    "pred_tokens_per_s_now",
    "ehvi",
    "strategy",
    "params",
    "non_embedding_params",
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "ffn_dim",
    "run",
]
_COLUMN_CONFIG = {
    "observed_loss": st.column_config.NumberColumn("observed", format="%.4f"),
    "pred_loss_mean": st.column_config.NumberColumn(
        "loss at proposal",
        format="%.4f",
        help="predicted mean loss when the trial was proposed (empty: attached, never proposed)",
    ),
    "pred_loss_q05": st.column_config.NumberColumn("q05 at proposal", format="%.4f"),
    "pred_loss_q95": st.column_config.NumberColumn("q95 at proposal", format="%.4f"),
    "pred_loss_mean_now": st.column_config.NumberColumn(
        "loss now",
        format="%.4f",
        help="what the campaign's model predicts for a run of this shape now, given every "
        "result recorded since",
    ),
    "pred_loss_q05_now": st.column_config.NumberColumn("q05 now", format="%.4f"),
    "pred_loss_q95_now": st.column_config.NumberColumn("q95 now", format="%.4f"),
    "pred_tokens_per_s_now": st.column_config.NumberColumn("tokens/s", format="%.0f"),
    "ehvi": st.column_config.NumberColumn(
        "EHVI at proposal",
        format="%.3g",
        help="expected hypervolume improvement when proposed: the Next run page says it in words",
    ),
    "params": st.column_config.NumberColumn(format="compact"),
    "non_embedding_params": st.column_config.NumberColumn("N", format="compact"),
}


def read_run_tables(files: list[Any]) -> pd.DataFrame:
    """Parse and validate uploaded run-table CSVs (``name`` + bytes); one combined table.

    Raises:
        RunTableError: a file that is not a CSV run table, with its name, line and column.
    """
    from surrogate.runs import RunTableError, parse_runs

    tables = [
        parse_runs(
            f.getvalue() if hasattr(f, "getvalue") else bytes(f),
            name=getattr(f, "name", "upload.csv"),
        )
        for f in files
    ]
    if not tables:
        raise RunTableError("no run table uploaded")
    return pd.concat(tables, ignore_index=True)


def _create_form() -> tuple[BaseException, str] | None:
    """The create form; returns the error to show (outside the expander) when creation failed."""
    from models.throughput import Workload

    hardware = cache.hardware_ids(0.0)
    ids = [h for h, _ in hardware]
    with st.form("create_campaign", clear_on_submit=False):
        st.markdown("The same options as `archopt campaign create`.")
        c = st.columns(3)
        name = c[0].text_input("Name", value="", placeholder="e.g. llama-1b-a100", key="new_name")
        params_m = c[1].number_input(
            "Non-embedding params N (millions)",
            min_value=1.0,
            value=1000.0,
            step=50.0,
            key="new_params_m",
        )
        tokens_b = c[2].number_input(
            "Training tokens D (billions)",
            min_value=0.001,
            value=100.0,
            step=10.0,
            format="%.3f",
            key="new_tokens_b",
        )
        c = st.columns(3)
        hw = c[0].selectbox(
            "Hardware",
            ids,
            index=ids.index("a100-40gb") if "a100-40gb" in ids else 0,
            key="new_hardware",
        )
        band = c[1].number_input(
            "Band (relative tolerance on N)",
            min_value=0.001,
            max_value=0.5,
            value=0.05,
            step=0.01,
            format="%.3f",
            key="new_band",
        )
        workload = c[2].text_input(
            "Workload",
            value=str(DEFAULT_WORKLOAD),
            key="new_workload",
            help="batch=..,input=..,output=..[,dtype=..][,backend=hf|vllm]",
        )
        c = st.columns(3)
        max_loss = c[0].number_input(
            "Max loss (optional, 0 = none)", min_value=0.0, value=0.0, step=0.1, key="new_max_loss"
        )
        min_tps = c[1].number_input(
            "Min throughput tokens/s (optional, 0 = none)",
            min_value=0.0,
            value=0.0,
            step=100.0,
            key="new_min_tps",
        )
        source = c[2].text_input(
            "Loss source (optional)",
            value="",
            key="new_source",
            help="prior source whose loss units the campaign's runs share "
            "(e.g. mlfoundations-scaling-grid); empty: the prior's "
            "reference source",
        )
        c = st.columns(3)
        vocab = c[0].number_input(
            "Vocabulary size", min_value=1, value=DEFAULT_VOCAB_SIZE, step=1, key="new_vocab"
        )
        tie = c[1].checkbox("Tie embeddings", value=True, key="new_tie")
        must_fit = c[2].checkbox("Must fit device memory", value=True, key="new_must_fit")
        uploads = st.file_uploader(
            "Run tables (CSV, optional: your own runs refit the prior)",
            type=["csv"],
            accept_multiple_files=True,
            key="new_runs",
        )
        submitted = st.form_submit_button("Create campaign", type="primary")
    if not submitted:
        return None
    try:
        from optim.campaign import Campaign, CampaignSpec

        runs = read_run_tables(uploads) if uploads else None
        spec = CampaignSpec(
            name=name.strip(),
            params=params_m * 1e6,
            tokens=tokens_b * 1e9,
            hardware=hw,
            band=band,
            workload=Workload.parse(workload),
            max_loss=max_loss or None,
            min_throughput=min_tps or None,
            must_fit=must_fit,
            vocab_size=int(vocab),
            tie_embeddings=tie,
            source=source.strip() or None,
        )
    except Exception as exc:  # noqa: BLE001 - shown to the user, nothing saved
        return exc, "Campaign not created"
    with st.status(f"Creating campaign {spec.name!r}...", expanded=True) as status:
        try:
            if runs is not None:
                st.write(
                    f"Refitting the scaling-law prior on the bundled runs plus your "
                    f"{len(runs)} (NUTS: a minute or more)..."
                )
            elif not cache.default_prior_cached():
                st.write(
                    "Fitting the default scaling-law prior on the bundled runs (first time "
                    "in this ARCHOPT_HOME only; NUTS: about a minute on 2 cores)..."
                )
            st.write(
                f"Enumerating shapes with N = {fmt_params(spec.params)} +- {spec.band:.1%}, "
                "predicting loss and throughput for each..."
            )
            campaign = Campaign.create(spec, runs=runs, store=str(store_path()))
        except Exception as exc:  # noqa: BLE001
            status.update(label="Campaign not created", state="error")
            return exc, "Campaign not created"
        n = len(campaign.problem.candidates)
        status.update(label=f"Created {spec.name!r}: {n} candidate architectures", state="complete")
    st.session_state[SELECT_NEXT_KEY] = spec.name  # the picker applies it on the rerun
    st.rerun()
    return None


@contextlib.contextmanager
def _shown_warnings() -> Iterator[None]:
    """Warnings the campaign API issues inside the block (a result outside its 90% band, a
    calibration caveat...) are shown on the next run, as the CLI prints them: never only in
    the server's log."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    messages = list(dict.fromkeys(str(w.message) for w in caught if _ours(w)))
    st.session_state.setdefault("_flash_warnings", []).extend(messages)


_PACKAGES = ("optim", "models", "surrogate")


def _ours(w: warnings.WarningMessage) -> bool:
    """A warning archopt issued (its category or the code that raised it is archopt's), not a
    library's internal notice."""
    from pathlib import Path

    if w.category.__module__.split(".")[0] in _PACKAGES:
        return True
    parts = Path(w.filename).parts
    return any(pkg in parts for pkg in _PACKAGES) and "site-packages" not in parts


def _status(name: str, tables: dict[str, pd.DataFrame]) -> None:
    trials = tables["trials"]
    observed = trials[trials["status"] == "observed"] if len(trials) else trials
    cols = st.columns(5)
    cols[0].metric(
        "Candidates",
        f"{len(tables['candidates']):,}",
        help="proposable: in the band, fit the device memory",
    )
    cols[1].metric("Trials", len(trials))
    cols[2].metric("Pending", int((trials["status"] == "pending").sum()) if len(trials) else 0)
    cols[3].metric("Observed", len(observed))
    best = observed["observed_loss"].min() if len(observed) else None
    cols[4].metric("Best observed loss", f"{best:.4f}" if best is not None else "-")
    if st.toggle(
        "Full status (Ax's observed frontier and reference point; slow after results)",
        key="campaign_full_status",
    ):
        store = store_path()
        st.json(cache.campaign_status(name, str(store), cache.store_version(store)), expanded=False)


def _trials_table(trials: pd.DataFrame) -> None:
    if trials.empty:
        st.info("No trials yet: propose a batch below.")
        return
    st.plotly_chart(figures.trial_bands_figure(trials), key="trial_bands")
    stale = _stale_pending(trials)
    if stale:
        st.info(
            f"{stale} pending trial(s) were proposed before the latest result: their "
            "prediction **at proposal** is out of date; **now** is what the model says "
            "given every result recorded since."
        )
    cols = [c for c in _PRED_COLUMNS if c in trials.columns]
    st.dataframe(trials[cols], hide_index=True, width="stretch", column_config=_COLUMN_CONFIG)


def _stale_pending(trials: pd.DataFrame) -> int:
    """Pending trials whose at-proposal mean differs from the current one by > 0.001 loss."""
    if "pred_loss_mean_now" not in trials or "status" not in trials:
        return 0
    pending = trials[trials["status"] == "pending"]
    diff = (
        pd.to_numeric(pending["pred_loss_mean"], errors="coerce")
        - pd.to_numeric(pending["pred_loss_mean_now"], errors="coerce")
    ).abs()
    return int((diff > 1e-3).sum())


def _propose(campaign: Any, name: str) -> None:
    from optim.core.strategies import STRATEGIES

    with st.form("propose"):
        c = st.columns([1, 2])
        k = c[0].number_input("Batch size", min_value=1, max_value=32, value=4, key="propose_k")
        names = list(STRATEGIES)
        strategy = c[1].selectbox(
            "Strategy",
            names,
            index=names.index("archopt") if "archopt" in names else 0,
            key="propose_strategy",
            help="archopt: expected hypervolume improvement of (loss, "
            "throughput) with the scaling-law-prior GP; the others "
            "are the benchmark's baselines",
        )
        go = st.form_submit_button("Propose next batch", type="primary")
    if not go:
        return
    with st.status(f"Proposing {k} architecture(s)...", expanded=True) as status:
        try:
            st.write("Fitting the loss model and optimizing the acquisition function...")
            with _shown_warnings():
                proposals = campaign.propose(k=int(k), strategy=strategy)
        except Exception as exc:  # noqa: BLE001
            status.update(label="Proposal failed", state="error")
            show_error(exc, "Proposal failed")
            return
        status.update(label=f"Proposed {len(proposals)} architecture(s)", state="complete")
    st.session_state["_flash"] = f"Proposed trials {', '.join(str(p['trial']) for p in proposals)}."
    st.rerun()


def _record(campaign: Any, trials: pd.DataFrame) -> None:
    pending = trials[trials["status"] == "pending"] if "status" in trials else trials
    options = [int(t) for t in pending["trial"]] if len(pending) else []
    if st.session_state.pop("_record_clear", False):  # a result was just saved: start empty
        st.session_state.pop("record_loss", None)
        st.session_state.pop("record_trial", None)
    if st.session_state.get("record_trial") not in options:  # stale choice (trials changed)
        st.session_state.pop("record_trial", None)
    with st.form("record"):
        c = st.columns([2, 2, 1])
        trial = c[0].selectbox(
            "Trial",
            options,
            key="record_trial",
            format_func=lambda t: f"trial {t}",
            placeholder="no trial waits for a result",
        )
        loss = c[1].number_input(
            "Observed loss",
            min_value=0.0,
            value=None,
            step=0.01,
            format="%.4f",
            key="record_loss",
            placeholder="final loss of the trained run",
        )
        force = c[2].checkbox(
            "Force", key="record_force", help="record even if the trial already has a result"
        )
        go = st.form_submit_button("Record result")
    if not go:
        return
    if trial is None or loss is None or loss <= 0:
        st.error("Choose a trial and enter its observed (positive) loss.")
        return
    progress = st.progress(0, text=f"Recording trial {trial}...")
    try:
        with _shown_warnings():
            campaign.observe(int(trial), float(loss), force=force)
    except Exception as exc:  # noqa: BLE001
        progress.empty()
        show_error(exc, "Result not recorded")
        return
    progress.progress(100, text=f"Recorded trial {trial}: loss {loss:.4f}")
    st.session_state["_flash"] = f"Recorded trial {trial}: loss {loss:.4f}."
    st.session_state["_record_clear"] = True
    st.rerun()


def _upload(campaign: Any) -> None:
    uploads = st.file_uploader(
        "Run-table CSV with results (the shared run-table columns)",
        type=["csv"],
        accept_multiple_files=True,
        key="observe_runs",
    )
    force = st.checkbox("Force (overwrite existing results)", key="observe_force")
    if not uploads:
        return
    try:
        table = read_run_tables(uploads)
    except Exception as exc:  # noqa: BLE001 - nothing saved
        show_error(exc, "Upload rejected, nothing saved")
        return
    st.dataframe(table, hide_index=True, width="stretch")
    if not st.button(f"Record {len(table)} run(s)", key="observe_runs_go", type="primary"):
        return
    with st.status(f"Recording {len(table)} run(s)...", expanded=True) as status:
        try:
            with _shown_warnings():
                result = campaign.observe_runs(table, force=force)
        except Exception as exc:  # noqa: BLE001
            status.update(label="Nothing recorded", state="error")
            show_error(exc, "Runs not recorded")
            return
        status.update(label=f"Recorded {len(table)} run(s)", state="complete")
    st.session_state["_flash"] = f"Recorded {len(table)} run(s)." + (
        f" {result}" if isinstance(result, str) else ""
    )
    st.rerun()


def render() -> None:
    st.title("Campaigns")
    flash = st.session_state.pop("_flash", None)
    if flash:
        st.success(flash)
    for message in st.session_state.pop("_flash_warnings", []):
        st.warning(message)
    store = store_path()
    version = cache.store_version(store)
    names = cache.campaign_names(str(store), version)
    with st.expander("Create a campaign", expanded=not names):
        failure = _create_form()
    if failure is not None:  # visible even when the expander is collapsed
        show_error(*failure)
    if names:
        st.dataframe(pd.DataFrame({"campaign": names}), hide_index=True)
    name = current_campaign()
    if not name:
        return
    try:
        campaign = cache.load_campaign(name, str(store), version)
        tables = cache.campaign_tables(name, str(store), version)
    except Exception as exc:  # noqa: BLE001
        show_error(exc, f"Loading campaign {name!r}")
        return
    spec = campaign.spec
    st.header(name)
    st.caption(
        f"N = {fmt_params(spec.params)} +- {spec.band:.1%} non-embedding params, "
        f"D = {fmt_params(spec.tokens)} tokens, {spec.hardware}, workload {spec.workload}, "
        f"law {spec.law}"
    )
    _status(name, tables)
    st.subheader("Trials and proposals (predicted loss at proposal and now, 5-95%)")
    _trials_table(tables["trials"])
    if len(tables["trials"]):
        st.caption(
            "Why each proposal, what the model says relative to a reference and how well "
            "it predicted the runs so far: the **Next run** and **Model** pages."
        )
    left, right = st.columns(2)
    with left:
        st.subheader("Propose")
        _propose(campaign, name)
    with right:
        st.subheader("Record a result")
        _record(campaign, tables["trials"])
    st.subheader("Record results from a run table")
    _upload(campaign)
