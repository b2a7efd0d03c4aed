"""The README's main job: a 1B campaign on the bundled real runs, compared with LLaMA-3.2.

Everything it prints is a model prediction (scaling-law posterior + GP for loss, calibrated
roofline for throughput); nothing is trained or measured.

Besides the Pareto export it writes ``<out>/summary.json`` (:data:`SUMMARY_FILE`,
:func:`demo_summary`): the proposed batch, the Pareto count and ranges, and each reference
model beside the fastest Pareto shape at equal-or-better predicted loss, so documentation can
quote numbers a fresh run reproduces.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

from models.arch import Arch
from models.files import write_atomic
from optim.core.spec import DEFAULT_WORKLOAD, CampaignSpec

from .campaign import Campaign, as_store, delete_campaign
from .export import ExportError, export_pareto
from .rows import jsonable
from .store import CampaignStore

__all__ = [
    "DEMO_NAME",
    "DEMO_REFERENCES",
    "HEADLINE_REFERENCE",
    "SUMMARY_FILE",
    "demo_spec",
    "demo_summary",
    "run_demo",
]

DEMO_NAME = "demo-1b"
#: Reference models the demo compares against (rows of ``reference_architectures()``).
DEMO_REFERENCES: tuple[str, ...] = ("Llama-3.2-1B", "Llama-3.2-3B")
#: The reference the README's headline compares with (inside the 1B budget).
HEADLINE_REFERENCE = "Llama-3.2-1B"
#: Name of the machine-readable summary written beside the exported configs.
SUMMARY_FILE = "summary.json"
#: Fields of each proposal kept in the summary.
_PROPOSAL_KEYS = (
    "trial",
    "label",
    "params",
    "non_embedding_params",
    "pred_loss_mean",
    "pred_loss_q05",
    "pred_loss_q95",
    "pred_tokens_per_s",
    "ehvi",
)


def demo_spec() -> CampaignSpec:
    """1B non-embedding params +-5%, 100B tokens, A100-40GB, the default workload
    (:data:`~optim.core.spec.DEFAULT_WORKLOAD`: vLLM, batch 64 / 4096 in / 1024 out)."""
    return CampaignSpec(DEMO_NAME, 1e9, 1e11, "a100-40gb", workload=DEFAULT_WORKLOAD)


def run_demo(
    store: CampaignStore | str | Path | None = None,
    out: str | Path = "archopt-demo",
    *,
    k: int = 4,
    progress: bool = True,
) -> dict[str, Any]:
    """Create (or reuse) the demo campaign on the default prior, propose a batch, compare the
    predicted Pareto set with the LLaMA-3.2 shapes and export the Pareto configs.

    Re-runnable: an existing demo campaign with the same spec is reused (its pending proposals
    are shown instead of proposing more); one with another spec is replaced.

    Returns:
        ``campaign`` (brief), ``proposals``, ``pareto``, ``references`` (each with its
        predicted loss/throughput, the fastest Pareto shape with predicted loss <= it and the
        ``speedup``), ``export_dir``, ``files`` (configs, pareto.csv/json, summary.json),
        ``summary`` (what :func:`demo_summary` returns, also in ``<out>/summary.json``),
        ``notes``.

    Raises:
        ExportError: ``out`` cannot be written.
    """
    from models.throughput import load_calibration
    from surrogate.runs import reference_architectures

    opened = as_store(store)
    spec = demo_spec()
    camp = None
    if DEMO_NAME in opened.list_names():
        camp = Campaign.load(DEMO_NAME, opened)
        if camp.spec != spec:
            delete_campaign(DEMO_NAME, opened)
            camp = None
    if camp is None:
        camp = Campaign.create(spec, store=opened, progress=progress)
    pending = [t for t in camp.trials() if t["status"] == "pending"]
    proposals = pending if pending else camp.propose(k)
    pareto = camp.pareto()

    refs = reference_architectures()
    refs = refs[refs["name"].isin(DEMO_REFERENCES)]
    archs = [Arch.from_mapping(row) for _, row in refs.iterrows()]
    pred = camp.shape_table(archs)
    references = []
    for name, (_, p) in zip(refs["name"], pred.iterrows()):
        row = {"name": name, **{k_: jsonable(v) for k_, v in p.items()}}
        better = [
            r
            for r in pareto
            if (r["observed_loss"] if r["observed_loss"] is not None else r["pred_loss_mean"])
            <= row["pred_loss_mean"]
        ]
        if better:
            best = max(better, key=lambda r: r["pred_tokens_per_s"])
            row.update(
                match_label=best["label"],
                match_pred_loss_mean=best["pred_loss_mean"],
                match_pred_tokens_per_s=best["pred_tokens_per_s"],
                speedup=best["pred_tokens_per_s"] / row["pred_tokens_per_s"],
            )
        references.append(row)
    # The rows shown above, not a second pareto() call: one set in the table, files and summary.
    written = export_pareto(pareto, out, campaign=camp.status_brief())
    cal = load_calibration(spec.hardware, spec.workload.backend)
    prior = camp.prior
    notes = [
        "Every loss and throughput above is a model prediction; nothing was trained or measured.",
        f"Loss: scaling-law posterior ({getattr(prior, 'law', '?')}, NUTS on the bundled real "
        f"runs) in the units of source {getattr(prior, 'reference_source', '?')!r} + GP residual "
        f"(no campaign runs observed yet unless listed as observed).",
        f"Throughput: {spec.workload} on {spec.hardware}, the {spec.workload.backend} serving "
        f"model, calibration '{cal.source}' (per-shape log sd {cal.rel_sigma:.2f}; absolute "
        "tokens/s share a wider common-mode band, see `archopt throughput --json`).",
        "Llama-3.2-3B is outside the 1B budget: its row shows how much larger shapes cost.",
    ]
    result = {
        "campaign": camp.status_brief(),
        "proposals": proposals,
        "pareto": pareto,
        "references": references,
        "export_dir": str(Path(out)),
        "notes": notes,
    }
    result["summary"] = demo_summary(
        result,
        prior_info={
            "law": getattr(prior, "law", None),
            "method": getattr(prior, "method", None),
            "reference_source": getattr(prior, "reference_source", None),
            "cache_key": getattr(prior, "info", {}).get("cache_key"),
        },
        calibration={"source": cal.source, "rel_sigma": cal.rel_sigma},
    )
    summary_path = Path(out).expanduser() / SUMMARY_FILE
    _write_json(summary_path, result["summary"])
    result["files"] = [str(p) for p in written] + [str(summary_path)]
    return result


def _range(values: list[Any]) -> list[float] | None:
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return [min(finite), max(finite)] if finite else None


def demo_summary(
    result: Mapping[str, Any],
    *,
    prior_info: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The demo's numbers as plain JSON (pure; :func:`run_demo` writes it to summary.json).

    Args:
        result: :func:`run_demo`'s ``campaign``, ``proposals``, ``pareto``, ``references``.
        prior_info, calibration: provenance copied as given.

    Returns:
        ``campaign``; ``prior``; ``calibration``; ``proposals`` (``_PROPOSAL_KEYS`` of each);
        ``pareto_count`` and the Pareto set's ``pareto_pred_loss_range`` and
        ``pareto_tokens_per_s_range`` (``[min, max]``); ``references`` (name, predicted loss and
        tokens/s, and ``match_*``/``speedup``: the fastest Pareto shape with predicted loss <=
        the reference's, null without one); ``headline``: the :data:`HEADLINE_REFERENCE` row as
        ``reference``, ``chosen`` (shape label), ``speedup`` (tokens/s ratio),
        ``reference_pred_loss``, ``chosen_pred_loss``, ``reference_tokens_per_s``,
        ``chosen_tokens_per_s``; ``predictions_only`` (always true: nothing was trained or
        measured). Non-finite numbers are null.
    """
    pareto = list(result["pareto"])
    references = []
    for ref in result["references"]:
        references.append(
            {
                key: jsonable(ref.get(key))
                for key in (
                    "name",
                    "label",
                    "params",
                    "non_embedding_params",
                    "pred_loss_mean",
                    "pred_loss_q05",
                    "pred_loss_q95",
                    "pred_tokens_per_s",
                    "match_label",
                    "match_pred_loss_mean",
                    "match_pred_tokens_per_s",
                    "speedup",
                )
            }
        )
    head = next((r for r in references if r["name"] == HEADLINE_REFERENCE), None)
    headline = (
        None
        if head is None
        else {
            "reference": head["name"],
            "chosen": head["match_label"],
            "speedup": head["speedup"],
            "reference_pred_loss": head["pred_loss_mean"],
            "chosen_pred_loss": head["match_pred_loss_mean"],
            "reference_tokens_per_s": head["pred_tokens_per_s"],
            "chosen_tokens_per_s": head["match_pred_tokens_per_s"],
        }
    )
    return {
        "campaign": {k: jsonable(v) for k, v in dict(result["campaign"]).items()},
        "prior": {k: jsonable(v) for k, v in dict(prior_info or {}).items()},
        "calibration": {k: jsonable(v) for k, v in dict(calibration or {}).items()},
        "proposals": [{k: jsonable(p.get(k)) for k in _PROPOSAL_KEYS} for p in result["proposals"]],
        "pareto_count": len(pareto),
        "pareto_pred_loss_range": _range([r.get("pred_loss_mean") for r in pareto]),
        "pareto_tokens_per_s_range": _range([r.get("pred_tokens_per_s") for r in pareto]),
        "references": references,
        "headline": headline,
        "predictions_only": True,
    }


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` to ``path`` atomically (:func:`models.files.write_atomic`)."""
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from None
