"""The model page's charts (:mod:`optim.campaign.insights`): leave-one-out check, parallel
coordinates, sensitivity and slices of the campaign's model."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import (
    COLORS,
    LOSS,
    LOSS_Q05,
    LOSS_Q95,
    TPS,
    require_columns,
)

__all__ = [
    "loo_figure",
    "parallel_figure",
    "sensitivity_figure",
    "slice_figure",
]


def loo_figure(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Leave-one-out modelled (x, 90% band) against observed loss (y), as Ax's
    cross-validation plot; results outside their band in red.

    Args:
        table: :func:`optim.campaign.insights.loo_check` rows (``trial``, ``observed``,
            ``pred_mean``, ``pred_q05``, ``pred_q95``, ``outside``).
    """
    require_columns(
        table, ("trial", "observed", "pred_mean", "pred_q05", "pred_q95", "outside"), "LOO"
    )
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
    require_columns(table, ("group", "loss", "tokens_per_s", *[k for k, _ in knobs]), "parallel")
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
    require_columns(
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
    require_columns(
        slices,
        (
            "x",
            "label",
            LOSS,
            LOSS_Q05,
            LOSS_Q95,
            TPS,
            "tokens_per_s_q05",
            "tokens_per_s_q95",
            "is_centre",
        ),
        "slice",
    )
    df = slices.sort_values("x")
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.6, 0.4]
    )
    for row, (mid, lo, hi, name) in enumerate(
        (
            (LOSS, LOSS_Q05, LOSS_Q95, "loss"),
            (TPS, "tokens_per_s_q05", "tokens_per_s_q95", "tokens/s"),
        ),
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
