"""Binary masks on plain weights, kept exact through training.

DESIGN §7, *mask state*: MSRS sparse / grad-masked retraining (Algorithm 1,
second loop; Table 4 "dense with MSRS masks") and the baselines of Table 4
(SET, RigL, GMP, CHASE) all train plain ESPnet layers whose weights carry a
binary mask m (True = active).  :class:`MaskState` is that one mechanism:

* gradients are multiplied by m in a tensor hook during backward, i.e.
  before gradient accumulation, DDP's all-reduce and ESPnet's clipping
  (unless ``keep_dense_grad()`` asks for the dense gradient of this step,
  e.g. for RigL's growth criterion);
* with ``zero_weights`` (``sparse``): inactive weights are set to 0.0 and
  re-zeroed after every step of every attached optimizer, and the optimizer
  state tensors of the weight's shape (AdamW's moments) are zero there, so
  inactive weights stay exactly 0.0 whatever the optimizer does (decoupled
  weight decay, momentum);
* without (``grad_masked``): only gradients are masked; the weights keep
  their values (decoupled weight decay still shrinks them: use
  ``weight_decay: 0`` to freeze them);
* :meth:`set_masks` changes the masks (prune-and-grow): newly inactive
  entries get weight 0 and zero moments, newly active ones zero moments
  (their weight is already 0), so regrown weights start from zero;
* the masks are identical on every DDP rank (checked with one all-reduce
  whenever they are set) and saved by :meth:`state_dict`.

No schedule, no randomness: which masks, and when they change, is the
business of the method that owns this state.
"""

import logging
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from torch import nn

from espnet_msrs.sparsity.folding import masks_sparsity

logger = logging.getLogger(__name__)

_MAX_NAMES_SHOWN = 20


def check_same_on_ranks(masks: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise if the masks differ between DDP ranks (no-op without DDP).

    Compares the number of active entries of every mask and a position
    checksum with one all-reduce (MAX of ±values).
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    if not masks:
        return
    rows = []
    for mask in masks.values():
        flat = mask.reshape(-1)
        positions = torch.arange(1, flat.numel() + 1, device=flat.device)
        rows.append(torch.stack([flat.sum(), (positions * flat).sum()]))
    values = torch.stack(rows).to(torch.int64)
    both = torch.cat([values, -values])
    torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
    high, low = both[: len(values)], -both[len(values):]
    if not torch.equal(high, low):
        bad = [name for name, h, lo in zip(masks, high, low) if not torch.equal(h, lo)]
        raise RuntimeError(
            f"{what}: the binary masks differ between DDP ranks for "
            f"{bad[:_MAX_NAMES_SHOWN]}; every rank must compute the same masks"
        )


class MaskState:
    """Binary masks of named weights, applied to gradients, weights and moments.

    Args:
        params: Weight name -> parameter (e.g. ``MaskSelection.select``).
        masks: Weight name -> bool mask of the parameter's shape, for a
            subset of ``params`` (or all of them).
        zero_weights: True: inactive weights are exactly 0.0 (``sparse``);
            False: only gradients are masked (``grad_masked``).
        keep_dense_grad: Called in every backward: True lets this backward's
            gradients through unmasked (the caller masks them later with
            :meth:`mask_gradients`).
        where: Config key prefix used in error messages.

    Raises:
        ValueError: A mask names no parameter, has another shape, or is not
            bool.
    """

    def __init__(
        self,
        params: Mapping[str, nn.Parameter],
        masks: Mapping[str, torch.Tensor],
        zero_weights: bool = True,
        keep_dense_grad: Optional[Callable[[], bool]] = None,
        where: str = "msrs_conf",
    ) -> None:
        self.zero_weights = bool(zero_weights)
        self.keep_dense_grad = keep_dense_grad
        self.where = where
        self.params: Dict[str, nn.Parameter] = {}
        self.masks: Dict[str, torch.Tensor] = {}
        for name in masks:
            if name not in params:
                raise ValueError(
                    f"{where}: mask {name!r} names no selected weight; selected "
                    f"weights are: {list(params)[:_MAX_NAMES_SHOWN]}"
                )
            self.params[name] = params[name]
        self._check(masks)
        self.masks = {n: m.to(self.params[n].device) for n, m in masks.items()}
        self._sparsity = masks_sparsity(self.masks)
        self.optimizers: List[torch.optim.Optimizer] = []
        self._handles: List[Any] = [
            param.register_hook(self._grad_hook(name))
            for name, param in self.params.items()
        ]
        check_same_on_ranks(self.masks, f"{where} masks")
        if self.zero_weights:
            self.zero_masked_weights()

    def _check(self, masks: Mapping[str, torch.Tensor]) -> None:
        if set(masks) != set(self.params):
            missing = sorted(set(self.params) - set(masks))
            extra = sorted(set(masks) - set(self.params))
            raise ValueError(
                f"{self.where}: masks must cover exactly the masked weights; "
                f"missing {missing[:_MAX_NAMES_SHOWN]}, unknown {extra[:_MAX_NAMES_SHOWN]}"
            )
        for name, mask in masks.items():
            param = self.params[name]
            if tuple(mask.shape) != tuple(param.shape):
                raise ValueError(
                    f"{self.where}: mask {name!r} has shape {tuple(mask.shape)} "
                    f"but the weight has shape {tuple(param.shape)}"
                )
            if mask.dtype != torch.bool:
                raise ValueError(
                    f"{self.where}: mask {name!r} must be a bool tensor, got "
                    f"{mask.dtype}"
                )

    def _keep_on(self, name: str, device: torch.device) -> torch.Tensor:
        """The mask of ``name`` on ``device`` (follows ``model.to(device)``)."""
        keep = self.masks[name]
        if keep.device != device:
            keep = keep.to(device)
            self.masks[name] = keep
        return keep

    def _grad_hook(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def hook(grad: torch.Tensor) -> torch.Tensor:
            if self.keep_dense_grad is not None and self.keep_dense_grad():
                return grad
            # A multiply by the bool mask is cheaper than masked_fill on CPU
            # (bench/train_step.py's msrs_sparse row measures the hooks);
            # masked entries become ±0.0 (== 0.0).
            return grad.mul(self._keep_on(name, grad.device))

        return hook

    # --------------------------------------------------------------- weights
    @torch.no_grad()
    def zero_masked_weights(self) -> None:
        """Set the inactive entries of every masked weight to exactly 0.0."""
        for name, param in self.params.items():
            param.masked_fill_(~self._keep_on(name, param.device), 0.0)

    @torch.no_grad()
    def _rezero_after_step(self) -> None:
        # After an optimizer step (hot path): one multiply per weight.
        for name, param in self.params.items():
            param.mul_(self._keep_on(name, param.device))

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Multiply the current ``.grad`` of every masked weight by its mask."""
        for name, param in self.params.items():
            if param.grad is not None:
                param.grad.mul_(self._keep_on(name, param.grad.device))

    @torch.no_grad()
    def _zero_optimizer_state(self, name: str, entries: torch.Tensor) -> None:
        param = self.params[name]
        for optimizer in self.optimizers:
            for value in optimizer.state.get(param, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == param.shape:
                    value.masked_fill_(entries.to(value.device), 0.0)

    # ------------------------------------------------------------ optimizers
    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep inactive weights at 0.0 (and their moments) under ``optimizer``.

        In ``grad_masked`` mode this does nothing, so callers may attach
        every optimizer whatever the mode.
        """
        if not self.zero_weights:
            return
        self.optimizers.append(optimizer)
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        for name, param in self.params.items():
            if id(param) in ids:
                self._zero_optimizer_state(name, ~self.masks[name])

        def post_hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self._rezero_after_step()

        self._handles.append(optimizer.register_step_post_hook(post_hook))

    # ----------------------------------------------------------------- masks
    @torch.no_grad()
    def set_masks(self, masks: Mapping[str, torch.Tensor]) -> Dict[str, int]:
        """Replace the masks (prune-and-grow), keeping weights and moments exact.

        Newly inactive entries get weight 0.0 and zero optimizer moments;
        newly active entries get zero moments (their weight is already 0.0).

        Args:
            masks: Weight name -> new bool mask, for every masked weight.

        Returns:
            ``{"pruned": n, "grown": n}`` entries that changed state.
        """
        self._check(masks)
        pruned = grown = 0
        new_masks = {}
        for name, new in masks.items():
            old = self.masks[name]
            new = new.to(old.device)
            dropped, added = old & ~new, new & ~old
            pruned += int(dropped.sum())
            grown += int(added.sum())
            if self.zero_weights:
                self._zero_optimizer_state(name, dropped | added)
            new_masks[name] = new
        self.masks = new_masks
        self._sparsity = masks_sparsity(self.masks)
        check_same_on_ranks(self.masks, f"{self.where} masks")
        if self.zero_weights:
            self.zero_masked_weights()
        return {"pruned": pruned, "grown": grown}

    def sparsity(self) -> float:
        """Fraction of inactive entries over all masked weights."""
        return self._sparsity

    # ----------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        """The masks (on CPU), for the training checkpoint."""
        return {"masks": {n: m.detach().cpu() for n, m in self.masks.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore masks saved by :meth:`state_dict` (weights must match them)."""
        masks = state["masks"]
        self._check(masks)
        self.masks = {n: m.to(self.params[n].device) for n, m in masks.items()}
        self._sparsity = masks_sparsity(self.masks)
        if self.zero_weights:
            self.zero_masked_weights()

    def remove(self) -> None:
        """Remove every gradient and optimizer hook registered by this object."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __repr__(self) -> str:
        return (
            f"MaskState(masks={len(self.masks)}, sparsity={self.sparsity():.4f}, "
            f"zero_weights={self.zero_weights})"
        )
