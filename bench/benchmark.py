#!/usr/bin/env python3
"""Training-step benchmark of dense, LR-SMS, MSRS and LayerScale variants.

Thin wrapper so that the benchmark runs from a checkout with one command::

    python bench/benchmark.py [--device cuda] [--out exp/benchmark/benchmark.json]

It is :mod:`espnet_msrs.bin.benchmark` (``python -m espnet_msrs.bin.benchmark``);
see there, or ``--help``, for the variants, the model and what is measured.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from espnet_msrs.bin.benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
