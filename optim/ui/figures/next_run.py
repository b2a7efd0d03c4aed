"""The next-run page's charts (:mod:`optim.campaign.insights`): shapes relative to a reference
from joint draws, and the hypervolume over trials."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from .style import (
    COLORS,
    require_columns,
)

__all__ = [
    "relative_figure",
    "hypervolume_figure",
]


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
    require_columns(
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
    require_columns(history, ("n_observed", "trial", "hypervolume", "improved"), "hypervolume")
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
