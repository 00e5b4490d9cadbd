"""LR-SMS low-rank training: the factorised layer and its rank schedule."""

from espnet_msrs.lowrank.lowrank_linear import (
    LOWRANK_INITS,
    LowRankLinear,
    espnet_init,
)
from espnet_msrs.lowrank.rank_schedule import (
    block_ranks,
    layer_alpha,
    layer_rank,
    parse_alpha,
)

__all__ = [
    "LOWRANK_INITS",
    "LowRankLinear",
    "block_ranks",
    "espnet_init",
    "layer_alpha",
    "layer_rank",
    "parse_alpha",
]
