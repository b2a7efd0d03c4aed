"""Pure plotly figure builders for the app: tables in, ``go.Figure`` out, one module per page.

No Streamlit here and no model evaluation: every function takes the numbers the Python API
produced (DataFrames with the field names of ``Campaign.trials()`` / ``LawPosterior.predict``)
and only draws them, so each is testable on its own (``tests/optim/ui/test_figures.py``).

* :mod:`.style`: colours, prediction column names, error-bar and hover helpers (shared).
* :mod:`.pareto`: the Pareto chart, point selection and per-trial bands.
* :mod:`.scaling_law`: posterior coefficients, loss bands, calibration, law comparison.
* :mod:`.throughput`: measured-vs-model parity, residuals, hardware bars.
* :mod:`.next_run`: shapes relative to a reference, hypervolume over trials.
* :mod:`.model`: leave-one-out check, parallel coordinates, sensitivity, slices.

Point identity for selection: every marker of the Pareto chart carries ``customdata = [key]``
where ``key`` is the row's ``key`` column (``"trial 3"``, ``"candidate 17"``, ``"ref Llama-3.2-1B"``);
:func:`selected_keys` reads them back from a Streamlit selection event.

The pages call the builders as ``figures.<name>``; every builder is re-exported here.
"""

from .model import loo_figure, parallel_figure, sensitivity_figure, slice_figure
from .next_run import hypervolume_figure, relative_figure
from .pareto import pareto_figure, selected_keys, trial_bands_figure
from .scaling_law import band_figure, calibration_figure, law_comparison_figure, posterior_figure
from .style import COLORS
from .throughput import hardware_figure, residual_figure, throughput_parity_figure

__all__ = [
    "COLORS",
    "pareto_figure",
    "trial_bands_figure",
    "selected_keys",
    "posterior_figure",
    "band_figure",
    "calibration_figure",
    "law_comparison_figure",
    "throughput_parity_figure",
    "residual_figure",
    "hardware_figure",
    "relative_figure",
    "hypervolume_figure",
    "loo_figure",
    "parallel_figure",
    "sensitivity_figure",
    "slice_figure",
]
