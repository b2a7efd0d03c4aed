"""The shipped default prior: used when its key matches the current rows and settings (no fit),
ignored otherwise (the prior is fitted and cached)."""

from __future__ import annotations

import pytest
from support import small_posterior

import surrogate.bayes as bayes
import surrogate.prior as prior


@pytest.fixture
def shipped(tmp_path, monkeypatch, archopt_home):
    path = tmp_path / "default_prior.nc"
    monkeypatch.setattr(prior, "SHIPPED_PRIOR", path)
    return path


def _no_fit(*args, **kwargs):
    raise AssertionError("the default prior was fitted although a matching one is shipped")


def test_a_matching_shipped_prior_is_used_without_a_fit(shipped, monkeypatch):
    post = small_posterior()
    post.info["cache_key"] = prior.default_prior_path().stem
    post.save(shipped)
    monkeypatch.setattr(bayes, "fit_bayes", _no_fit)
    assert prior.default_prior_is_cached()
    got = prior.default_prior(progress=False)
    assert got.num_samples == post.num_samples and got.law == post.law


def test_a_stale_shipped_prior_is_ignored_and_the_prior_fitted(shipped, monkeypatch):
    stale = small_posterior()
    stale.info["cache_key"] = "default-prior-0000000000000000"
    stale.save(shipped)
    fitted = small_posterior(seed=1)
    calls = []

    def fake_fit(runs, law, **kwargs):
        calls.append(law)
        return fitted

    monkeypatch.setattr(bayes, "fit_bayes", fake_fit)
    assert not prior.default_prior_is_cached()
    assert prior.default_prior(progress=False) is fitted and calls == [
        prior.DEFAULT_PRIOR_SETTINGS["law"]
    ]
    assert prior.default_prior_path().is_file()  # cached for next time


def test_the_shipped_prior_is_a_valid_default_posterior():
    """The shipped file loads and is the default law; when its key no longer matches the
    current rows or settings it is ignored (tested above) and default_prior() fits once.
    Regenerate with surrogate.prior.write_shipped_prior()."""
    from surrogate.posterior import LawPosterior

    if not prior.SHIPPED_PRIOR.is_file():
        pytest.fail(f"{prior.SHIPPED_PRIOR} is missing: run surrogate.prior.write_shipped_prior()")
    shipped = LawPosterior.load(prior.SHIPPED_PRIOR)
    assert shipped.law == prior.DEFAULT_PRIOR_SETTINGS["law"]
    assert str(shipped.info.get("cache_key", "")).startswith("default-prior-")
    if shipped.info["cache_key"] != prior.default_prior_path().stem:
        import warnings

        warnings.warn(
            "the shipped default prior is stale (its key differs): regenerate it "
            "with surrogate.prior.write_shipped_prior()",
            stacklevel=1,
        )
