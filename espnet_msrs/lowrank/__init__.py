"""LR-SMS low-rank training: the factorised layer and its rank schedule."""

from espnet_msrs.lowrank.lowrank_linear import LowRankLinear
from espnet_msrs.lowrank.rank_schedule import (
    block_ranks,
    layer_alpha,
    layer_rank,
    parse_alpha,
)

__all__ = ["LowRankLinear", "block_ranks", "layer_alpha", "layer_rank", "parse_alpha"]
