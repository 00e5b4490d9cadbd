"""GMP: gradual magnitude pruning (Zhu & Gupta, "To prune, or not to prune", 2017).

Eq. (1) of the paper: starting dense at step t0, every Δt steps the
weights are pruned by magnitude to the sparsity::

    s_t = s_f + (s_i − s_f) · (1 − (t − t0)/(n·Δt))³,   t ∈ {t0, t0+Δt, …, t0+n·Δt}

Pruned weights never come back (their mask stays 0, their weight and
optimizer moments are exactly 0).  The paper prunes every layer to ``s_t``
(``scope: layer``, the default); ``scope: global`` ranks all selected
weights together (one magnitude threshold for the whole model, the variant
of the sparse-training code base of CHASE's and MSRS's authors).

Defaults: s_i = 0, Δt = 100 steps (the paper: "a pruning frequency of 100 to
1000 steps had a negligible impact"), t0 = 0 and t0 + n·Δt = 0.75 of
training (the paper prunes early and lets the network recover with the rest
of the schedule; it tunes t0, n per model).
"""

from typing import Optional

import torch

from espnet_msrs.sparsity.baselines.prune_grow import (
    count_active, cubic_sparsity, global_keep_largest)
from espnet_msrs.sparsity.baselines.sparse_training_strategy import (
    Masks, SparseTrainingStrategy, TensorMap, check_fraction, check_interval)

SCOPES = ("layer", "global")


class GMP(SparseTrainingStrategy):
    """Gradual magnitude pruning from dense to ``sparsity`` on the cubic schedule.

    Args:
        sparsity: s_f, the final fraction of zeros over the selected weights.
        initial_sparsity: s_i.
        update_interval: Δt in optimizer steps.
        start_fraction: t0 as a fraction of the run's steps.
        end_fraction: t0 + n·Δt as a fraction of the run's steps.
        scope: ``layer`` (each layer to s_t, the paper) or ``global``.
        seed: Unused (GMP draws nothing); kept for a uniform interface.
    """

    name = "gmp"
    repr_fields = (
        "sparsity", "initial_sparsity", "update_interval", "start_fraction",
        "end_fraction", "scope",
    )

    def __init__(
        self,
        sparsity: float,
        initial_sparsity: float = 0.0,
        update_interval: int = 100,
        start_fraction: float = 0.0,
        end_fraction: float = 0.75,
        scope: str = "layer",
        seed: int = 0,
    ) -> None:
        super().__init__(sparsity, seed)
        self.initial_sparsity = check_fraction(
            initial_sparsity, "initial_sparsity", 0.0, self.sparsity
        )
        self.update_interval = check_interval(update_interval, "update_interval")
        self.start_fraction = check_fraction(start_fraction, "start_fraction")
        self.end_fraction = check_fraction(
            end_fraction, "end_fraction", self.start_fraction, 1.0
        )
        if scope not in SCOPES:
            raise ValueError(f"scope={scope!r} must be one of {list(SCOPES)}")
        self.scope = scope

    def initial_masks(
        self, weights: TensorMap
    ) -> Masks:
        """All weights active (GMP starts from the dense model)."""
        return {
            name: torch.ones(w.shape, dtype=torch.bool, device=w.device)
            for name, w in weights.items()
        }

    def schedule(self, total_steps: int):
        """(t0, t0 + n·Δt) in steps; n ≥ 1."""
        t0 = int(self.start_fraction * total_steps)
        n = max(1, (int(self.end_fraction * total_steps) - t0) // self.update_interval)
        return t0, t0 + n * self.update_interval

    def sparsity_at(self, step: int, total_steps: int) -> float:
        """s_t of eq. (1)."""
        t0, t_end = self.schedule(total_steps)
        return cubic_sparsity(step, t0, t_end, self.initial_sparsity, self.sparsity)

    def is_update_step(self, step: int, total_steps: int) -> bool:
        t0, t_end = self.schedule(total_steps)
        return t0 <= step <= t_end and (step - t0) % self.update_interval == 0

    def update(self, step: int, total_steps: int, weights: TensorMap, masks: TensorMap,
               grads: Optional[TensorMap] = None) -> Masks:
        density = 1.0 - self.sparsity_at(step, total_steps)
        scores = {name: weights[name].detach().abs() for name in masks}
        if self.scope == "global":
            total = sum(m.numel() for m in masks.values())
            keep = min(round(density * total), count_active(masks))
            return global_keep_largest(scores, masks, keep)
        new = {}
        for name, mask in masks.items():
            keep = min(round(density * mask.numel()), int(mask.sum()))
            new.update(global_keep_largest({name: scores[name]}, {name: mask}, keep))
        return new
