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

from typing import Dict, Mapping, Optional

import torch

from espnet_msrs.sparsity.baselines.prune_grow import drop_smallest, grow_random
from espnet_msrs.sparsity.baselines.sparse_training_strategy import (
    SparseTrainingStrategy,
    check_fraction,
    check_interval,
)


class SET(SparseTrainingStrategy):
    """SET: ERK start, magnitude drop, random regrowth at a constant fraction ζ.

    Args:
        sparsity: Target fraction of zeros over the selected weights.
        drop_fraction: ζ (paper: 0.3).
        update_interval: ΔT in optimizer steps.
        end_fraction: Last update before this fraction of the run's steps.
        seed: Seed of the ERK draw and of the regrowth.
    """

    name = "set"

    def __init__(
        self,
        sparsity: float,
        drop_fraction: float = 0.3,
        update_interval: int = 100,
        end_fraction: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(sparsity, seed)
        self.drop_fraction = check_fraction(drop_fraction, "drop_fraction")
        self.update_interval = check_interval(update_interval, "update_interval")
        self.end_fraction = check_fraction(end_fraction, "end_fraction")

    def is_update_step(self, step: int, total_steps: int) -> bool:
        return (
            step % self.update_interval == 0
            and step < int(self.end_fraction * total_steps)
        )

    def update(
        self,
        step: int,
        total_steps: int,
        weights: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        grads: Optional[Mapping[str, torch.Tensor]] = None,
    ) -> Dict[str, torch.Tensor]:
        new = {}
        for name, mask in masks.items():
            active = int(mask.sum())
            inactive = mask.numel() - active
            k = min(int(active * self.drop_fraction), inactive)
            kept = drop_smallest(weights[name], mask, k)
            new[name] = grow_random(kept, k, self.generator, allowed=~mask)
        return new

    def __repr__(self) -> str:
        return (
            f"SET(sparsity={self.sparsity}, drop_fraction={self.drop_fraction}, "
            f"update_interval={self.update_interval}, end_fraction={self.end_fraction})"
        )
