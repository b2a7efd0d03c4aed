"""The campaign's default loss prior: the ``stacked`` law fitted by NUTS on the bundled run tables.

``stacked`` (:mod:`surrogate.stacking`) fits chinchilla, aspect and conditional and mixes their
posteriors by stacking weights from size-group cross-validation: the model the validation
(``benchmarks/surrogate_validation.py``) chose on its dev splits. The prior ships fitted
(:data:`SHIPPED_PRIOR`); otherwise it is computed once and cached under
``$ARCHOPT_HOME/posteriors/`` in a file named by a hash of the training rows, the settings and
:data:`surrogate.bayes.MODEL_REVISION`, so a change to any of them refits and an unchanged set-up
loads in well under a second.

To keep the fit well under a minute on a 2-core machine the bundled 738 runs are reduced to at
most :data:`MAX_ROWS_PER_SOURCE` per source key (:func:`default_prior_runs`):

0. runs with fewer than :data:`MIN_NON_EMBEDDING_PARAMS` non-embedding parameters are dropped;
1. rows with the same source, shape and tokens (openlm_grid's warm-up / batch-size sweeps) are
   collapsed to the best (lowest-loss) one, since the optimizer asks about well-tuned runs;
2. each source key is then thinned to at most :data:`MAX_ROWS_PER_SOURCE` rows, keeping every
   distinct shape where possible (stratified, seeded).

Steps 1 and 2 apply to the bundled rows only: a user's own runs (a campaign created with
``--runs``) are all kept, and step 0 drops them only with a warning.

Per-source terms are ``chinchilla`` (:mod:`surrogate.bayes`): every source key has its own
Chinchilla part (E, prefactors, exponents partially pooled across sources) while the shape
calibration (aspect term, conditional's a1, a2, b1, b2) is shared, so the shape effect is learned
from every table and no table's curve is forced onto another's. (With one shared Chinchilla curve
and an affine map per source, morph and openlm_runs fitted at sigma 0.06-0.10 against 0.018
alone.) The trend-orthogonal discrepancy has one ``tau`` for all sources
(``discrepancy="orth_shared"``: several sources have only 3-4 size groups), and NUTS warms up
longer (500 iterations, target acceptance 0.95). Uncached it takes about two minutes on 2 busy
cores (cross-validation for the weights, then one NUTS fit per family kept); the validation
report gives the measured time. The reference source is ``mlfoundations-scaling-grid`` (a final
validation loss, the largest table): the campaign predicts with its curve unless a source is
given.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from models.arch import SHAPE_FIELDS
from models.home import archopt_home

from .posterior import LawPosterior, PosteriorError
from .runs import bundled_runs, source_keys, table_archs

__all__ = [
    "default_prior",
    "cached_prior",
    "fit_with_default_settings",
    "default_prior_runs",
    "DEFAULT_PRIOR_SETTINGS",
    "MAX_ROWS_PER_SOURCE",
    "default_prior_path",
    "MIN_NON_EMBEDDING_PARAMS",
    "SHIPPED_PRIOR",
    "default_prior_is_cached",
    "write_shipped_prior",
    "campaign_prior",
]

#: The default prior as fitted at release, shipped in the package: used (no fit, no wait) when
#: its cache key matches the current rows, settings and model revision; otherwise the prior is
#: fitted once and cached under ``$ARCHOPT_HOME``. :func:`write_shipped_prior` regenerates it.
SHIPPED_PRIOR = Path(__file__).resolve().parent / "data" / "default_prior.nc"

MAX_ROWS_PER_SOURCE: int = 60
#: Smaller models (down to 0.4M in openlm) bend away from the power law and are far below the
#: sizes the optimizer proposes; they are left out of the default prior.
MIN_NON_EMBEDDING_PARAMS: float = 3e7
#: NUTS settings of the default prior (part of the cache key).
DEFAULT_PRIOR_SETTINGS: dict = {
    "law": "stacked",
    "num_chains": 2,
    "num_warmup": 500,
    "num_samples": 250,
    "seed": 0,
    "source_terms": "chinchilla",
    "target_accept": 0.95,
    "reference_source": "mlfoundations-scaling-grid",
    "discrepancy": "orth_shared",
}


def default_prior_runs(runs: pd.DataFrame | None = None, *, seed: int = 0) -> pd.DataFrame:
    """The rows the default prior is fitted on (see the module docstring), index reset.

    ``runs``: the bundled tables (default), or the bundled tables plus a user's runs (a
    campaign created with ``--runs``). Only bundled rows are collapsed and thinned; rows that
    are not in the bundled tables are all kept, except those below
    :data:`MIN_NON_EMBEDDING_PARAMS`, which are dropped with a warning that says how many and
    why.
    """
    df = bundled_runs() if runs is None else runs.copy()
    user = _user_rows(df) if runs is not None else np.zeros(len(df), bool)
    n = np.array([a.non_embedding_params for a in table_archs(df)])
    small = n < MIN_NON_EMBEDDING_PARAMS
    if np.any(small & user):
        warnings.warn(
            f"{int(np.sum(small & user))} of your {int(user.sum())} runs have fewer "
            f"than {MIN_NON_EMBEDDING_PARAMS:.0e} non-embedding parameters and are "
            "left out of the prior fit (models that small bend away from the power "
            "laws)",
            stacklevel=2,
        )
    keep_user = df[user & ~small]
    df = df[~user & ~small]
    df["_key"] = source_keys(df)
    group = ["_key", *SHAPE_FIELDS, "tokens"]
    best = df.loc[df.groupby(group, sort=True)["loss"].idxmin()]
    rng = np.random.default_rng(seed)
    kept = []
    for _, part in best.groupby("_key", sort=True):
        if len(part) <= MAX_ROWS_PER_SOURCE:
            kept.append(part)
            continue
        # Round-robin over shapes (shuffled) so every shape keeps rows before any keeps two.
        order = rng.permutation(len(part))
        part = part.iloc[order]
        rank = part.groupby(list(SHAPE_FIELDS), sort=False).cumcount().to_numpy()
        kept.append(part.iloc[np.argsort(rank, kind="stable")[:MAX_ROWS_PER_SOURCE]])
    out = pd.concat(kept).drop(columns="_key")
    out = pd.concat([out, keep_user]).sort_index()
    return out.reset_index(drop=True)


def _user_rows(df: pd.DataFrame) -> np.ndarray:
    """``(n,)`` True for rows that are not rows of the bundled tables (same source, run,
    tokens and loss)."""
    keys = ["source", "run", "tokens", "loss"]
    bundled = bundled_runs()[keys].drop_duplicates()
    merged = df[keys].merge(bundled, on=keys, how="left", indicator=True)
    return (merged["_merge"] == "left_only").to_numpy()


def _cache_key(runs: pd.DataFrame) -> str:
    cols = ["source", "run", *SHAPE_FIELDS, "tokens", "loss"]
    if "dataset" in runs.columns:
        cols.append("dataset")
    from .bayes import MODEL_REVISION

    payload = runs[cols].to_csv(index=False) + json.dumps(
        {**DEFAULT_PRIOR_SETTINGS, "model_revision": MODEL_REVISION}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _cache_path(runs: pd.DataFrame, name: str) -> Path:
    return archopt_home() / "posteriors" / f"{name}-{_cache_key(runs)}.nc"


def default_prior_path() -> Path:
    """Where the default prior is (or will be) cached."""
    return _cache_path(default_prior_runs(), "default-prior")


def _shipped(stem: str) -> LawPosterior | None:
    """The shipped prior when it was fitted on exactly these rows and settings."""
    if not SHIPPED_PRIOR.is_file():
        return None
    try:
        posterior = LawPosterior.load(SHIPPED_PRIOR)
    except PosteriorError as exc:
        warnings.warn(
            f"the shipped default prior {SHIPPED_PRIOR} is unreadable ({exc}); fitting it instead",
            stacklevel=3,
        )
        return None
    return posterior if posterior.info.get("cache_key") == stem else None


def default_prior_is_cached() -> bool:
    """True when :func:`default_prior` returns without fitting (shipped or cached)."""
    path = default_prior_path()
    return path.is_file() or _shipped(path.stem) is not None


def fit_with_default_settings(
    runs: pd.DataFrame, law: str | None = None, *, progress: bool = True
) -> LawPosterior:
    """``law`` (default: the default prior's) fitted by NUTS on ``runs`` with the rest of
    :data:`DEFAULT_PRIOR_SETTINGS`."""
    from .bayes import fit_bayes

    settings = dict(DEFAULT_PRIOR_SETTINGS)
    default_law = settings.pop("law")
    return fit_bayes(runs, law or default_law, progress=progress, **settings)


def cached_prior(
    runs: pd.DataFrame, name: str, *, progress: bool = True, shipped: bool = False
) -> LawPosterior:
    """The default law fitted with the default settings on ``runs``, cached as
    ``$ARCHOPT_HOME/posteriors/{name}-{key}.nc`` (``key`` hashes the rows, the settings and
    the model revision): loaded when cached (a corrupt file is refitted), else taken from the
    shipped prior when ``shipped`` and it matches, else fitted and saved."""
    path = _cache_path(runs, name)
    if path.is_file():
        try:
            return LawPosterior.load(path)
        except PosteriorError:
            path.unlink(missing_ok=True)  # a corrupt cache file is refitted
    if shipped:
        found = _shipped(path.stem)
        if found is not None:
            return found
    posterior = fit_with_default_settings(runs, progress=progress)
    posterior.info["cache_key"] = path.stem
    posterior.info["training_rows"] = int(len(runs))
    posterior.save(path)
    return posterior


def default_prior(progress: bool = True) -> LawPosterior:
    """The default posterior: loaded from the cache, else the shipped one when it matches, else
    fitted once (minutes) and saved under ``$ARCHOPT_HOME/posteriors``
    (:func:`cached_prior`)."""
    return cached_prior(default_prior_runs(), "default-prior", progress=progress, shipped=True)


def campaign_prior(
    law: str = DEFAULT_PRIOR_SETTINGS["law"],
    runs: pd.DataFrame | None = None,
    *,
    progress: bool = True,
) -> LawPosterior:
    """A campaign's loss prior: :func:`default_prior` (shipped or cached) for the default law
    without extra runs; otherwise ``law`` fitted with the default prior's settings on the
    bundled tables plus a user's ``runs`` (:func:`default_prior_runs`: bundled rows collapsed and
    thinned, the user's rows kept), uncached.

    Args:
        law: registered law name or ``"stacked"``.
        runs: a validated run table (a campaign created with ``--runs``), or None.
        progress: show the NUTS progress bar.
    """
    if runs is None and law == DEFAULT_PRIOR_SETTINGS["law"]:
        return default_prior(progress=progress)
    table = bundled_runs() if runs is None else pd.concat([bundled_runs(), runs], ignore_index=True)
    return fit_with_default_settings(default_prior_runs(table), law, progress=progress)


def write_shipped_prior(progress: bool = True) -> Path:
    """Fit the default prior afresh and write it to :data:`SHIPPED_PRIOR` (a release step)."""
    runs = default_prior_runs()
    posterior = fit_with_default_settings(runs, progress=progress)
    posterior.info["cache_key"] = f"default-prior-{_cache_key(runs)}"
    posterior.info["training_rows"] = int(len(runs))
    return posterior.save(SHIPPED_PRIOR)
