"""MSRS retraining with the searched mask (Algorithm 1, second loop).

:class:`FixedMasks` is the mask rule of ``msrs_conf.mode: sparse`` and
``grad_masked``: the masks m* of the mask search's ``mask.pth``
(``msrs_conf.mask_file``), never updated.  It follows the strategy protocol
of :class:`espnet_msrs.sparsity.masked_training.MaskedTraining`, like the
baselines of :mod:`espnet_msrs.sparsity.baselines`:

* ``sparse``: only weights with m* = 1 ever change (exact zeros, weight
  decay and optimizer state included), from ``--init_param <search>/init.pth``;
* ``grad_masked`` (MSRS Table 4, "dense with MSRS masks"): the mask
  multiplies the gradients of a dense model trained from random init.
"""

from typing import Any, Dict, Mapping, Optional

import torch
from typeguard import typechecked

from espnet_msrs.sparsity.mask_file import load_masks


class FixedMasks:
    """The masks of a mask file, for every step of training.

    Args:
        mask_file: ``mask.pth`` written by the mask search.
    """

    #: The masks never change: no schedule over the run's steps.
    needs_total_steps = False

    @typechecked
    def __init__(self, mask_file: str):
        self.mask_file = mask_file
        try:
            self.masks = load_masks(mask_file)
        except ValueError as e:
            raise ValueError(f"msrs_conf.mask_file: {e}") from e

    def initial_masks(
        self, weights: Mapping[str, torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        """The file's masks; each must name a selected weight of its shape.

        Raises:
            ValueError: A mask names no selected weight (the message says the
                file) or has another shape.
        """
        unknown = sorted(set(self.masks) - set(weights))
        if unknown:
            raise ValueError(
                f"msrs_conf.mask_file={self.mask_file}: mask(s) {unknown[:10]} "
                "name no weight selected by msrs_conf.include/exclude in this "
                f"model; selected weights include {sorted(weights)[:10]}"
            )
        for name, mask in self.masks.items():
            if tuple(mask.shape) != tuple(weights[name].shape):
                raise ValueError(
                    f"msrs_conf.mask_file={self.mask_file}: mask {name!r} has shape "
                    f"{tuple(mask.shape)}, the weight has {tuple(weights[name].shape)}"
                )
        return {name: mask.clone() for name, mask in self.masks.items()}

    def is_update_step(self, step: int, total_steps: int) -> bool:
        return False

    def wants_dense_grad(self, step: int, total_steps: int) -> bool:
        return False

    def update(self, step: int, total_steps: int, weights, masks,
               grads: Optional[Mapping[str, torch.Tensor]] = None):
        raise AssertionError("FixedMasks never updates (is_update_step is False)")

    def final_masks(
        self, weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        return {name: mask.clone() for name, mask in masks.items()}

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"FixedMasks(mask_file={self.mask_file!r})"
