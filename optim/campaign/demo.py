"""The README's main job: a 1B campaign on the bundled real runs, compared with LLaMA-3.2.

Everything it prints is a model prediction (scaling-law posterior + GP for loss, calibrated
roofline for throughput); nothing is trained or measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.arch import Arch

from .campaign import Campaign, _as_store, _jsonable, delete_campaign
from optim.core.problem import CampaignSpec
from .store import CampaignStore

__all__ = ["DEMO_NAME", "DEMO_REFERENCES", "demo_spec", "run_demo"]

DEMO_NAME = "demo-1b"
#: Reference models the demo compares against (rows of ``reference_architectures()``).
DEMO_REFERENCES: tuple[str, ...] = ("Llama-3.2-1B", "Llama-3.2-3B")


def demo_spec() -> CampaignSpec:
    """1B non-embedding params +-5%, 100B tokens, A100-40GB, batch 64 / 4096 in / 1024 out."""
    from models.throughput import Workload

    return CampaignSpec(DEMO_NAME, 1e9, 1e11, "a100-40gb", workload=Workload(64, 4096, 1024))


def run_demo(store: CampaignStore | str | Path | None = None, out: str | Path = "archopt-demo",
             *, k: int = 4, progress: bool = True) -> dict[str, Any]:
    """Create (or reuse) the demo campaign on the default prior, propose a batch, compare the
    predicted Pareto set with the LLaMA-3.2 shapes and export the Pareto configs.

    Re-runnable: an existing demo campaign with the same spec is reused (its pending proposals
    are shown instead of proposing more); one with another spec is replaced.

    Returns:
        ``campaign`` (brief), ``proposals``, ``pareto``, ``references`` (each with its
        predicted loss/throughput, the fastest Pareto shape with predicted loss <= it and the
        ``speedup``), ``export_dir``, ``notes``.
    """
    from models.throughput import load_calibration
    from surrogate.runs import reference_architectures

    store = _as_store(store)
    spec = demo_spec()
    camp = None
    if DEMO_NAME in store.list_names():
        camp = Campaign.load(DEMO_NAME, store)
        if camp.spec != spec:
            delete_campaign(DEMO_NAME, store)
            camp = None
    if camp is None:
        camp = Campaign.create(spec, store=store, progress=progress)
    pending = [t for t in camp.trials() if t["status"] == "pending"]
    proposals = pending if pending else camp.propose(k)
    pareto = camp.pareto()

    refs = reference_architectures()
    refs = refs[refs["name"].isin(DEMO_REFERENCES)]
    archs = [Arch.from_mapping(row) for _, row in refs.iterrows()]
    pred = camp.predict(archs)
    references = []
    for name, (_, p) in zip(refs["name"], pred.iterrows()):
        row = {"name": name, **{k_: _jsonable(v) for k_, v in p.items()}}
        better = [r for r in pareto if (r["observed_loss"] if r["observed_loss"] is not None
                                        else r["pred_loss_mean"]) <= row["pred_loss_mean"]]
        if better:
            best = max(better, key=lambda r: r["pred_tokens_per_s"])
            row.update(match_label=best["label"], match_pred_loss_mean=best["pred_loss_mean"],
                       match_pred_tokens_per_s=best["pred_tokens_per_s"],
                       speedup=best["pred_tokens_per_s"] / row["pred_tokens_per_s"])
        references.append(row)
    written = camp.export(out)
    cal = load_calibration(spec.hardware, spec.workload.backend)
    prior = camp.prior
    notes = [
        "Every loss and throughput above is a model prediction; nothing was trained or measured.",
        f"Loss: scaling-law posterior ({getattr(prior, 'law', '?')}, NUTS on the bundled real "
        f"runs) in the units of source {getattr(prior, 'reference_source', '?')!r} + GP residual "
        f"(no campaign runs observed yet unless listed as observed).",
        f"Throughput: {spec.workload} on {spec.hardware}, roofline model calibration "
        f"'{cal.source}' (rel. sigma {cal.rel_sigma:.2f}).",
        "Llama-3.2-3B is outside the 1B budget: its row shows how much larger shapes cost.",
    ]
    return {"campaign": camp.status_brief(), "proposals": proposals, "pareto": pareto,
            "references": references, "export_dir": str(Path(out)),
            "files": [str(p) for p in written], "notes": notes}
