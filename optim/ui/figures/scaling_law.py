"""The scaling-law page's charts: posterior coefficients, predicted-loss bands along a knob,
calibration against real runs and the law comparison."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import (
    COLORS,
    require_columns,
)

__all__ = [
    "posterior_figure",
    "band_figure",
    "calibration_figure",
    "law_comparison_figure",
]


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
    require_columns(quantiles, ("q05", "q25", "q50", "q75", "q95"), "quantile")
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
        require_columns(observed, ("x", "loss"), "observed")
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
    require_columns(table, ("loss", centre, "pred_q05", "pred_q95"), "calibration")
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
    require_columns(table, (group, metric), "comparison")
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
