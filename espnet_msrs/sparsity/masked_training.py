"""Training plain weights under binary masks that a strategy chooses.

:class:`MaskedTraining` is the sparse-training method of MSRS sparse /
grad-masked retraining (strategy :class:`~espnet_msrs.sparsity.fixed_masks.FixedMasks`)
and of the baselines of MSRS Table 4 (strategies in
:mod:`espnet_msrs.sparsity.baselines`: SET, RigL, GMP, CHASE).  The mask
mechanism is :class:`~espnet_msrs.sparsity.mask_state.MaskState`; a strategy
is policy only and follows this protocol (``step`` is the 1-based index of
the optimizer step being taken, ``total_steps`` the optimizer steps of the
run, both identical on every DDP rank)::

    initial_masks(weights) -> masks                     at build
    is_update_step(step, total_steps) -> bool
    wants_dense_grad(step, total_steps) -> bool         the gradients of
                                                        inactive entries are
                                                        needed at this step
    update(step, total_steps, weights, masks, grads)    new masks; called
        -> masks                                        after ESPnet's
                                                        un-scaling and
                                                        clipping, before the
                                                        optimizer step, with
                                                        DDP-all-reduced
                                                        gradients (dense when
                                                        asked, else None)
    final_masks(weights, masks) -> masks                at the end
    state_dict() / load_state_dict(state)               its counters and
                                                        random state
    needs_total_steps: bool (optional, default True)

``weights``, ``masks`` and ``grads`` are dicts keyed by weight name (the
selection of ``msrs_conf.include``/``exclude``); masks are bool tensors.
"""

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from espnet_msrs.sparsity.mask_state import MaskState
from espnet_msrs.sparsity.selection import MaskSelection
from espnet_msrs.sparsity.sparse_method import SparseMethod

logger = logging.getLogger(__name__)


class MaskedTraining(SparseMethod):
    """Binary masks on plain weights, chosen and updated by ``strategy``.

    Args:
        name: ``msrs_conf.mode`` of the method (``sparse``, ``rigl``, ...).
        strategy: The mask rule (see the module docstring).
        zero_weights: True: inactive weights are exactly 0.0; False
            (``grad_masked``): only their gradients are masked.
    """

    def __init__(self, name: str, strategy: Any, zero_weights: bool = True):
        super().__init__()
        self.name = name
        self.strategy = strategy
        self.zero_weights = bool(zero_weights)
        self.needs_steps_per_epoch = bool(getattr(strategy, "needs_total_steps", True))
        self.steps = 0  # optimizer steps taken
        self.mask_updates = 0
        self.total_steps: Optional[int] = None
        self.weights: Dict[str, nn.Parameter] = {}
        self.mask_state: Optional[MaskState] = None

    # ------------------------------------------------------------ lifecycle
    def setup(self, model: nn.Module, selection: MaskSelection, seed: int) -> None:
        """Draw the initial masks of the selected weights and apply them."""
        self.weights = selection.select(model)
        masks = self.strategy.initial_masks(
            {name: w.detach() for name, w in self.weights.items()}
        )
        selected = {name: self.weights[name] for name in masks}
        self.mask_state = MaskState(selected, masks, zero_weights=self.zero_weights,
                                    keep_dense_grad=self._keep_dense_grad)
        logger.info(
            f"sparse training: mode={self.name} strategy={self.strategy!r} "
            f"masked_weights={len(masks)} sparsity={self.mask_state.sparsity():.4f} "
            f"zero_weights={self.zero_weights}"
        )

    def _wants_dense_grad(self, step: int) -> bool:
        return self.total_steps is not None and bool(
            self.strategy.wants_dense_grad(step, self.total_steps)
        )

    def _keep_dense_grad(self) -> bool:
        return self._wants_dense_grad(self.steps + 1)

    def attach_optimizers(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Exact zeros under every optimizer; mask updates around θ's steps."""
        super().attach_optimizers(optimizers)
        for optimizer in optimizers:
            self.mask_state.attach_optimizer(optimizer)
        optimizers[0].register_step_pre_hook(self._before_step)
        optimizers[0].register_step_post_hook(self._after_step)

    def start(self, model: nn.Module, steps_per_epoch: Optional[int],
              max_epoch: int) -> None:
        """Re-apply the masks to the weights training starts from."""
        super().start(model, steps_per_epoch, max_epoch)
        if self.needs_steps_per_epoch:
            if not steps_per_epoch:
                raise ValueError(
                    f"msrs_conf.mode={self.name} needs the optimizer steps per "
                    "epoch of the run"
                )
            self.total_steps = int(steps_per_epoch) * int(max_epoch)
        if self.zero_weights:
            self.mask_state.zero_masked_weights()

    @torch.no_grad()
    def _before_step(self, optimizer, args, kwargs) -> None:
        step = self.steps + 1
        if self.total_steps is None:
            return
        if self.strategy.is_update_step(step, self.total_steps):
            dense = self._wants_dense_grad(step)
            grads = None
            if dense:
                grads = {
                    name: w.grad if w.grad is not None else torch.zeros_like(w)
                    for name, w in self.mask_state.params.items()
                }
            weights = {name: w.detach() for name, w in self.mask_state.params.items()}
            new = self.strategy.update(step, self.total_steps, weights,
                                       self.mask_state.masks, grads)
            if step == self.total_steps:
                new = self.strategy.final_masks(weights, new)
            changed = self.mask_state.set_masks(new)
            self.mask_updates += 1
            logger.info(
                f"sparse training: mode={self.name} step={step} "
                f"pruned={changed['pruned']} grown={changed['grown']} "
                f"sparsity={self.mask_state.sparsity():.4f}"
            )
            masks_changed = True
        elif step == self.total_steps:
            # the last step: final masks (e.g. CHASE back to its budget) go
            # into the weights, so the last epoch's model file holds them
            weights = {name: w.detach() for name, w in self.mask_state.params.items()}
            changed = self.mask_state.set_masks(
                self.strategy.final_masks(weights, self.mask_state.masks))
            masks_changed = changed["pruned"] + changed["grown"] > 0
        else:
            masks_changed = False
        # Gradients kept dense for this step, or masked with the masks before
        # a change (pruned entries would keep them, and AdamW would write
        # them into their moments), are masked with the current masks.
        if masks_changed or self._wants_dense_grad(step):
            self.mask_state.mask_gradients()

    def _after_step(self, optimizer, args, kwargs) -> None:
        self.steps += 1

    def loss_terms(
        self, model: nn.Module
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """No loss term; reports ``sparsity`` (inactive fraction of the masks)."""
        return None, {"sparsity": torch.tensor(self.mask_state.sparsity())}

    def write_artifacts(self, model: nn.Module, output_dir: Path,
                        stop_reason: str) -> Dict[str, Any]:
        from espnet_msrs.sparsity.artifacts import write_sparsity_artifacts

        weights = {name: w.detach() for name, w in self.mask_state.params.items()}
        final = self.strategy.final_masks(weights, self.mask_state.masks)
        summary = {
            "stop_reason": stop_reason,
            "strategy": repr(self.strategy),
            "zero_weights": self.zero_weights,
            "steps": self.steps,
            "total_steps": self.total_steps,
            "mask_updates": self.mask_updates,
            "final_epoch": self.last_epoch,
        }
        return write_sparsity_artifacts(model, final, self.name, "training", summary,
                                        output_dir)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        return {
            **super().state_dict(),
            "steps": self.steps,
            "mask_updates": self.mask_updates,
            "mask_state": self.mask_state.state_dict(),
            "strategy": self.strategy.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.steps = int(state["steps"])
        self.mask_updates = int(state["mask_updates"])
        self.mask_state.load_state_dict(state["mask_state"])
        self.strategy.load_state_dict(state["strategy"])
