"""Pure plotly figure builders for the app: tables in, ``go.Figure`` out.

No Streamlit here and no model evaluation: every function takes the numbers the Python API
produced (DataFrames with the field names of ``Campaign.trials()`` / ``LawPosterior.predict``)
and only draws them, so each is testable on its own (``tests/optim/ui/test_figures.py``).

Point identity for selection: every marker of the Pareto chart carries ``customdata = [key]``
where ``key`` is the row's ``key`` column (``"trial 3"``, ``"candidate 17"``, ``"ref Llama-3.2-1B"``);
:func:`selected_keys` reads them back from a Streamlit selection event.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from optim.core.bands import lognormal_band

__all__ = [
    "COLORS",
    "pareto_figure",
    "trial_bands_figure",
    "selected_keys",
    "posterior_figure",
    "band_figure",
    "calibration_figure",
    "law_comparison_figure",
    "throughput_parity_figure",
    "residual_figure",
    "hardware_figure",
    "relative_figure",
    "hypervolume_figure",
    "loo_figure",
    "parallel_figure",
    "sensitivity_figure",
    "slice_figure",
]

#: One colour per kind of point, shared by every chart.
COLORS: dict[str, str] = {
    "candidate": "#9aa5b1",
    "trial": "#1f77b4",
    "observed": "#d62728",
    "front": "#ff7f0e",
    "reference": "#2ca02c",
    "selected": "#000000",
    "band90": "rgba(31,119,180,0.15)",
    "band50": "rgba(31,119,180,0.35)",
    "model": "#1f77b4",
    "now": "#9467bd",
    "pending": "#1f77b4",
}

#: Error bars lighter than their markers, so many overlapping bars stay readable.
_ERROR_COLORS: dict[str, str] = {
    "candidate": "rgba(154,165,177,0.5)",
    "trial": "rgba(31,119,180,0.45)",
    "front": "rgba(255,127,14,0.45)",
    "reference": "rgba(44,160,44,0.55)",
}

_LOSS = "pred_loss_mean"
_LO = "pred_loss_q05"
_HI = "pred_loss_q95"
_TPS = "pred_tokens_per_s"


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what} table lacks column(s) {', '.join(missing)}")


def _error_y(df: pd.DataFrame) -> dict[str, Any] | None:
    if _LO not in df.columns or _HI not in df.columns:
        return None
    lo = df[_LOSS] - df[_LO]
    hi = df[_HI] - df[_LOSS]
    return dict(
        type="data",
        symmetric=False,
        array=hi.clip(lower=0).to_numpy(),
        arrayminus=lo.clip(lower=0).to_numpy(),
        thickness=1,
        width=0,
    )


def _error_x(df: pd.DataFrame, color: str) -> dict[str, Any] | None:
    lo, hi = f"{_TPS}_q05", f"{_TPS}_q95"
    if lo not in df.columns or hi not in df.columns or df[[lo, hi]].isna().all().all():
        return None
    return dict(
        type="data",
        symmetric=False,
        array=(df[hi] - df[_TPS]).clip(lower=0).to_numpy(),
        arrayminus=(df[_TPS] - df[lo]).clip(lower=0).to_numpy(),
        thickness=1,
        width=0,
        color=color,
    )


def _hover(df: pd.DataFrame) -> list[str]:
    """One hover text per row (built column-wise: candidate tables have thousands of rows)."""
    n = len(df)
    name = df["label"] if "label" in df else df["key"] if "key" in df else pd.Series([""] * n)
    parts = [("<b>" + name.astype(str) + "</b>").to_numpy()]
    if "params" in df:
        p = pd.to_numeric(df["params"], errors="coerce")
        parts.append(np.where(p.notna(), "params " + (p / 1e6).map("{:,.1f}M".format), ""))
    for column, prefix in (("d_model", "d "), ("n_layers", "L "), ("ffn_dim", "ffn ")):
        if column in df:
            v = pd.to_numeric(df[column], errors="coerce")
            parts.append(np.where(v.notna(), prefix + v.fillna(0).astype(int).astype(str), ""))
    lo = df[_LO] if _LO in df else pd.Series(np.nan, index=df.index)
    hi = df[_HI] if _HI in df else pd.Series(np.nan, index=df.index)
    parts.append(
        (
            "loss "
            + df[_LOSS].map("{:.4f}".format)
            + " ["
            + lo.map("{:.4f}".format)
            + ", "
            + hi.map("{:.4f}".format)
            + "]"
        ).to_numpy()
    )
    if "observed_loss" in df:
        obs = pd.to_numeric(df["observed_loss"], errors="coerce")
        parts.append(np.where(obs.notna(), "observed " + obs.map("{:.4f}".format), ""))
    parts.append((df[_TPS].map("{:,.0f}".format) + " tok/s").to_numpy())
    return ["<br>".join(p for p in row if p) for row in zip(*parts)]


def pareto_figure(
    candidates: pd.DataFrame,
    trials: pd.DataFrame | None = None,
    front: pd.DataFrame | None = None,
    references: pd.DataFrame | None = None,
    *,
    selected: str | None = None,
    candidate_error_bars: bool | None = None,
    log_x: bool = False,
    title: str | None = None,
) -> go.Figure:
    """Predicted loss versus predicted throughput, with 5-95% error bars on both.

    Args:
        candidates: one row per candidate architecture with columns ``key``,
            ``pred_loss_mean``, ``pred_loss_q05``, ``pred_loss_q95``, ``pred_tokens_per_s``
            (optional shape columns for the hover text).
        trials: proposed/observed trials (same columns, optional ``observed_loss``): drawn with
            error bars; observed losses as red crosses.
        front: the Pareto-optimal rows, drawn as a connected line in throughput order.
        references: published models (``label`` names them) predicted by the same model.
        selected: a ``key`` to highlight.
        candidate_error_bars: draw the candidates' bars too (default: when <= 400 candidates).
            Throughput bars are drawn where a table has ``pred_tokens_per_s_q05``/``_q95``.
        log_x: log throughput axis (reference models far from the budget).

    Returns:
        A figure whose traces all carry ``customdata = [[key], ...]``.
    """
    fig = go.Figure()
    layers: list[tuple[str, pd.DataFrame | None]] = [
        ("candidate", candidates),
        ("trial", trials),
        ("front", front),
        ("reference", references),
    ]
    for kind, df in layers:
        if df is None or len(df) == 0:
            continue
        _require(df, ("key", _LOSS, _TPS), kind)
        if kind == "front":
            df = df.sort_values(_TPS)
        text = None
        if kind == "reference" and "label" in df:
            # Shapes published under several names (e.g. retrained copies) share one label.
            names = df.groupby([df[_TPS].round(6), df[_LOSS].round(6)])["label"].transform(
                lambda s: " / ".join(dict.fromkeys(s))
            )
            first = ~names.duplicated()
            text = names.where(first, "")
        many = len(df) > 400
        show_bars = (
            (candidate_error_bars if candidate_error_bars is not None else not many)
            if kind == "candidate"
            else True
        )
        trace_cls = go.Scattergl if many else go.Scatter
        marker: dict[str, Any] = dict(color=COLORS[kind], size=6 if kind == "candidate" else 10)
        if kind == "candidate":
            marker.update(opacity=0.45, size=5)
        elif kind == "reference":
            marker.update(symbol="diamond", size=12, line=dict(width=1, color="white"))
        elif kind == "front":
            marker.update(symbol="star", size=13, line=dict(width=1, color="white"))
        name = {
            "candidate": f"candidates ({len(df)})",
            "trial": f"trials ({len(df)})",
            "front": "predicted Pareto front",
            "reference": "reference models",
        }[kind]
        error_y = _error_y(df) if show_bars else None
        if error_y is not None:
            error_y["color"] = _ERROR_COLORS[kind]
        fig.add_trace(
            trace_cls(
                x=df[_TPS],
                y=df[_LOSS],
                mode="lines+markers" if kind == "front" else "markers",
                name=name,
                marker=marker,
                error_y=error_y,
                error_x=_error_x(df, _ERROR_COLORS[kind]) if show_bars else None,
                line=dict(color=COLORS[kind], width=1.5, dash="dot") if kind == "front" else None,
                customdata=[[k] for k in df["key"]],
                hovertext=_hover(df),
                hoverinfo="text",
                text=text,
                textposition="top center",
                textfont=dict(size=10),
            )
        )
        if kind == "reference" and "label" in df:
            fig.data[-1].mode = "markers+text"
        if kind == "trial" and "observed_loss" in df.columns:
            obs = df[df["observed_loss"].notna()]
            if len(obs):
                fig.add_trace(
                    go.Scatter(
                        x=obs[_TPS],
                        y=obs["observed_loss"],
                        mode="markers",
                        name="observed loss",
                        marker=dict(color=COLORS["observed"], symbol="x", size=11),
                        customdata=[[k] for k in obs["key"]],
                        hovertext=[
                            f"<b>{k}</b><br>observed {v:.4f}"
                            for k, v in zip(obs["key"], obs["observed_loss"])
                        ],
                        hoverinfo="text",
                    )
                )
    if selected is not None:
        for kind, df in layers:
            if df is None or len(df) == 0 or "key" not in df:
                continue
            hit = df[df["key"] == selected]
            if len(hit):
                fig.add_trace(
                    go.Scatter(
                        x=hit[_TPS],
                        y=hit[_LOSS],
                        mode="markers",
                        name="selected",
                        marker=dict(
                            size=20,
                            color="rgba(0,0,0,0)",
                            line=dict(width=2.5, color=COLORS["selected"]),
                        ),
                        customdata=[[selected]],
                        hoverinfo="skip",
                    )
                )
                break
    fig.update_layout(
        title=title,
        xaxis_title="predicted throughput (tokens/s, higher is better; bars 5-95%)",
        yaxis_title="predicted loss (lower is better; bars 5-95%)",
        height=600,
        legend=dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0),
        # No dragmode/clickmode here: Streamlit sets click-to-select when on_select is used
        # (a "select" dragmode would turn clicks into plain events).
        margin=dict(l=60, r=20, t=60 if title else 30, b=110),
    )
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def trial_bands_figure(trials: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Each trial's predicted loss band (5-95%, mean marked) with its observed loss, if any.

    Args:
        trials: rows with ``trial``, ``pred_loss_mean``, ``pred_loss_q05``, ``pred_loss_q95``
            (the prediction made at proposal) and optionally ``observed_loss``, ``status`` and
            the current model's ``pred_loss_mean_now``, ``pred_loss_q05_now``,
            ``pred_loss_q95_now`` (drawn as a second, labelled band); one row per trial.
    """
    _require(trials, ("trial", _LOSS, _LO, _HI), "trial")
    df = trials.sort_values("trial")
    labels = [f"trial {int(t)}" for t in df["trial"]]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=df[_LOSS],
            y=labels,
            mode="markers",
            name="predicted (5-95%)",
            marker=dict(color=COLORS["trial"], size=9),
            error_x=_error_y(df),
            hovertext=[
                f"{lab}: {m:.4f} [{lo:.4f}, {hi:.4f}]"
                for lab, m, lo, hi in zip(labels, df[_LOSS], df[_LO], df[_HI])
            ],
            hoverinfo="text",
        )
    )
    if "observed_loss" in df.columns and df["observed_loss"].notna().any():
        obs = df[df["observed_loss"].notna()]
        fig.add_trace(
            go.Scatter(
                x=obs["observed_loss"],
                y=[f"trial {int(t)}" for t in obs["trial"]],
                mode="markers",
                name="observed",
                marker=dict(color=COLORS["observed"], symbol="x", size=12),
            )
        )
    now = [f"{c}_now" for c in (_LOSS, _LO, _HI)]
    if all(c in df.columns for c in now) and df[now[0]].notna().any():
        cur = pd.DataFrame(
            {
                c: pd.to_numeric(df[n], errors="coerce").to_numpy()
                for n, c in zip(now, (_LOSS, _LO, _HI))
            }
        )
        fig.add_trace(
            go.Scatter(
                x=cur[_LOSS],
                y=labels,
                mode="markers",
                name="predicted now (5-95%)",
                marker=dict(color=COLORS["now"], size=9, symbol="diamond"),
                error_x=_error_y(cur),
                hovertext=[
                    f"{lab} now: {m:.4f} [{lo:.4f}, {hi:.4f}]"
                    for lab, m, lo, hi in zip(labels, cur[_LOSS], cur[_LO], cur[_HI])
                ],
                hoverinfo="text",
            )
        )
        fig.data[0].name = "predicted at proposal (5-95%)"
    fig.update_layout(
        xaxis_title="loss",
        title=title,
        height=max(220, 40 + 28 * len(df)),
        margin=dict(l=80, r=10, t=40 if title else 10, b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    fig.update_yaxes(autorange="reversed")
    return fig


def selected_keys(event: Any) -> list[str]:
    """The ``key`` values of the points in a Streamlit plotly selection event.

    Accepts the object ``st.plotly_chart(..., on_select="rerun")`` returns (or its dict form);
    returns ``[]`` when nothing is selected.
    """
    if not event:
        return []
    selection = (
        event.get("selection") if isinstance(event, Mapping) else getattr(event, "selection", None)
    )
    if not selection:
        return []
    points = (
        selection.get("points")
        if isinstance(selection, Mapping)
        else getattr(selection, "points", None)
    )
    out: list[str] = []
    for point in points or []:
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(data, (list, tuple)) and data:
            data = data[0]
        if data is not None and str(data) not in out:
            out.append(str(data))
    return out


def posterior_figure(
    samples: Mapping[str, np.ndarray],
    *,
    kind: str = "histogram",
    prior_samples: Mapping[str, np.ndarray] | None = None,
    ncols: int = 3,
    title: str | None = None,
) -> go.Figure:
    """One panel per coefficient: posterior samples as a histogram or a violin.

    Args:
        samples: coefficient name -> samples of any shape (``chains x draws`` is flattened).
        kind: ``"histogram"`` or ``"violin"``.
        prior_samples: optional draws from the prior, overlaid in grey (shows which terms the
            data moved).
        ncols: panels per row.
    """
    if kind not in ("histogram", "violin"):
        raise ValueError(f"kind must be 'histogram' or 'violin', got {kind!r}")
    names = [n for n in samples if np.size(samples[n]) > 0]
    if not names:
        raise ValueError("no posterior samples to draw")
    ncols = max(1, min(ncols, len(names)))
    nrows = math.ceil(len(names) / ncols)
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=names,
        horizontal_spacing=0.08,
        vertical_spacing=0.5 / max(nrows, 1),
    )
    for i, name in enumerate(names):
        row, col = i // ncols + 1, i % ncols + 1
        values = np.asarray(samples[name], dtype=float).ravel()
        prior = (
            None
            if prior_samples is None or name not in prior_samples
            else np.asarray(prior_samples[name], dtype=float).ravel()
        )
        if kind == "histogram":
            if prior is not None:
                fig.add_trace(
                    go.Histogram(
                        x=prior,
                        histnorm="probability density",
                        nbinsx=40,
                        marker_color="rgba(128,128,128,0.45)",
                        name="prior",
                        legendgroup="prior",
                        showlegend=i == 0,
                    ),
                    row=row,
                    col=col,
                )
            fig.add_trace(
                go.Histogram(
                    x=values,
                    histnorm="probability density",
                    nbinsx=40,
                    marker_color=COLORS["model"],
                    opacity=0.8,
                    name="posterior",
                    legendgroup="posterior",
                    showlegend=i == 0,
                ),
                row=row,
                col=col,
            )
        else:
            if prior is not None:
                fig.add_trace(
                    go.Violin(
                        y=prior,
                        name="prior",
                        side="negative",
                        line_color="grey",
                        legendgroup="prior",
                        showlegend=i == 0,
                        x0=name,
                        points=False,
                    ),
                    row=row,
                    col=col,
                )
            fig.add_trace(
                go.Violin(
                    y=values,
                    name="posterior",
                    side="positive" if prior is not None else "both",
                    line_color=COLORS["model"],
                    box_visible=True,
                    meanline_visible=True,
                    legendgroup="posterior",
                    showlegend=i == 0,
                    x0=name,
                    points=False,
                ),
                row=row,
                col=col,
            )
    fig.update_layout(
        barmode="overlay",
        height=max(300, 260 * nrows),
        title=title,
        margin=dict(l=40, r=20, t=60, b=40),
        violinmode="overlay",
        legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0),
    )
    return fig


def band_figure(
    x: Sequence[float],
    quantiles: pd.DataFrame,
    *,
    x_title: str,
    observed: pd.DataFrame | None = None,
    log_x: bool = False,
    title: str | None = None,
    marker_x: float | None = None,
) -> go.Figure:
    """A predicted-loss curve with its 50% and 90% bands and observed runs on top.

    Args:
        x: the swept values, length ``n``.
        quantiles: ``n`` rows with ``q05, q25, q50, q75, q95`` (and optionally ``mean``).
        observed: runs to overlay, columns ``x``, ``loss`` and optionally ``label``.
        marker_x: draw a vertical line here (the current shape).
    """
    _require(quantiles, ("q05", "q25", "q50", "q75", "q95"), "quantile")
    xs = np.asarray(x, dtype=float)
    if len(xs) != len(quantiles):
        raise ValueError(f"x has {len(xs)} values but the quantile table {len(quantiles)} rows")
    order = np.argsort(xs)
    xs = xs[order]
    q = quantiles.iloc[order].reset_index(drop=True)
    fig = go.Figure()
    for lo, hi, color, name in (
        ("q05", "q95", COLORS["band90"], "90% band"),
        ("q25", "q75", COLORS["band50"], "50% band"),
    ):
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([xs, xs[::-1]]),
                y=np.concatenate([q[hi].to_numpy(), q[lo].to_numpy()[::-1]]),
                fill="toself",
                fillcolor=color,
                line=dict(width=0),
                hoverinfo="skip",
                name=name,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=xs, y=q["q50"], mode="lines", name="median", line=dict(color=COLORS["model"], width=2)
        )
    )
    if observed is not None and len(observed):
        _require(observed, ("x", "loss"), "observed")
        fig.add_trace(
            go.Scatter(
                x=observed["x"],
                y=observed["loss"],
                mode="markers",
                name=f"observed runs ({len(observed)})",
                marker=dict(
                    color=COLORS["observed"], size=8, symbol="circle-open", line=dict(width=2)
                ),
                hovertext=observed["label"] if "label" in observed else None,
                hoverinfo="text+x+y" if "label" in observed else "x+y",
            )
        )
    if marker_x is not None and np.isfinite(marker_x):
        fig.add_vline(x=marker_x, line=dict(color="grey", dash="dash", width=1))
    fig.update_layout(
        xaxis_title=x_title,
        yaxis_title="loss",
        title=title,
        height=420,
        margin=dict(l=50, r=10, t=50 if title else 30, b=100),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, font=dict(size=11)),
    )
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def calibration_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Observed loss against the predicted median with 5-95% bars, and the y = x line.

    Args:
        table: rows with ``loss`` (observed), ``pred_q50`` (or ``pred_mean``), ``pred_q05``,
            ``pred_q95`` and optionally ``label`` and ``group`` (one colour per group).
    """
    centre = "pred_q50" if "pred_q50" in table.columns else "pred_mean"
    _require(table, ("loss", centre, "pred_q05", "pred_q95"), "calibration")
    fig = go.Figure()
    groups = table.groupby("group", sort=True) if "group" in table.columns else [("runs", table)]
    for name, df in groups:
        inside = ((df["loss"] >= df["pred_q05"]) & (df["loss"] <= df["pred_q95"])).mean()
        fig.add_trace(
            go.Scatter(
                x=df[centre],
                y=df["loss"],
                mode="markers",
                name=f"{name} ({inside:.0%} inside 90%)",
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=(df["pred_q95"] - df[centre]).clip(lower=0),
                    arrayminus=(df[centre] - df["pred_q05"]).clip(lower=0),
                    thickness=1,
                    width=0,
                ),
                hovertext=df["label"] if "label" in df else None,
            )
        )
    lo = float(np.nanmin([table[centre].min(), table["loss"].min()]))
    hi = float(np.nanmax([table[centre].max(), table["loss"].max()]))
    fig.add_trace(
        go.Scatter(
            x=[lo, hi], y=[lo, hi], mode="lines", name="y = x", line=dict(color="grey", dash="dash")
        )
    )
    fig.update_layout(
        xaxis_title="predicted loss (median, bars 5-95%)",
        yaxis_title="observed loss",
        title=title,
        height=420,
        margin=dict(l=50, r=10, t=50 if title else 20, b=45),
    )
    return fig


def law_comparison_figure(
    table: pd.DataFrame,
    *,
    metric: str,
    group: str = "law",
    color: str | None = "method",
    title: str | None = None,
) -> go.Figure:
    """Grouped bars of one held-out metric per law (and fit method).

    Args:
        table: one row per (law, method, ...) with a numeric ``metric`` column.
        metric: the column to draw (e.g. ``"rmse"``, ``"spearman"``).
        group: x-axis column; color: column splitting the bars (None: one series).
    """
    _require(table, (group, metric), "comparison")
    fig = go.Figure()
    series = (
        table.groupby(color, sort=False) if color and color in table.columns else [(metric, table)]
    )
    for name, df in series:
        fig.add_trace(
            go.Bar(
                x=df[group].astype(str),
                y=pd.to_numeric(df[metric], errors="coerce"),
                name=str(name),
                text=[f"{v:.3g}" for v in pd.to_numeric(df[metric], errors="coerce")],
                textposition="outside",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis_title=metric,
        xaxis_title=group,
        title=title,
        height=380,
        margin=dict(l=50, r=10, t=50 if title else 20, b=45),
    )
    return fig


def throughput_parity_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Measured against predicted tokens/s on log axes, one colour per ``group``.

    Args:
        table: rows with ``predicted`` and ``measured`` (tokens/s), optional ``label``, ``group``.
    """
    _require(table, ("predicted", "measured"), "throughput")
    fig = go.Figure()
    groups = (
        table.groupby("group", sort=True) if "group" in table.columns else [("measurements", table)]
    )
    for name, df in groups:
        fig.add_trace(
            go.Scatter(
                x=df["predicted"],
                y=df["measured"],
                mode="markers",
                name=str(name),
                marker=dict(size=9),
                hovertext=df["label"] if "label" in df else None,
            )
        )
    positive = pd.concat([table["predicted"], table["measured"]])
    positive = positive[positive > 0]
    if len(positive):
        lo, hi = float(positive.min()) / 1.2, float(positive.max()) * 1.2
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                name="y = x",
                line=dict(color="grey", dash="dash"),
            )
        )
    fig.update_xaxes(type="log", title="model (tokens/s)")
    fig.update_yaxes(type="log", title="measured (tokens/s)", scaleanchor="x", scaleratio=1)
    fig.update_layout(
        title=title,
        height=440,
        margin=dict(l=60, r=10, t=50 if title else 20, b=100),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
    )
    return fig


def residual_figure(
    table: pd.DataFrame,
    *,
    x: str,
    x_title: str | None = None,
    title: str | None = None,
    log_x: bool = False,
) -> go.Figure:
    """Calibration residuals ``log(measured / predicted)`` against one column.

    Args:
        table: rows with ``predicted``, ``measured`` and the column ``x``; optional ``group``.
    """
    _require(table, ("predicted", "measured", x), "residual")
    df = table.assign(residual=np.log(table["measured"] / table["predicted"]))
    fig = go.Figure()
    groups = df.groupby("group", sort=True) if "group" in df.columns else [("measurements", df)]
    for name, g in groups:
        fig.add_trace(
            go.Scatter(
                x=g[x],
                y=g["residual"],
                mode="markers",
                name=str(name),
                marker=dict(size=9),
                hovertext=g["label"] if "label" in g else None,
            )
        )
    fig.add_hline(y=0, line=dict(color="grey", dash="dash"))
    fig.update_layout(
        xaxis_title=x_title or x,
        yaxis_title="log(measured / model)",
        title=title,
        height=440,
        margin=dict(l=60, r=10, t=50 if title else 20, b=100),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
    )
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def hardware_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Model tokens/s on each hardware (x groups), one bar per architecture (colour); hatched
    when the weights and KV cache do not fit the device.

    Args:
        table: rows with ``label``, ``hardware``, ``tokens_per_s``, ``fits_in_memory`` and
            optionally ``rel_sigma`` (log sd, drawn as 5-95% bars).
    """
    _require(table, ("label", "hardware", "tokens_per_s", "fits_in_memory"), "hardware")
    fig = go.Figure()
    for label, df in table.groupby("label", sort=False):
        bars = None
        if "rel_sigma" in df:
            y = df["tokens_per_s"].to_numpy()
            lo, hi = lognormal_band(y, df["rel_sigma"].to_numpy())
            bars = dict(
                type="data", symmetric=False, array=hi - y, arrayminus=y - lo, thickness=1, width=2
            )
        fig.add_trace(
            go.Bar(
                x=df["hardware"],
                y=df["tokens_per_s"],
                name=str(label),
                error_y=bars,
                marker_pattern_shape=["" if f else "/" for f in df["fits_in_memory"]],
                hovertext=[
                    f"{label} on {hw}: {v:,.0f} tok/s" + ("" if f else " (does not fit)")
                    for hw, v, f in zip(df["hardware"], df["tokens_per_s"], df["fits_in_memory"])
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis_title="model tokens/s (bars 5-95%)",
        title=title,
        height=480,
        margin=dict(l=60, r=10, t=50 if title else 20, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.12, x=0),
    )
    fig.update_yaxes(type="log")
    return fig


# ---- the campaign's own model (optim.campaign.insights) -----------------------------------------
def relative_figure(
    table: pd.DataFrame, *, reference: str, top: int = 40, title: str | None = None
) -> go.Figure:
    """Expected loss and tokens/s relative to a reference shape, from joint draws.

    Args:
        table: :func:`optim.campaign.insights.relative_table` rows (``label``, ``status``,
            ``delta_mean``, ``delta_q05``, ``delta_q95``, ``tps_ratio`` and its q05/q95,
            ``p_front``, ``p_beats``, ``is_reference``); the ``top`` rows are drawn, plus every
            trial.
        reference: the reference's name (axis titles).
    """
    _require(
        table,
        (
            "label",
            "delta_mean",
            "delta_q05",
            "delta_q95",
            "tps_ratio",
            "p_front",
            "p_beats",
            "is_reference",
            "status",
        ),
        "relative",
    )
    keep = table.head(top)
    trials = table[table["status"].isin(["observed", "pending"])]
    df = pd.concat([keep, trials]).drop_duplicates(subset=["label"])
    fig = go.Figure()
    symbols = {
        "observed": "x",
        "pending": "diamond",
        "candidate": "circle",
        "reference shape": "square",
    }
    top_p = max(0.05, float(df["p_front"].max()))  # the colour scale spans the values present
    for status, part in df[~df["is_reference"]].groupby("status", sort=False):
        fig.add_trace(
            go.Scatter(
                x=part["tps_ratio"],
                y=part["delta_mean"],
                mode="markers",
                name=str(status),
                marker=dict(
                    symbol=symbols.get(str(status), "circle"),
                    size=10,
                    color=part["p_front"],
                    cmin=0,
                    cmax=top_p,
                    colorscale="Viridis",
                    showscale=status == "candidate",
                    colorbar=dict(title="P(on front)", len=0.6),
                ),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(part["delta_q95"] - part["delta_mean"]).clip(lower=0).to_numpy(),
                    arrayminus=(part["delta_mean"] - part["delta_q05"]).clip(lower=0).to_numpy(),
                    thickness=1,
                    width=0,
                    color="rgba(80,80,80,0.35)",
                ),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=(part["tps_ratio_q95"] - part["tps_ratio"]).clip(lower=0).to_numpy(),
                    arrayminus=(part["tps_ratio"] - part["tps_ratio_q05"]).clip(lower=0).to_numpy(),
                    thickness=1,
                    width=0,
                    color="rgba(80,80,80,0.2)",
                ),
                hovertext=[
                    f"<b>{r.label}</b><br>loss {r.delta_mean:+.4f} [{r.delta_q05:+.4f}, "
                    f"{r.delta_q95:+.4f}]<br>P(beats) {r.p_beats:.0%}, P(front) {r.p_front:.0%}"
                    f"<br>tokens/s x{r.tps_ratio:.2f}"
                    for r in part.itertuples()
                ],
                hoverinfo="text",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=[1.0],
            y=[0.0],
            mode="markers",
            name=f"reference: {reference}",
            marker=dict(symbol="star", size=16, color=COLORS["selected"]),
        )
    )
    fig.add_hline(y=0, line=dict(color="grey", dash="dash", width=1))
    fig.add_vline(x=1, line=dict(color="grey", dash="dash", width=1))
    fig.update_xaxes(type="log", title="tokens/s relative to the reference (x, bars 5-95%)")
    fig.update_yaxes(title="expected loss minus the reference's (bars 5-95%)")
    fig.update_layout(
        title=title,
        height=480,
        margin=dict(l=60, r=10, t=50 if title else 20, b=100),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
    )
    return fig


def hypervolume_figure(
    history: pd.DataFrame, predicted_front: float | None = None, *, title: str | None = None
) -> go.Figure:
    """Hypervolume of the observed runs after each observed trial (a step line), with the
    predicted front's as a dashed line.

    Args:
        history: :func:`optim.campaign.insights.hypervolume_history`'s ``history`` (columns
            ``n_observed``, ``trial``, ``hypervolume``, ``improved``).
    """
    _require(history, ("n_observed", "trial", "hypervolume", "improved"), "hypervolume")
    fig = go.Figure()
    x = [0] + history["n_observed"].tolist()
    y = [0.0] + history["hypervolume"].tolist()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines+markers",
            line=dict(shape="hv", color=COLORS["model"]),
            name="observed runs",
            hovertext=["start"]
            + [f"trial {t}: {v:.4g}" for t, v in zip(history["trial"], history["hypervolume"])],
            hoverinfo="text",
        )
    )
    gained = history[history["improved"]]
    if len(gained):
        fig.add_trace(
            go.Scatter(
                x=gained["n_observed"],
                y=gained["hypervolume"],
                mode="markers+text",
                text=[f"trial {t}" for t in gained["trial"]],
                textposition="top left",
                marker=dict(color=COLORS["front"], size=10),
                name="grew the front",
            )
        )
    if predicted_front is not None and predicted_front > 0:
        fig.add_hline(
            y=predicted_front,
            line=dict(color=COLORS["front"], dash="dash"),
            annotation_text="predicted front",
            annotation_position="bottom right",
        )
    fig.update_layout(
        xaxis_title="observed trials",
        yaxis_title="hypervolume of (-loss, log tokens/s)",
        title=title,
        height=360,
        margin=dict(l=60, r=10, t=40 if title else 20, b=40),
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
    )
    fig.update_xaxes(dtick=1, rangemode="tozero")
    return fig


def loo_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Leave-one-out modelled (x, 90% band) against observed loss (y), as Ax's
    cross-validation plot; results outside their band in red.

    Args:
        table: :func:`optim.campaign.insights.loo_check` rows (``trial``, ``observed``,
            ``pred_mean``, ``pred_q05``, ``pred_q95``, ``outside``).
    """
    _require(table, ("trial", "observed", "pred_mean", "pred_q05", "pred_q95", "outside"), "LOO")
    fig = go.Figure()
    for outside, part in table.groupby("outside", sort=True):
        fig.add_trace(
            go.Scatter(
                x=part["pred_mean"],
                y=part["observed"],
                mode="markers+text",
                text=[f"trial {t}" for t in part["trial"]],
                textposition="top center",
                name="outside its 90% band" if outside else "inside its 90% band",
                marker=dict(size=10, color=COLORS["observed"] if outside else COLORS["model"]),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=(part["pred_q95"] - part["pred_mean"]).clip(lower=0).to_numpy(),
                    arrayminus=(part["pred_mean"] - part["pred_q05"]).clip(lower=0).to_numpy(),
                    thickness=1.5,
                    width=4,
                ),
            )
        )
    lo = float(np.nanmin([table["pred_q05"].min(), table["observed"].min()]))
    hi = float(np.nanmax([table["pred_q95"].max(), table["observed"].max()]))
    pad = 0.05 * max(hi - lo, 1e-3)
    fig.add_trace(
        go.Scatter(
            x=[lo - pad, hi + pad],
            y=[lo - pad, hi + pad],
            mode="lines",
            name="y = x",
            line=dict(color="grey", dash="dash"),
        )
    )
    fig.update_layout(
        xaxis_title="predicted from the other runs (mean, bars 90%)",
        yaxis_title="observed loss",
        title=title,
        height=400,
        margin=dict(l=60, r=10, t=40 if title else 20, b=90),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
    )
    return fig


def parallel_figure(
    table: pd.DataFrame, knobs: Sequence[tuple[str, str]], *, title: str | None = None
) -> go.Figure:
    """Parallel coordinates of trials and front over the knobs, loss and tokens/s; lines
    coloured by loss; a ``group`` axis separates observed, pending and front shapes.

    Args:
        table: :func:`optim.campaign.insights.parallel_coordinates` rows.
        knobs: ``(column, title)`` pairs of the knob axes.
    """
    _require(table, ("group", "loss", "tokens_per_s", *[k for k, _ in knobs]), "parallel")
    groups = ["observed", "pending", "front"]
    code = table["group"].map({g: i for i, g in enumerate(groups)}).astype(float)
    dims = [
        dict(
            label="group",
            values=code,
            tickvals=list(range(len(groups))),
            ticktext=groups,
            range=[-0.2, len(groups) - 0.8],
        )
    ]
    for column, name in knobs:
        dims.append(dict(label=name, values=table[column].astype(float)))
    dims.append(dict(label="loss", values=table["loss"]))
    dims.append(dict(label="tokens/s", values=table["tokens_per_s"]))
    fig = go.Figure(
        go.Parcoords(
            line=dict(
                color=table["loss"],
                colorscale="Viridis_r",
                showscale=True,
                colorbar=dict(title="loss"),
            ),
            dimensions=dims,
        )
    )
    fig.update_layout(title=title, height=420, margin=dict(l=60, r=40, t=60 if title else 50, b=30))
    return fig


def sensitivity_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Share of the predicted loss's and the tokens/s' variance each knob explains, signed by
    the direction (a bar to the right: larger values raise it).

    Args:
        table: :func:`optim.campaign.insights.sensitivity` rows (``title``, ``loss_share``,
            ``loss_rho``, ``loss_range``, ``tps_share``, ``tps_rho``, ``tps_range``).
    """
    _require(
        table,
        ("title", "loss_share", "loss_rho", "loss_range", "tps_share", "tps_rho", "tps_range"),
        "sensitivity",
    )
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=("predicted loss", "tokens/s"),
    )
    for col, prefix, unit in ((1, "loss", "loss"), (2, "tps", "tps")):
        signed = np.sign(table[f"{prefix}_rho"]) * table[f"{prefix}_share"]
        text = [
            f"{v:+.2f} ({r:.3f} loss)" if unit == "loss" else f"{v:+.2f} (x{1 + r:.2f})"
            for v, r in zip(signed, table[f"{prefix}_range"])
        ]
        fig.add_trace(
            go.Bar(
                x=signed,
                y=table["title"],
                orientation="h",
                text=text,
                textposition="auto",
                showlegend=False,
                marker_color=np.where(signed > 0, COLORS["observed"], COLORS["model"]),
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(range=[-1.05, 1.05], title="share of variance, signed by direction")
    fig.update_layout(title=title, height=320, margin=dict(l=90, r=10, t=60 if title else 40, b=50))
    return fig


def slice_figure(
    slices: pd.DataFrame,
    *,
    knob_title: str,
    trials: pd.DataFrame | None = None,
    knob: str | None = None,
    log_x: bool = True,
) -> go.Figure:
    """The campaign model along one knob: predicted loss (mean, 90% band) and tokens/s
    (median, 90% band), observed trials overlaid, the centre shape marked.

    Args:
        slices: the rows of one knob of :func:`optim.campaign.insights.model_slices`.
        trials: rows with the knob's column, ``observed_loss`` and ``pred_tokens_per_s``.
        knob: the knob's column name in ``trials``.
    """
    _require(
        slices,
        ("x", "label", _LOSS, _LO, _HI, _TPS, "tokens_per_s_q05", "tokens_per_s_q95", "is_centre"),
        "slice",
    )
    df = slices.sort_values("x")
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.6, 0.4]
    )
    for row, (mid, lo, hi, name) in enumerate(
        ((_LOSS, _LO, _HI, "loss"), (_TPS, "tokens_per_s_q05", "tokens_per_s_q95", "tokens/s")),
        start=1,
    ):
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([df["x"], df["x"][::-1]]),
                y=np.concatenate([df[hi], df[lo][::-1]]),
                fill="toself",
                fillcolor=COLORS["band90"],
                line=dict(width=0),
                hoverinfo="skip",
                name="90% band",
                showlegend=row == 1,
            ),
            row=row,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=df["x"],
                y=df[mid],
                mode="lines+markers",
                name=name,
                line=dict(color=COLORS["model"]),
                hovertext=df["label"],
                hoverinfo="text+y",
                showlegend=False,
            ),
            row=row,
            col=1,
        )
        centre = df[df["is_centre"]]
        fig.add_trace(
            go.Scatter(
                x=centre["x"],
                y=centre[mid],
                mode="markers",
                name="centre shape",
                marker=dict(symbol="star", size=14, color=COLORS["selected"]),
                hovertext=centre["label"],
                hoverinfo="text",
                showlegend=row == 1,
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(title_text=name, row=row, col=1)
    if trials is not None and knob is not None and len(trials) and "observed_loss" in trials:
        obs = trials[trials["observed_loss"].notna()]
        if len(obs):
            fig.add_trace(
                go.Scatter(
                    x=obs[knob],
                    y=obs["observed_loss"],
                    mode="markers",
                    name="observed runs",
                    marker=dict(color=COLORS["observed"], symbol="x", size=11),
                    hovertext=obs.get("label"),
                    hoverinfo="text+y",
                ),
                row=1,
                col=1,
            )
    fig.update_xaxes(title_text=knob_title, row=2, col=1)
    if log_x:
        fig.update_xaxes(type="log")
    fig.update_layout(
        height=420,
        margin=dict(l=60, r=10, t=30, b=40),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, font=dict(size=10)),
    )
    return fig
