"""The one hypervolume of the objective space ``(-loss, ln tokens/s)``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optim.core.front import hypervolume, objective_points, pareto_mask


def test_hypervolume_by_hand_and_points_outside_the_reference_count_nothing():
    y = np.array([[1.0, 1.0], [2.0, 0.5], [-1.0, 3.0], [0.5, 0.5]])
    # (1, 1) covers 1 x 1; (2, 0.5) adds 1 x 0.5; (-1, 3) is left of the reference; (0.5, 0.5)
    # is dominated.
    assert hypervolume(y, np.zeros(2)) == pytest.approx(1.5)
    assert pareto_mask(y).tolist() == [True, True, True, False]
    assert hypervolume(y[:0], np.zeros(2)) == 0.0


def test_the_campaign_and_the_benchmark_share_the_objective_space():
    from optim.campaign.insights import hypervolume as campaign_hypervolume

    loss, tps = np.array([2.0, 2.1]), np.array([1000.0, 3000.0])
    ref = (2.2, 500.0)
    expected = 0.2 * math.log(1000 / 500) + 0.1 * math.log(3000 / 1000)
    assert campaign_hypervolume(loss, tps, ref) == pytest.approx(expected)
    assert objective_points(loss, tps)[1] == pytest.approx([-2.1, math.log(3000)])
