"""The Pareto page's charts: predicted loss against tokens/s with bands, point selection, and
the campaigns page's per-trial bands."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
import plotly.graph_objects as go

from .style import (
    COLORS,
    ERROR_COLORS,
    LOSS,
    LOSS_Q05,
    LOSS_Q95,
    TPS,
    hover_text,
    loss_error_bars,
    require_columns,
    throughput_error_bars,
)

__all__ = [
    "pareto_figure",
    "trial_bands_figure",
    "selected_keys",
]


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
        require_columns(df, ("key", LOSS, TPS), kind)
        if kind == "front":
            df = df.sort_values(TPS)
        text = None
        if kind == "reference" and "label" in df:
            # Shapes published under several names (e.g. retrained copies) share one label.
            names = df.groupby([df[TPS].round(6), df[LOSS].round(6)])["label"].transform(
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
        error_y = loss_error_bars(df) if show_bars else None
        if error_y is not None:
            error_y["color"] = ERROR_COLORS[kind]
        fig.add_trace(
            trace_cls(
                x=df[TPS],
                y=df[LOSS],
                mode="lines+markers" if kind == "front" else "markers",
                name=name,
                marker=marker,
                error_y=error_y,
                error_x=throughput_error_bars(df, ERROR_COLORS[kind]) if show_bars else None,
                line=dict(color=COLORS[kind], width=1.5, dash="dot") if kind == "front" else None,
                customdata=[[k] for k in df["key"]],
                hovertext=hover_text(df),
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
                        x=obs[TPS],
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
                        x=hit[TPS],
                        y=hit[LOSS],
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
    require_columns(trials, ("trial", LOSS, LOSS_Q05, LOSS_Q95), "trial")
    df = trials.sort_values("trial")
    labels = [f"trial {int(t)}" for t in df["trial"]]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=df[LOSS],
            y=labels,
            mode="markers",
            name="predicted (5-95%)",
            marker=dict(color=COLORS["trial"], size=9),
            error_x=loss_error_bars(df),
            hovertext=[
                f"{lab}: {m:.4f} [{lo:.4f}, {hi:.4f}]"
                for lab, m, lo, hi in zip(labels, df[LOSS], df[LOSS_Q05], df[LOSS_Q95])
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
    now = [f"{c}_now" for c in (LOSS, LOSS_Q05, LOSS_Q95)]
    if all(c in df.columns for c in now) and df[now[0]].notna().any():
        cur = pd.DataFrame(
            {
                c: pd.to_numeric(df[n], errors="coerce").to_numpy()
                for n, c in zip(now, (LOSS, LOSS_Q05, LOSS_Q95))
            }
        )
        fig.add_trace(
            go.Scatter(
                x=cur[LOSS],
                y=labels,
                mode="markers",
                name="predicted now (5-95%)",
                marker=dict(color=COLORS["now"], size=9, symbol="diamond"),
                error_x=loss_error_bars(cur),
                hovertext=[
                    f"{lab} now: {m:.4f} [{lo:.4f}, {hi:.4f}]"
                    for lab, m, lo, hi in zip(labels, cur[LOSS], cur[LOSS_Q05], cur[LOSS_Q95])
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
