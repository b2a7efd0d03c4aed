"""The sample-efficiency benchmark.

* :mod:`.config`: what runs and how big (:class:`BenchConfig`, presets, ``WORLD_KINDS``,
  ``HV_TARGET``), the errors.
* :mod:`.worlds`: a ground-truth world (:class:`~.worlds.World`, :func:`~.worlds.make_world`),
  built from :mod:`.truths` (law draws, real shape effects, the reference shape),
  :mod:`.estimates` (run noise and shape residual measured on the real tables),
  :mod:`.residuals` (the smooth shape residual, the throughput error) and scored by
  :mod:`.hypervolume`.
* :mod:`.setups`: per world kind, archopt's prior, the truth and the candidate problem.
* :mod:`.loop`: one method on one world (the trial loop, :class:`MethodTrace`).
* :mod:`.stats`: summaries over seeds, paired differences, the issue's targets.
* :mod:`.result`: :class:`BenchResult` and the ``--json`` contract (:func:`bench_json`).
* :mod:`.run`: :func:`run_bench`, the runner tying them together.
* :mod:`.report`: the Markdown write-up and PNG plots; :mod:`.real_data`: the
  leave-one-size-out ranking check on the bundled tables.
"""

from .config import HV_TARGET, WORLD_KINDS, BenchConfig, BenchError
from .loop import MethodTrace, run_campaign, trainings_to
from .real_data import REAL_DATA_TABLES, real_data_check
from .report import write_report
from .result import BenchResult, bench_json
from .run import run_bench
from .setups import prior_without
from .stats import evaluate_targets, paired_vs, summarize_method

__all__ = [
    "BenchConfig",
    "BenchError",
    "BenchResult",
    "MethodTrace",
    "bench_json",
    "evaluate_targets",
    "paired_vs",
    "prior_without",
    "real_data_check",
    "run_bench",
    "run_campaign",
    "summarize_method",
    "trainings_to",
    "write_report",
    "HV_TARGET",
    "WORLD_KINDS",
    "REAL_DATA_TABLES",
]
