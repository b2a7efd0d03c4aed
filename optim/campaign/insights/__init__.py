"""What a campaign's own model says about the next training run: relative predictions, why a
proposal was made, hypervolume over trials and the model's checks. The app's "Next run" and
"Model" pages only call these functions.

Everything here reads a loaded :class:`~optim.campaign.campaign.Campaign` (a snapshot) and its
loss model -- the one behind :meth:`Campaign.candidate_loss` (:func:`loss_model`: the law-prior
GP and the prior-free GP weighted by :func:`optim.core.weighting.fit_weighted_model`) -- and
never writes the store.

**Joint draws and the shared offset.** Every shape of a campaign shares one unknown offset
between the law's data and the campaign's runs (and the law's common level): before any run it
is ~0.1 loss, against shape-to-shape differences of hundredths, so each shape's marginal 90% band
is dominated by what all shapes share and ranks nothing. :func:`model_draws` draws the noise-free
expected loss of a *pool* of candidates jointly from the model's posterior (one Cholesky per
mixture member), paired with the problem's joint throughput draws; a difference between two
shapes in one draw carries only what differs between them (:func:`relative_table`).

The pool is every trial's shape, the given extra shapes, and the ``pool_size`` front-eligible
candidates closest (in predicted loss) to the predicted front at their throughput; P(on the
front) is computed among the front-eligible members of the pool (a candidate left out of it is
further from the front than all of those, and counted as never on it).

Objective space, as in acquisition (:mod:`optim.core.acquisition`): ``(-loss, log tokens/s)``,
with the campaign's reference point (:meth:`Problem.reference_point` at the current predicted
means, what ``archopt status`` reports).

Modules: :mod:`.model` (observations, the fitted loss model, joint draws at given shapes),
:mod:`.relative` (draws over a pool, shapes relative to a reference, the learned offset),
:mod:`.hypervolume`, :mod:`.why` (why a trial was proposed), :mod:`.checks` (leave-one-out,
calibration, prior coverage, throughput domain) and :mod:`.knobs` (sensitivity, slices,
parallel coordinates). Callers use ``insights.<name>``: every public name is re-exported here.
"""

from .checks import calibration_verdict, loo_check, prior_coverage, throughput_domain
from .hypervolume import batch_hypervolume, hypervolume, hypervolume_history
from .knobs import KNOBS, correlation_ratio, model_slices, parallel_coordinates, sensitivity
from .model import (
    DEFAULT_DRAWS,
    InsightError,
    Observations,
    joint_loss_draws,
    loss_model,
    observations,
)
from .relative import (
    DEFAULT_POOL,
    ModelDraws,
    default_reference,
    learned_offset,
    model_draws,
    non_dominated,
    reference_index,
    relative_table,
)
from .why import why_proposal

__all__ = [
    "InsightError",
    "KNOBS",
    "Observations",
    "observations",
    "loss_model",
    "joint_loss_draws",
    "ModelDraws",
    "model_draws",
    "relative_table",
    "reference_index",
    "default_reference",
    "non_dominated",
    "learned_offset",
    "why_proposal",
    "hypervolume",
    "batch_hypervolume",
    "hypervolume_history",
    "loo_check",
    "sensitivity",
    "correlation_ratio",
    "model_slices",
    "parallel_coordinates",
    "throughput_domain",
    "calibration_verdict",
    "prior_coverage",
    "DEFAULT_POOL",
    "DEFAULT_DRAWS",
]
