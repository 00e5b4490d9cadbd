"""Base class of the sparse-training strategies compared with MSRS (Table 4).

A strategy is *policy only* (STYLE.md, "Mechanism apart from policy"): it
says which weights are active at the start and how the binary masks change
at a training step.  It never touches parameters, gradients or optimizer
state itself; the mask mechanism that owns the masks applies what it returns
(exact zeros in the weights and optimizer moments of pruned entries; entries
that become active start at weight 0 with zero moments, because inactive
entries are exactly 0 with zero moments).

Conventions:

* ``step`` is the 1-based index of the optimizer step being taken, and
  ``total_steps`` the number of optimizer steps of the whole run (both
  globally, the same on every DDP rank).
* :meth:`update` is called with the weights and the dense, DDP-all-reduced,
  unscaled and clipped gradients of that step, before the optimizer steps,
  and only at steps where :meth:`is_update_step` is True.  At those steps
  (and only those) :meth:`wants_dense_grad` may ask the mechanism not to mask
  the gradients, so that growth criteria see ``∂L/∂θ`` of inactive entries.
* Randomness comes from the strategy's own CPU ``torch.Generator``, seeded in
  the constructor and saved by :meth:`state_dict`, so every rank draws the
  same masks and a resumed run continues the same random sequence.
"""

from typing import Any, Dict, Mapping, Optional

import torch

from espnet_msrs.sparsity.baselines.erk import erk_active_counts, random_masks

#: Name of a masked weight -> its tensor (weights, masks or gradients).
TensorMap = Mapping[str, torch.Tensor]
#: Name of a masked weight -> its new boolean mask.
Masks = Dict[str, torch.Tensor]


class SparseTrainingStrategy:
    """Base class: ERK-initialised masks (Evci et al. 2020), no updates.

    Subclasses override :meth:`is_update_step` and :meth:`update` (and
    :meth:`initial_masks` when they do not start from ERK).

    Args:
        sparsity: Target fraction of zeros over the selected weights, [0, 1).
        seed: Seed of the strategy's CPU generator.
    """

    #: Name used in configs (``sparse_conf.method``).
    name = "erk"
    #: Attributes that ``repr`` shows (the log line of a run names its strategy).
    repr_fields = ("sparsity", "seed")

    def __init__(self, sparsity: float, seed: int = 0) -> None:
        sparsity = float(sparsity)
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity={sparsity} must be in [0, 1)")
        self.sparsity = sparsity
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    # ----------------------------------------------------------------- start
    def initial_masks(
        self, weights: TensorMap
    ) -> Dict[str, torch.Tensor]:
        """ERK masks at the target sparsity, drawn uniformly per layer.

        Args:
            weights: Name -> weight tensor of every selected weight.

        Returns:
            Name -> bool mask on the weight's device.
        """
        shapes = {name: tuple(w.shape) for name, w in weights.items()}
        counts = erk_active_counts(shapes, self.sparsity)
        masks = random_masks(shapes, counts, self.generator)
        return {name: m.to(weights[name].device) for name, m in masks.items()}

    # --------------------------------------------------------------- updates
    def is_update_step(self, step: int, total_steps: int) -> bool:
        """Whether :meth:`update` runs at ``step``."""
        return False

    def wants_dense_grad(self, step: int, total_steps: int) -> bool:
        """Whether the gradients of inactive entries are needed at ``step``."""
        return False

    def update(self, step: int, total_steps: int, weights: TensorMap, masks: TensorMap,
               grads: Optional[TensorMap] = None) -> Masks:
        """New masks at ``step`` (called only when :meth:`is_update_step`).

        Args:
            step: 1-based optimizer step.
            total_steps: Optimizer steps of the whole run.
            weights: Name -> weight (inactive entries are exactly 0).
            masks: Name -> current bool mask.
            grads: Name -> dense gradient (when :meth:`wants_dense_grad`).

        Returns:
            Name -> new bool mask (every name of ``masks``).
        """
        return {name: mask.clone() for name, mask in masks.items()}

    def final_masks(
        self, weights: TensorMap, masks: TensorMap
    ) -> Dict[str, torch.Tensor]:
        """Masks to fold into the final model (default: the current ones)."""
        return {name: mask.clone() for name, mask in masks.items()}

    # ----------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        """What a resumed run needs: the generator state (+ subclass state)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.repr_fields)
        return f"{type(self).__name__}({fields})"


def check_interval(value: int, key: str) -> int:
    value = int(value)
    if value < 1:
        raise ValueError(f"{key}={value} must be >= 1 (steps)")
    return value


def check_fraction(value: float, key: str, low: float = 0.0, high: float = 1.0) -> float:
    value = float(value)
    if not low <= value <= high:
        raise ValueError(f"{key}={value} must be in [{low}, {high}]")
    return value
