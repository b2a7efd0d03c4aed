"""A law posterior on disk: ArviZ InferenceData as netCDF (never pickle).

Law coefficients of the reference source and other scalars are variables of their own;
per-source terms (sample keys ``kind[src]``, :func:`surrogate.observation.split_source_key`)
become variables with a ``source`` dimension (per-source law coefficients as
``<name>_by_source``), NaN where a source has no such term. Settings, diagnostics and ``info``
are JSON attributes. :meth:`~surrogate.posterior.LawPosterior.save` and
:meth:`~surrogate.posterior.LawPosterior.load` use these functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar

import numpy as np

from models.errors import ArchoptError

from .laws import get_law
from .observation import PosteriorError, split_source_key
from .posterior_report import load_arviz

if TYPE_CHECKING:
    from .posterior import LawPosterior

__all__ = ["FORMAT_VERSION", "PER_SOURCE_KINDS", "to_inference_data", "read_posterior"]

#: Written as the ``archopt_format`` attribute.
FORMAT_VERSION = 1
#: Per-source kinds stored under their own name (per-source law coefficients get ``_by_source``).
PER_SOURCE_KINDS = ("scale", "offset", "sigma", "tau", "gp_eta")

T = TypeVar("T")


def to_inference_data(post: LawPosterior, diagnostics: Mapping[str, Any] | None) -> Any:
    """An :class:`arviz.InferenceData` of ``post`` (per-source terms on a ``source``
    dimension); ``diagnostics``: the diagnostics to store (None: not computed yet)."""
    az = load_arviz()

    posterior: dict[str, np.ndarray] = {}
    dims: dict[str, list[str]] = {}
    kinds: list[str] = []
    for key in post.samples:
        parts = split_source_key(key)
        if parts is None:  # law coefficients (reference source) and other scalars
            posterior[key] = post.by_chain(post.samples[key])
        elif parts[0] not in kinds:
            kinds.append(parts[0])
    for kind in kinds:
        # NaN where a source has no such term (the reference's scale/offset).
        stacked = np.stack(
            [
                post.by_chain(post.samples.get(f"{kind}[{s}]", np.full(post.num_samples, np.nan)))
                for s in post.sources
            ],
            axis=-1,
        )
        var = kind if kind in PER_SOURCE_KINDS else f"{kind}_by_source"
        posterior[var] = stacked
        dims[var] = ["source"]
    stats = {
        k: post.by_chain(v.astype(np.int8) if v.dtype == bool else v)
        for k, v in post.sample_stats.items()
    }
    attrs = {
        "archopt_format": FORMAT_VERSION,
        "law": post.law,
        "method": post.method,
        "reference_source": post.reference_source,
        "source_terms": post.source_terms,
        "sources": json.dumps(post.sources),
        "fixed": json.dumps(post.fixed),
        "prior_sd": json.dumps(post.prior_sd),
        "info": json.dumps(post.info, default=str),
        "diagnostics": json.dumps(diagnostics, default=_json_default)
        if diagnostics is not None
        else "",
    }
    return az.from_dict(
        posterior=posterior,
        sample_stats=stats or None,
        coords={"source": post.sources},
        dims=dims,
        attrs=attrs,
    )


def read_posterior(path: str | Path, make: Callable[..., T]) -> T:
    """Read a file written by :func:`to_inference_data` (``to_netcdf``) and build the posterior
    with ``make(law, samples, **fields)`` (the :class:`~surrogate.posterior.LawPosterior`
    constructor); any unreadable file raises PosteriorError."""
    az = load_arviz()

    path = Path(path)
    if not path.is_file():
        raise PosteriorError(f"posterior file not found: {path}")
    try:
        idata = az.from_netcdf(str(path), engine="h5netcdf")
        post = idata.posterior
        attrs = {**dict(post.attrs), **dict(getattr(idata, "attrs", None) or {})}
        if "law" not in attrs or "sources" not in attrs:
            raise PosteriorError(f"{path} is not an archopt posterior (no law/sources)")
        sources = json.loads(attrs["sources"])
        law = get_law(str(attrs["law"]))
        num_chains = int(post.sizes["chain"])
        samples: dict[str, np.ndarray] = {}
        for name in law.param_names:  # required: a KeyError here means a foreign file
            samples[name] = np.asarray(post[name].values, np.float64).reshape(-1)
        for var in post.data_vars:
            var = str(var)
            arr = np.asarray(post[var].values, np.float64)
            if "source" in post[var].dims:  # chain, draw, source
                kind = var[: -len("_by_source")] if var.endswith("_by_source") else var
                for j, src in enumerate(sources):
                    col = arr[..., j].reshape(-1)
                    if not np.all(np.isnan(col)):
                        samples[f"{kind}[{src}]"] = col
            elif var not in samples:
                samples[var] = arr.reshape(-1)
        stats = {}
        if hasattr(idata, "sample_stats"):
            for k in idata.sample_stats.data_vars:
                stats[str(k)] = np.asarray(idata.sample_stats[k].values).reshape(-1)
        diag_text = attrs.get("diagnostics", "")
        return make(
            str(attrs["law"]),
            samples,
            sources=sources,
            reference_source=str(attrs["reference_source"]),
            source_terms=str(attrs.get("source_terms", "affine")),
            method=str(attrs.get("method", "bayes")),
            num_chains=num_chains,
            diagnostics=json.loads(diag_text) if diag_text else None,
            prior_sd=json.loads(attrs.get("prior_sd", "{}")),
            fixed=json.loads(attrs.get("fixed", "[]")),
            info=json.loads(attrs.get("info", "{}")),
            sample_stats=stats,
        )
    except ArchoptError as exc:
        if isinstance(exc, PosteriorError):
            raise
        raise PosteriorError(f"cannot read posterior {path}: {exc}") from None
    except Exception as exc:  # netCDF/HDF5/JSON errors of any kind: the file is unusable
        raise PosteriorError(
            f"cannot read posterior {path}: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        ) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
