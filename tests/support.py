"""Fixtures and builders shared by several test modules (imported as ``support``).

``pyproject.toml`` puts ``tests/`` on ``sys.path`` so modules in the mirrored tree import these.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from models.throughput import Workload
from optim.bench.worlds import reference_shape
from optim.core.problem import CampaignSpec
from surrogate.posterior import LawPosterior

#: The repository root.
REPO = Path(__file__).resolve().parents[1]
#: Test-only data files.
DATA = REPO / "tests" / "data"


def small_posterior(S: int = 32, seed: int = 0):
    """A conditional-law posterior near Chinchilla's coefficients, one source ``ref``."""
    from surrogate.posterior import LawPosterior

    rng = np.random.default_rng(seed)
    n = rng.standard_normal
    samples = {
        "E": 1.69 + 0.02 * n(S),
        "log_A": 6.0 + 0.05 * n(S),
        "alpha": 0.34 + 0.005 * n(S),
        "log_B": 6.02 + 0.05 * n(S),
        "beta": 0.28 + 0.005 * n(S),
        "a1": 0.08 + 0.02 * n(S),
        "a2": 0.006 + 0.002 * n(S),
        "b1": 0.013 + 0.003 * n(S),
        "b2": 0.014 + 0.003 * n(S),
        "sigma[ref]": 0.02 + 0.002 * np.abs(n(S)),
    }
    return LawPosterior("conditional", samples, sources=["ref"], reference_source="ref")


def small_spec(name: str = "small", **overrides) -> CampaignSpec:
    """5e7 non-embedding params +-5% (~280 candidates), 1e9 tokens, A100-40GB, small workload."""
    kwargs = dict(
        name=name,
        params=5e7,
        tokens=1e9,
        hardware="a100-40gb",
        vocab_size=32000,
        workload=Workload(8, 512, 128),
    )
    kwargs.update(overrides)
    return CampaignSpec(**kwargs)


def fake_truth(source: str = "s", n: int = 8) -> LawPosterior:
    """A conditional-law posterior near published coefficients, without any fitting."""
    rng = np.random.default_rng(0)
    base = dict(
        E=1.69,
        log_A=math.log(406.4),
        alpha=0.34,
        log_B=math.log(410.7),
        beta=0.28,
        a1=0.038,
        a2=0.0031,
        b1=0.016,
        b2=0.017,
    )
    samples = {k: v * (1 + 0.01 * rng.normal(size=n)) for k, v in base.items()}
    samples[f"sigma[{source}]"] = np.full(n, 0.01)
    return LawPosterior(
        "conditional", samples, sources=[source], reference_source=source, method="lsq"
    )


REFERENCE = reference_shape(1e8)


def max_loss_of(truth, tokens=2e9, source="s"):
    """The user's target: the prior's (here the truth law's) mean loss at the reference shape."""
    from surrogate.laws import law_features

    return float(np.mean(truth.law_draws(law_features([REFERENCE], tokens), source=source)))


#: A stand-in for ``vllm bench throughput --output-json``: arguments ``config result requests
#: input output mode``; elapsed time grows with depth; mode ``crash`` exits 4, ``wrong-workload``
#: reports twice the tokens, anything else (``ok``) a consistent result.
FAKE_VLLM = """
import json, sys
config, result, requests, inp, out, mode = sys.argv[1:7]
cfg = json.load(open(config))
if mode == "crash":
    sys.exit(4)
n = int(requests)
elapsed = 1.0 + 0.05 * cfg["num_hidden_layers"]
total = n * (int(inp) + int(out))
if mode == "wrong-workload":
    total *= 2
json.dump({"elapsed_time": elapsed, "num_requests": n, "total_num_tokens": total,
           "requests_per_second": n / elapsed, "tokens_per_second": total / elapsed},
          open(result, "w"))
"""


def pending_campaign(path: Path, n: int) -> Path:
    """A store at ``path`` holding campaign 'small' with ``n`` pending trials (0 .. n-1)."""
    from optim.campaign import Campaign

    Campaign.create(small_spec(), store=path, prior=small_posterior()).propose(n, seed=0)
    return path


def store_with_fake_vllm(template: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the store ``template`` in ``tmp_path`` and :data:`FAKE_VLLM` written there:
    ``(store, script)``."""
    import shutil

    store = tmp_path / "campaigns.sqlite"
    shutil.copyfile(template, store)
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    return store, script
