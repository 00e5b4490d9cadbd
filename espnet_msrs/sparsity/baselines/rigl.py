"""RigL: Rigging the Lottery (Evci, Gale, Menick, Castro, Elsen; ICML 2020).

Algorithm 1 of the paper, per sparse layer l, every ΔT steps while t < T_end::

    f_decay(t) = α/2 · (1 + cos(π·t / T_end))                    (Sec. 3, eq. 1)
    k          = ⌊f_decay(t) · n_l⌋                   n_l = active weights of l
    I_drop     = ArgTopK(−|θ_l|, k)                   among active weights
    I_grow     = ArgTopK_{i ∉ θ_l \\ I_drop}(|∇_{θ_l} L_t|, k)

so the number of active weights of every layer is constant.  The initial
masks are ERK (:mod:`espnet_msrs.sparsity.baselines.erk`).  Grown weights
start at 0 (the paper's choice, "zero initialisation") with zero optimizer
moments; a weight dropped and regrown in the same update keeps its value (as
in the reference implementation, ``reinit_when_same=False``).

Defaults are the paper's: α = 0.3, ΔT = 100, T_end = 0.75 of training.

Differences from the paper, both forced by ESPnet's trainer owning the
optimizer step:

* The paper's update iteration replaces that step's optimizer update; here
  the masks change right before the optimizer step of an update iteration,
  which then proceeds with the gradients masked by the new masks.
* ``|∇L|`` is the dense gradient of that step after ESPnet's gradient
  clipping (clipping rescales all entries alike, so the ranking is the same).
"""

from typing import Dict, Mapping, Optional

import torch

from espnet_msrs.sparsity.baselines.prune_grow import (
    cosine_decay,
    drop_smallest,
    grow_largest,
)
from espnet_msrs.sparsity.baselines.sparse_training_strategy import (
    SparseTrainingStrategy,
    check_fraction,
    check_interval,
)


class RigL(SparseTrainingStrategy):
    """RigL: ERK start, magnitude drop, gradient growth, cosine drop fraction.

    Args:
        sparsity: Target fraction of zeros over the selected weights.
        drop_fraction: α, the initial drop fraction (paper: 0.3).
        update_interval: ΔT in optimizer steps (paper: 100).
        end_fraction: T_end as a fraction of the run's steps (paper: 0.75).
        seed: Seed of the ERK draw.
    """

    name = "rigl"

    def __init__(
        self,
        sparsity: float,
        drop_fraction: float = 0.3,
        update_interval: int = 100,
        end_fraction: float = 0.75,
        seed: int = 0,
    ) -> None:
        super().__init__(sparsity, seed)
        self.drop_fraction = check_fraction(drop_fraction, "drop_fraction")
        self.update_interval = check_interval(update_interval, "update_interval")
        self.end_fraction = check_fraction(end_fraction, "end_fraction")

    def end_step(self, total_steps: int) -> int:
        """T_end in steps."""
        return int(self.end_fraction * total_steps)

    def drop_fraction_at(self, step: int, total_steps: int) -> float:
        """f_decay(t) = α/2·(1 + cos(π t / T_end))."""
        return cosine_decay(step, self.end_step(total_steps), self.drop_fraction)

    def is_update_step(self, step: int, total_steps: int) -> bool:
        return step % self.update_interval == 0 and step < self.end_step(total_steps)

    def wants_dense_grad(self, step: int, total_steps: int) -> bool:
        return self.is_update_step(step, total_steps)

    def update(
        self,
        step: int,
        total_steps: int,
        weights: Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        grads: Optional[Mapping[str, torch.Tensor]] = None,
    ) -> Dict[str, torch.Tensor]:
        if grads is None:
            raise ValueError("RigL.update needs the dense gradients (grads=None)")
        fraction = self.drop_fraction_at(step, total_steps)
        new = {}
        for name, mask in masks.items():
            active = int(mask.sum())
            if active == mask.numel():  # ERK kept this layer dense
                new[name] = mask.clone()
                continue
            k = int(active * fraction)
            kept = drop_smallest(weights[name], mask, k)
            new[name] = grow_largest(grads[name].abs(), kept, k)
        return new

    def __repr__(self) -> str:
        return (
            f"RigL(sparsity={self.sparsity}, drop_fraction={self.drop_fraction}, "
            f"update_interval={self.update_interval}, end_fraction={self.end_fraction})"
        )
