"""What every chart of the app shares: the colours, the prediction columns of the tables the
figure builders read, and the error-bar and hover helpers."""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

__all__ = [
    "COLORS",
    "ERROR_COLORS",
    "LOSS",
    "LOSS_Q05",
    "LOSS_Q95",
    "TPS",
    "require_columns",
    "loss_error_bars",
    "throughput_error_bars",
    "hover_text",
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
ERROR_COLORS: dict[str, str] = {
    "candidate": "rgba(154,165,177,0.5)",
    "trial": "rgba(31,119,180,0.45)",
    "front": "rgba(255,127,14,0.45)",
    "reference": "rgba(44,160,44,0.55)",
}

#: Prediction columns of the tables the builders read: loss mean, its 5% and 95% quantiles,
#: tokens/s.
LOSS = "pred_loss_mean"
LOSS_Q05 = "pred_loss_q05"
LOSS_Q95 = "pred_loss_q95"
TPS = "pred_tokens_per_s"


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ``KeyError`` naming the ``columns`` the ``what`` table lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"{what} table lacks column(s) {', '.join(missing)}")


def loss_error_bars(df: pd.DataFrame) -> dict[str, Any] | None:
    """Plotly ``error_y`` (or ``error_x``) of the 5-95% loss band of each row, or None when
    the table has no band columns."""
    if LOSS_Q05 not in df.columns or LOSS_Q95 not in df.columns:
        return None
    lo = df[LOSS] - df[LOSS_Q05]
    hi = df[LOSS_Q95] - df[LOSS]
    return dict(
        type="data",
        symmetric=False,
        array=hi.clip(lower=0).to_numpy(),
        arrayminus=lo.clip(lower=0).to_numpy(),
        thickness=1,
        width=0,
    )


def throughput_error_bars(df: pd.DataFrame, color: str) -> dict[str, Any] | None:
    """Plotly ``error_x`` of the 5-95% tokens/s band of each row (in ``color``), or None when
    the table has none."""
    lo, hi = f"{TPS}_q05", f"{TPS}_q95"
    if lo not in df.columns or hi not in df.columns or df[[lo, hi]].isna().all().all():
        return None
    return dict(
        type="data",
        symmetric=False,
        array=(df[hi] - df[TPS]).clip(lower=0).to_numpy(),
        arrayminus=(df[TPS] - df[lo]).clip(lower=0).to_numpy(),
        thickness=1,
        width=0,
        color=color,
    )


def hover_text(df: pd.DataFrame) -> list[str]:
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
    lo = df[LOSS_Q05] if LOSS_Q05 in df else pd.Series(np.nan, index=df.index)
    hi = df[LOSS_Q95] if LOSS_Q95 in df else pd.Series(np.nan, index=df.index)
    parts.append(
        (
            "loss "
            + df[LOSS].map("{:.4f}".format)
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
    parts.append((df[TPS].map("{:,.0f}".format) + " tok/s").to_numpy())
    return ["<br>".join(p for p in row if p) for row in zip(*parts)]
