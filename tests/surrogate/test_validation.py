"""Validation contract: size groups, splits (dev never sees the test rows), metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from surrogate.groups import size_groups
from surrogate.runs import bundled_path, load_runs, table_archs
from surrogate.validation import (
    SPLIT_KINDS,
    cell_labels,
    crps_draws,
    crps_normal,
    interval_metrics,
    point_metrics,
    pool,
    shape_ids,
    shape_metrics,
    table_size_groups,
    table_splits,
)


def test_size_groups_split_at_gaps_and_cap_the_span():
    sizes = np.array([100.0, 110.0, 120.0, 200.0, 100.0, 300.0])
    keys = np.array(["a", "a", "a", "a", "b", "b"])
    assert size_groups(sizes, keys).tolist() == [0, 0, 0, 1, 2, 3]
    assert size_groups(sizes).tolist() == [0, 0, 0, 1, 0, 2]
    chain = 100.0 * 1.14 ** np.arange(6)  # gaps of 14%: one chain, cut where it spans > 1.5x
    assert size_groups(chain).tolist() == [0, 0, 0, 0, 1, 1]


def test_bundled_size_groups_keep_nominal_sizes_together():
    morph = load_runs(bundled_path("morph_runs.csv"))
    g = table_size_groups(morph)
    one_b = morph["run"].str.startswith("1B").to_numpy()
    assert len(set(g[one_b])) == 1 and not np.isin(g[~one_b], g[one_b]).any()
    gem = load_runs(bundled_path("gemstones_runs.csv"))
    g = table_size_groups(gem)
    largest = gem["run"].str.startswith(("1024x28", "768x45", "1280x15", "1792x7")).to_numpy()
    assert len(set(g[largest])) == 1 and not np.isin(g[~largest], g[largest]).any()


@pytest.mark.parametrize("table", ["morph_runs.csv", "gemstones_runs.csv", "openlm_runs.csv"])
def test_splits_are_disjoint_and_dev_never_sees_the_test_rows(table):
    runs = load_runs(bundled_path(table))
    splits = table_splits(runs, table)
    kinds = {s.kind: s for s in splits}
    assert set(SPLIT_KINDS) <= set(kinds)
    test_rows = np.zeros(len(runs), bool)
    for s in splits:
        assert not np.any(s.train & s.held_out) and s.held_out.any() and s.train.any()
        if s.role == "test":
            test_rows |= s.held_out
    for s in splits:
        if s.role == "dev":
            assert not np.any((s.train | s.held_out) & test_rows), s.kind
    # The test split 'largest' trains on everything else of the table (per source key).
    assert np.array_equal(kinds["largest"].train, ~kinds["largest"].held_out)
    sizes = np.array([a.non_embedding_params for a in table_archs(runs)])
    for s in splits:
        if s.role in ("dev", "test"):  # extrapolation: every held-out size is larger
            assert sizes[s.held_out].min() > sizes[s.train].max(), s.kind
    loso = [s for s in splits if s.role == "transfer"]
    assert (len(loso) == 3) == (table == "openlm_runs.csv")


def test_cells_group_shapes_of_one_size_and_token_budget():
    runs = load_runs(bundled_path("gemstones_runs.csv"))
    cells = cell_labels(runs)
    shapes = shape_ids(runs)
    frame = pd.DataFrame({"c": cells, "s": shapes, "t": runs["tokens"]})
    assert (frame.groupby("c")["t"].nunique() == 1).all()
    # The two largest gemstones groups (63-79M, 337-440M) hold four shapes at each of ten
    # token budgets.
    per_cell = frame.groupby("c")["s"].nunique()
    assert (per_cell == 4).sum() == 20 and per_cell.max() == 4


def test_crps_of_draws_matches_the_normal_closed_form():
    from scipy.special import ndtri

    rng = np.random.default_rng(0)
    mean, sd = np.array([2.0, 3.0, 2.5]), np.array([0.05, 0.1, 0.02])
    y = np.array([2.03, 2.8, 2.5])
    z = ndtri((np.arange(4000) + 0.5) / 4000)[:, None]
    draws = mean + sd * rng.permutation(z)
    np.testing.assert_allclose(crps_draws(draws, y), crps_normal(mean, sd, y), rtol=0.01)
    # A sharper correct forecast scores better; a point forecast scores its absolute error.
    assert crps_normal(2.0, 0.01, 2.0) < crps_normal(2.0, 0.1, 2.0)
    np.testing.assert_allclose(crps_draws(np.full((10, 1), 2.0), np.array([2.3])), 0.3)


def test_interval_and_point_metrics():
    y = np.linspace(2.0, 3.0, 200)
    inside = interval_metrics(y, mean=y, sd=np.full(200, 0.1))
    assert inside["cov50"] == 1.0 and inside["cov90"] == 1.0
    rng = np.random.default_rng(1)
    mean = y + 0.1 * rng.standard_normal(200)
    cal = interval_metrics(y, mean=mean, sd=np.full(200, 0.1))
    assert 0.4 <= cal["cov50"] <= 0.6 and 0.84 <= cal["cov90"] <= 0.96
    pm = point_metrics(np.array([2.0, 4.0]), np.array([2.2, 3.6]), np.array([0, 1]))
    assert pm["mape"] == pytest.approx(10.0) and pm["bias"] == pytest.approx(0.0)
    assert [b["bias"] for b in pm["bias_by_group"]] == pytest.approx([10.0, -10.0])


def test_shape_metrics_against_chance_and_ties():
    y = np.array([3.0, 2.9, 2.8, 3.1, 3.0])
    cells = np.array([0, 0, 0, 1, 1])
    shapes = np.arange(5)
    perfect = shape_metrics(y, y, cells, shapes)
    assert perfect["best_first"] == 1.0 and perfect["spearman"] == 1.0
    assert perfect["chance_best_first"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert perfect["n_rank_cells"] == 2 and perfect["n_spearman_cells"] == 1
    inverse = shape_metrics(y, -y, cells, shapes)
    assert inverse["best_first"] == 0.0 and inverse["spearman"] == -1.0
    flat = shape_metrics(y, np.full(5, 2.0), cells, shapes)  # a tie holding the best: 1/k
    assert flat["best_first"] == pytest.approx((1 / 3 + 1 / 2) / 2) and flat["spearman"] == 0.0
    pooled = pool(
        [
            {**point_metrics(y, y, cells), **interval_metrics(y, mean=y, sd=np.ones(5)), **perfect},
            {**point_metrics(y, y, cells), **interval_metrics(y, mean=y, sd=np.ones(5)), **inverse},
        ]
    )
    assert pooled["best_first"] == 0.5 and pooled["spearman"] == 0.0 and pooled["n"] == 10
