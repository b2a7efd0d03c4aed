"""Run the full sample-efficiency benchmark and write results/bench/ (report.md, PNGs, JSON).

    python benchmarks/sample_efficiency.py [--quick] [--seeds N] [--out DIR]

A thin wrapper over ``archopt bench`` (:mod:`optim.bench`); all logic lives there. It imports
the installed package (``pip install -e .``, as ``make`` does).
"""

from __future__ import annotations

import sys

from optim.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
