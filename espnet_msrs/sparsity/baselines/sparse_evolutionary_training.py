"""SET: Sparse Evolutionary Training (Mocanu et al., Nature Communications 2018).

Algorithm 1 of the paper (per sparse layer, after each training period):
remove the fraction ζ of the active weights closest to zero, then add as
many new weights at random positions, so the number of active weights of
every layer stays constant.  Here, every ΔT steps, per layer l::

    k      = ⌊ζ · n_l⌋                      n_l = active weights of l
    I_drop = ArgTopK(−|θ_l|, k)             among active weights
    I_grow = k positions drawn uniformly among the weights that were
             inactive before this update

Choices (the paper leaves them open or states them for MLPs):

* Drop by magnitude ``|θ|`` (the paper removes the smallest positive and the
  largest negative weights, i.e. the ζ closest to zero on each side; the
  magnitude criterion is how RigL's authors re-implemented SET).
* Regrowth never picks a weight dropped in the same update (SET adds *new*
  connections); grown weights start at 0 with zero optimizer moments.
* The start is ERK (SET's Erdős–Rényi extended to kernels, as RigL and MSRS
  Table 4 use); layers that ERK keeps dense are not updated.
* ζ = 0.3 (the paper's value), constant; ΔT = 100 steps (the paper updates
  once per epoch of its small data sets; RigL's re-implementation uses 100);
  updates run until ``end_fraction`` of training (SET: to the end).
"""

from typing import Optional

import torch

from espnet_msrs.sparsity.baselines.layerwise_drop_and_grow import (
    LayerwiseDropAndGrow,
)
from espnet_msrs.sparsity.baselines.prune_grow import grow_random


class SET(LayerwiseDropAndGrow):
    """SET: ERK start, magnitude drop, random regrowth at a constant fraction ζ.

    Args:
        sparsity: Target fraction of zeros over the selected weights.
        drop_fraction: ζ (paper: 0.3).
        update_interval: ΔT in optimizer steps.
        end_fraction: Last update before this fraction of the run's steps
            (default 1.0: to the end).
        seed: Seed of the ERK draw and of the regrowth.
    """

    name = "set"
    default_end_fraction = 1.0

    def drop_count(self, mask: torch.Tensor, fraction: float) -> int:
        """At most the layer's inactive count (regrowth is among those)."""
        return min(super().drop_count(mask, fraction), mask.numel() - int(mask.sum()))

    def grow(
        self, kept: torch.Tensor, k: int, mask: torch.Tensor, grad: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """k entries drawn uniformly among those inactive before the update
        (a layer draws even when k = 0, so the random sequence is per layer)."""
        return grow_random(kept, k, self.generator, allowed=~mask)
