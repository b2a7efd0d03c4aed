"""The throughput page's charts: measured against modelled tokens/s, calibration residuals and
the model across hardware."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from optim.core.bands import lognormal_band

from .style import (
    require_columns,
)

__all__ = [
    "throughput_parity_figure",
    "residual_figure",
    "hardware_figure",
]


def throughput_parity_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Measured against predicted tokens/s on log axes, one colour per ``group``.

    Args:
        table: rows with ``predicted`` and ``measured`` (tokens/s), optional ``label``, ``group``.
    """
    require_columns(table, ("predicted", "measured"), "throughput")
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
    require_columns(table, ("predicted", "measured", x), "residual")
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
    require_columns(table, ("label", "hardware", "tokens_per_s", "fits_in_memory"), "hardware")
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
