"""Per-layer drop-and-grow at a constant number of active weights (SET, RigL).

Every ΔT steps while t < T_end, per sparse layer l::

    k      = ⌊f(t) · n_l⌋                   n_l = active weights of l
    I_drop = ArgTopK(−|θ_l|, k)             among active weights
    I_grow = k positions chosen by the method (:meth:`grow`)

so the number of active weights of every layer is constant.  The methods
differ in the drop fraction f(t) (:meth:`drop_fraction_at`), in how many
weights a layer may drop (:meth:`drop_count`) and in where the k weights
grow (:meth:`grow`).
"""

from typing import Optional

import torch

from espnet_msrs.sparsity.baselines.prune_grow import drop_smallest
from espnet_msrs.sparsity.baselines.sparse_training_strategy import (
    Masks, SparseTrainingStrategy, TensorMap, check_fraction, check_interval)


class LayerwiseDropAndGrow(SparseTrainingStrategy):
    """ERK start; every ΔT steps each layer drops its k smallest-magnitude
    active weights and grows k others.

    Args:
        sparsity: Target fraction of zeros over the selected weights.
        drop_fraction: The drop fraction (SET's ζ, RigL's α).
        update_interval: ΔT in optimizer steps.
        end_fraction: Last update before this fraction of the run's steps
            (T_end); None: the method's :attr:`default_end_fraction`.
        seed: Seed of the strategy's generator.
    """

    #: T_end as a fraction of the run's steps when ``end_fraction`` is None.
    default_end_fraction = 1.0
    repr_fields = ("sparsity", "drop_fraction", "update_interval", "end_fraction")

    def __init__(
        self,
        sparsity: float,
        drop_fraction: float = 0.3,
        update_interval: int = 100,
        end_fraction: Optional[float] = None,
        seed: int = 0,
    ) -> None:
        super().__init__(sparsity, seed)
        if end_fraction is None:
            end_fraction = self.default_end_fraction
        self.drop_fraction = check_fraction(drop_fraction, "drop_fraction")
        self.update_interval = check_interval(update_interval, "update_interval")
        self.end_fraction = check_fraction(end_fraction, "end_fraction")

    def end_step(self, total_steps: int) -> int:
        """T_end in steps."""
        return int(self.end_fraction * total_steps)

    def drop_fraction_at(self, step: int, total_steps: int) -> float:
        """f(t); default: the constant ``drop_fraction``."""
        return self.drop_fraction

    def is_update_step(self, step: int, total_steps: int) -> bool:
        return step % self.update_interval == 0 and step < self.end_step(total_steps)

    def drop_count(self, mask: torch.Tensor, fraction: float) -> int:
        """k of a layer with ``mask``: ``⌊fraction · active⌋``."""
        return int(int(mask.sum()) * fraction)

    def grow(
        self, kept: torch.Tensor, k: int, mask: torch.Tensor, grad: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """A layer's new mask: ``kept`` (its ``mask`` less the k dropped) plus
        k grown entries; ``grad`` is its dense gradient (None without one)."""
        raise NotImplementedError

    def update(self, step: int, total_steps: int, weights: TensorMap, masks: TensorMap,
               grads: Optional[TensorMap] = None) -> Masks:
        fraction = self.drop_fraction_at(step, total_steps)
        new = {}
        for name, mask in masks.items():
            k = self.drop_count(mask, fraction)
            kept = drop_smallest(weights[name], mask, k)
            grad = None if grads is None else grads[name]
            new[name] = self.grow(kept, k, mask, grad)
        return new
