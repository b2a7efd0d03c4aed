"""The sample-efficiency benchmark: simulated worlds (:mod:`.worlds`), the runner that drives
every strategy through the same campaign loop (:mod:`.run`) and the report (:mod:`.report`)."""

from .real_data import REAL_DATA_TABLES, real_data_check
from .report import write_report
from .run import (
    HV_TARGET,
    WORLD_KINDS,
    BenchConfig,
    BenchError,
    BenchResult,
    MethodTrace,
    bench_json,
    evaluate_targets,
    paired_vs,
    prior_without,
    run_bench,
    run_campaign,
    summarize_method,
    trainings_to,
)

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
