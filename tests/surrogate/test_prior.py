"""The default prior's training rows: bundled rows are thinned, a user's runs never silently."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from surrogate.prior import MAX_ROWS_PER_SOURCE, MIN_NON_EMBEDDING_PARAMS, default_prior_runs
from surrogate.runs import bundled_path, bundled_runs, load_runs, source_keys, table_archs


def _user_runs() -> pd.DataFrame:
    """104 runs of one source (more than MAX_ROWS_PER_SOURCE), 48 of them tiny models."""
    user = load_runs(bundled_path("openlm_runs.csv")).drop(columns=["dataset"])
    user["source"] = "my-lab"
    user["loss"] = user["loss"] + 0.01
    return user


def test_bundled_rows_are_thinned_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = default_prior_runs()
    assert pd.Series(source_keys(rows)).value_counts().max() <= MAX_ROWS_PER_SOURCE


def test_user_runs_are_all_kept_or_dropped_with_a_warning():
    user = _user_runs()
    tiny = sum(a.non_embedding_params < MIN_NON_EMBEDDING_PARAMS for a in table_archs(user))
    assert tiny > 0 and len(user) - tiny > 0 and len(user) > MAX_ROWS_PER_SOURCE
    with pytest.warns(UserWarning, match=f"{tiny} of your {len(user)} runs"):
        rows = default_prior_runs(pd.concat([bundled_runs(), user], ignore_index=True))
    mine = rows[rows["source"] == "my-lab"]
    assert len(mine) == len(user) - tiny  # no thinning, no collapsing of the user's rows
    big = user[[a.non_embedding_params >= MIN_NON_EMBEDDING_PARAMS for a in table_archs(user)]]
    assert sorted(mine["run"]) == sorted(big["run"])
    # The bundled part is what the default prior uses.
    assert len(rows) - len(mine) == len(default_prior_runs())
    big_only = pd.concat([bundled_runs(), big], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(default_prior_runs(big_only)) == len(rows)


def test_campaign_prior_uses_the_default_prior_or_refits_with_its_settings(monkeypatch):
    """The default law without runs is the default prior itself; a user's runs (or another
    law) refit on the bundled rows plus all the user's runs, with the default prior's settings."""
    import surrogate.bayes as bayes
    import surrogate.prior as prior

    default, fitted, calls = object(), object(), []
    monkeypatch.setattr(prior, "default_prior", lambda progress=True: default)

    def fake_fit(runs, law, **kwargs):
        calls.append((runs, law, kwargs))
        return fitted

    monkeypatch.setattr(bayes, "fit_bayes", fake_fit)
    assert prior.campaign_prior(progress=False) is default and not calls

    big = _user_runs()
    big = big[[a.non_embedding_params >= MIN_NON_EMBEDDING_PARAMS for a in table_archs(big)]]
    assert prior.campaign_prior(runs=big, progress=False) is fitted
    runs, law, kwargs = calls[-1]
    settings = dict(prior.DEFAULT_PRIOR_SETTINGS)
    assert law == settings.pop("law") and kwargs == {"progress": False, **settings}
    assert sorted(runs.loc[runs["source"] == "my-lab", "run"]) == sorted(big["run"])
    assert len(runs) == len(default_prior_runs()) + len(big)

    assert prior.campaign_prior("chinchilla", progress=False) is fitted
    runs, law, _ = calls[-1]
    assert law == "chinchilla" and len(runs) == len(default_prior_runs())
