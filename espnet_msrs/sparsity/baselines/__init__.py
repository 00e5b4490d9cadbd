"""Sparse-training baselines of MSRS Table 4: ERK, SET, RigL, GMP, CHASE.

Policy only (which weights are active, and when and how that changes); the
masks themselves, exact zeros in weights and optimizer moments, DDP and
checkpoints belong to the one mask mechanism of :mod:`espnet_msrs.sparsity`.

========  =====================================================  ==========
method    class                                                   start
========  =====================================================  ==========
``set``   :class:`SET` (Mocanu et al. 2018)                       ERK
``rigl``  :class:`RigL` (Evci et al. 2020)                        ERK
``gmp``   :class:`GMP` (Zhu & Gupta 2017)                         dense
``chase`` :class:`CHASE` (Yin et al. 2023)                        ERK
========  =====================================================  ==========
"""

import inspect
from typing import Any, Dict, Type

from espnet_msrs.sparsity.baselines.chase import CHASE
from espnet_msrs.sparsity.baselines.erk import (
    erk_active_counts,
    erk_densities,
    random_masks,
)
from espnet_msrs.sparsity.baselines.gmp import GMP
from espnet_msrs.sparsity.baselines.rigl import RigL
from espnet_msrs.sparsity.baselines.sparse_evolutionary_training import SET
from espnet_msrs.sparsity.baselines.sparse_training_strategy import (
    SparseTrainingStrategy,
)

#: ``method`` name -> strategy class.
STRATEGIES: Dict[str, Type[SparseTrainingStrategy]] = {
    cls.name: cls for cls in (SET, RigL, GMP, CHASE)
}


def build_strategy(method: str, **conf: Any) -> SparseTrainingStrategy:
    """The strategy ``method`` built from its keyword arguments.

    Raises:
        ValueError: Unknown method or option (the message lists the allowed
            ones), or a bad value.
    """
    if method not in STRATEGIES:
        raise ValueError(
            f"sparse method {method!r} is not one of {sorted(STRATEGIES)}"
        )
    cls = STRATEGIES[method]
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(conf) - set(allowed))
    if unknown:
        raise ValueError(
            f"sparse method {method!r}: unknown option(s) {unknown}; allowed: {allowed}"
        )
    if "sparsity" not in conf:
        raise ValueError(f"sparse method {method!r} needs 'sparsity' (e.g. 0.4)")
    return cls(**conf)


__all__ = [
    "CHASE",
    "GMP",
    "RigL",
    "SET",
    "STRATEGIES",
    "SparseTrainingStrategy",
    "build_strategy",
    "erk_active_counts",
    "erk_densities",
    "random_masks",
]
