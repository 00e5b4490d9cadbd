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

from typing import Optional

import torch

from espnet_msrs.sparsity.baselines.layerwise_drop_and_grow import (
    LayerwiseDropAndGrow,
)
from espnet_msrs.sparsity.baselines.prune_grow import cosine_decay, grow_largest


class RigL(LayerwiseDropAndGrow):
    """RigL: ERK start, magnitude drop, gradient growth, cosine drop fraction.

    Args:
        sparsity: Target fraction of zeros over the selected weights.
        drop_fraction: α, the initial drop fraction (paper: 0.3).
        update_interval: ΔT in optimizer steps (paper: 100).
        end_fraction: T_end as a fraction of the run's steps (default: the
            paper's 0.75).
        seed: Seed of the ERK draw.
    """

    name = "rigl"
    default_end_fraction = 0.75

    def drop_fraction_at(self, step: int, total_steps: int) -> float:
        """f_decay(t) = α/2·(1 + cos(π t / T_end))."""
        return cosine_decay(step, self.end_step(total_steps), self.drop_fraction)

    def wants_dense_grad(self, step: int, total_steps: int) -> bool:
        return self.is_update_step(step, total_steps)

    def drop_count(self, mask: torch.Tensor, fraction: float) -> int:
        if int(mask.sum()) == mask.numel():  # ERK kept this layer dense
            return 0
        return super().drop_count(mask, fraction)

    def grow(
        self, kept: torch.Tensor, k: int, mask: torch.Tensor, grad: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """The k inactive entries of ``kept`` with the largest ``|∇L|``."""
        if grad is None:
            raise ValueError("RigL.update needs the dense gradients (grads=None)")
        return grow_largest(grad.abs(), kept, k)
