"""Run the full sample-efficiency benchmark and write results/bench/ (report.md, PNGs, JSON).

    python benchmarks/sample_efficiency.py [--quick] [--seeds N] [--out DIR]

A thin wrapper over ``archopt bench`` (:mod:`optim.bench`); all logic lives there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optim.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
