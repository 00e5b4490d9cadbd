"""Applying MSRS masks to a model by parameter-name patterns, and using them.

MSRS (Fernandez-Lopez et al., Interspeech 2024), Algorithm 1:

* :func:`apply_masks` turns the selected Linear/Conv layers into masked ones
  (:mod:`espnet_msrs.sparsity.masked_layers`); biases and norm parameters are
  never masked.
* :func:`mask_penalty` is ``1_pᵀφ`` of eq. (7) (a sum, not a mean; the
  caller multiplies by λ).
* :func:`binary_masks` / :func:`mask_sparsity` give ``m = 1[φ ≥ 0]`` of eq. (8)
  and the overall sparsity used by the stopping criterion.
* :func:`folded_state_dict` is the hand-over ``θ0 ← θ_j ⊙ m*`` as a state dict
  of the plain (dense-layer) model; :func:`strip_masks` does it in place.
* :class:`FixedMaskHooks` retrains with a fixed mask: "sparse" (only weights
  with ``m* = 1`` ever change) or "grad_masked" (paper Table 4, "dense with
  MSRS masks": gradients are masked, weights are not zeroed).

This module has no schedule: when to binarise and when to stop is decided by
the training code.
"""

import collections
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn
from typeguard import typechecked

from espnet_msrs.sparsity.masked_layers import (
    MaskedConv1d,
    MaskedConv2d,
    MaskedConv3d,
    MaskedLinear,
    MaskedWeightMixin,
)

logger = logging.getLogger(__name__)

MASKED_CLASSES: Dict[Type[nn.Module], Type[MaskedWeightMixin]] = {
    nn.Linear: MaskedLinear,
    nn.Conv1d: MaskedConv1d,
    nn.Conv2d: MaskedConv2d,
    nn.Conv3d: MaskedConv3d,
}

MASK_FILE_FORMAT = "espnet_msrs.sparsity.masks"
MASK_FILE_VERSION = 1
_MAX_CANDIDATES_SHOWN = 20
_MASKED_TYPES = tuple(MASKED_CLASSES.values())


def _as_patterns(patterns: Union[str, Sequence[str]], key: str) -> List[str]:
    """Normalise and compile-check a pattern list (a lone string is one pattern)."""
    if isinstance(patterns, str):
        patterns = [patterns]
    out = list(patterns)
    for pattern in out:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"{key} pattern {pattern!r} is not a valid regex: {e}")
    return out


def _prunable_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(module name, module) of every exact Linear/ConvNd or masked layer."""
    return [
        (name, module)
        for name, module in model.named_modules(remove_duplicate=False)
        if type(module) in MASKED_CLASSES or isinstance(module, _MASKED_TYPES)
    ]


def _weight_name(module_name: str) -> str:
    return f"{module_name}.weight" if module_name else "weight"


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    if not name:
        raise ValueError(
            f"cannot replace the root module ({type(model).__name__}) in place; "
            "wrap it in a container module first"
        )
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _unmatched_error(key: str, pattern: str, candidates: List[str]) -> ValueError:
    shown = candidates[:_MAX_CANDIDATES_SHOWN]
    more = len(candidates) - len(shown)
    tail = f" ... and {more} more" if more > 0 else ""
    return ValueError(
        f"{key} pattern {pattern!r} matches no prunable weight; "
        f"prunable weights are: {shown}{tail}"
    )


@typechecked
def apply_masks(
    model: nn.Module,
    include: Union[str, Sequence[str]] = (".*",),
    exclude: Union[str, Sequence[str]] = (),
    **mask_kwargs: float,
) -> List[str]:
    """Replace selected Linear/Conv layers of ``model`` by masked layers.

    A layer is selected when its type is exactly ``nn.Linear``/``nn.Conv1d``/
    ``nn.Conv2d``/``nn.Conv3d`` and its weight name ``f"{module}.weight"``
    matches (``re.search``) at least one ``include`` pattern and no ``exclude``
    pattern. Layers that are already masked count as matches but are not
    wrapped again, so the call is idempotent. Subclasses of those types
    (e.g. ESPnet's own Conv wrappers) are left alone.

    Args:
        model: Model, changed in place.
        include: Regexes of weight names to mask (a lone string is one regex).
        exclude: Regexes of weight names to keep dense.
        **mask_kwargs: ``mu``, ``rho``, ``varsigma``, ``tau_forward``,
            ``tau_backward`` for newly masked layers.

    Returns:
        Weight names of all masked layers selected (new and already masked),
        in module order.

    Raises:
        ValueError: A pattern is not a valid regex or matches no prunable
            weight (the message lists candidates), or an option is unknown.
    """
    include_list = _as_patterns(include, "include")
    exclude_list = _as_patterns(exclude, "exclude")
    prunable = _prunable_modules(model)
    candidates = [_weight_name(name) for name, _ in prunable]
    for key, patterns in (("include", include_list), ("exclude", exclude_list)):
        for pattern in patterns:
            if not any(re.search(pattern, c) for c in candidates):
                raise _unmatched_error(key, pattern, candidates)

    selected: List[str] = []
    replaced: Dict[int, nn.Module] = {}
    for (name, module), weight_name in zip(prunable, candidates):
        if not any(re.search(p, weight_name) for p in include_list):
            continue
        if any(re.search(p, weight_name) for p in exclude_list):
            continue
        selected.append(weight_name)
        if isinstance(module, _MASKED_TYPES):
            continue
        new = replaced.get(id(module))
        if new is None:
            new = MASKED_CLASSES[type(module)].from_dense(module, **mask_kwargs)
            replaced[id(module)] = new
        _replace_module(model, name, new)
    logger.info(
        "MSRS masks: selected=%d new=%d of prunable=%d",
        len(selected),
        len(replaced),
        len(candidates),
    )
    return selected


def masked_modules(model: nn.Module) -> Dict[str, MaskedWeightMixin]:
    """Masked layers of ``model`` by module name, in module order."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, MaskedWeightMixin)
    }


def mask_penalty(model: nn.Module) -> torch.Tensor:
    """``1_pᵀφ`` of MSRS eq. (7): the sum of all mask logits (differentiable).

    Args:
        model: Model with masked layers.

    Returns:
        Scalar tensor (the dtype of the logits); a zero scalar without
        gradient when ``model`` has no masked layer.
    """
    sums = [m.mask_logits.sum() for m in masked_modules(model).values()]
    if not sums:
        param = next(model.parameters(), None)
        device = param.device if param is not None else None
        return torch.zeros((), device=device)
    return torch.stack(sums).sum()


def binary_masks(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Binary masks ``1[φ ≥ 0]`` (eq. 8) keyed by weight name.

    The names (``f"{module}.weight"``) are also the parameter names of the
    same model built with plain dense layers.

    Returns:
        Dict weight name -> bool tensor of the weight's shape.
    """
    return {
        _weight_name(name): module.binary_mask()
        for name, module in masked_modules(model).items()
    }


def masks_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of zeros over all entries of ``masks`` (0.0 when empty)."""
    total = sum(int(m.numel()) for m in masks.values())
    if total == 0:
        return 0.0
    zeros = sum(int((~m.bool()).sum()) for m in masks.values())
    return zeros / total


def mask_sparsity(model: nn.Module) -> float:
    """Fraction of zeros in the binary masks over all masked weights."""
    return masks_sparsity(binary_masks(model))


def folded_state_dict(model: nn.Module) -> "collections.OrderedDict[str, torch.Tensor]":
    """State dict of the dense model after the hand-over ``θ0 = θ_j ⊙ m*``.

    Masked weights become ``θ ⊙ 1[φ ≥ 0]`` (masked entries exactly 0.0) and
    the ``mask_logits`` entries are dropped, so the result loads with
    ``strict=True`` into the same model built with plain dense layers.

    Args:
        model: Model with masked layers (not wrapped in DDP).

    Returns:
        OrderedDict name -> tensor (detached).
    """
    state = model.state_dict()
    folded_weights = {
        _weight_name(name): module.folded_weight()
        for name, module in masked_modules(model).items()
    }
    drop = {
        f"{name}.mask_logits" if name else "mask_logits"
        for name in masked_modules(model)
    }
    out: "collections.OrderedDict[str, torch.Tensor]" = collections.OrderedDict()
    for key, value in state.items():
        if key in drop:
            continue
        out[key] = folded_weights.get(key, value)
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def strip_masks(model: nn.Module) -> List[str]:
    """Replace every masked layer of ``model`` by its ``to_dense()`` in place.

    Returns:
        Weight names of the layers that were folded.
    """
    names = []
    replaced: Dict[int, nn.Module] = {}
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if not isinstance(module, MaskedWeightMixin):
            continue
        dense = replaced.get(id(module))
        if dense is None:
            dense = module.to_dense()
            replaced[id(module)] = dense
            names.append(_weight_name(name))
        _replace_module(model, name, dense)
    return names


@typechecked
def save_masks(
    masks: Mapping[str, torch.Tensor],
    path: Union[str, Path],
    metadata: Optional[Mapping[str, Any]] = None,
) -> None:
    """Save binary masks with ``torch.save`` (loadable with ``weights_only``).

    The file holds ``{"format", "version", "masks", "metadata"}``; metadata
    always gets ``num_masks``, ``numel``, ``zeros`` and ``sparsity``.

    Args:
        masks: Weight name -> bool tensor.
        path: Output file (parent directories are created).
        metadata: Extra JSON-serialisable information (epoch, λ, ...).
    """
    for name, mask in masks.items():
        if mask.dtype != torch.bool:
            raise ValueError(f"mask {name!r} must be a bool tensor, got {mask.dtype}")
    meta: Dict[str, Any] = dict(metadata or {})
    try:
        json.dumps(meta)
    except TypeError as e:
        raise ValueError(f"mask metadata must be JSON-serialisable: {e}")
    meta.update(
        num_masks=len(masks),
        numel=sum(int(m.numel()) for m in masks.values()),
        zeros=sum(int((~m).sum()) for m in masks.values()),
        sparsity=masks_sparsity(masks),
    )
    payload = {
        "format": MASK_FILE_FORMAT,
        "version": MASK_FILE_VERSION,
        "masks": {name: mask.detach().cpu() for name, mask in masks.items()},
        "metadata": meta,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def _load_mask_file(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mask file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors of a foreign file
        raise ValueError(f"mask file {str(path)!r} cannot be read: {e}")
    if not isinstance(payload, dict) or payload.get("format") != MASK_FILE_FORMAT:
        raise ValueError(
            f"mask file {str(path)!r} is not a {MASK_FILE_FORMAT} file "
            "(write it with espnet_msrs.sparsity.save_masks)"
        )
    if payload.get("version") != MASK_FILE_VERSION:
        raise ValueError(
            f"mask file {str(path)!r} has version {payload.get('version')}, "
            f"supported: {MASK_FILE_VERSION}"
        )
    return payload


def load_masks(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Load masks written by :func:`save_masks` (on CPU).

    Returns:
        Weight name -> bool tensor.
    """
    return dict(_load_mask_file(path)["masks"])


def load_mask_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """Metadata stored by :func:`save_masks` (``sparsity``, ``numel``, ...)."""
    return dict(_load_mask_file(path)["metadata"])


class FixedMaskHooks:
    """Retraining with a fixed binary mask (MSRS Algorithm 1, second loop).

    Modes:
        ``"sparse"``: masked weights are set to 0.0 now; their gradients are
            masked; after :meth:`attach_optimizer`, every optimizer step is
            followed by re-zeroing them, so they stay exactly 0.0 whatever the
            optimizer does (AdamW decoupled weight decay, momentum, state
            carried over from dense training).
        ``"grad_masked"``: paper Table 4, "dense with MSRS masks": only the
            gradients are masked; the weights keep their values and
            :meth:`attach_optimizer` is a no-op. Note that decoupled weight
            decay (AdamW) is not a gradient, so it still shrinks the masked
            weights towards 0 (use ``weight_decay=0`` to freeze them).

    Gradient hooks act before gradient accumulation, hence before DDP's
    all-reduce and gradient clipping.

    Args:
        model: Model with plain dense layers whose parameter names are the
            mask names.
        masks: Weight name -> bool tensor of the parameter's shape.
        mode: ``"sparse"`` or ``"grad_masked"``.
    """

    MODES = ("sparse", "grad_masked")

    @typechecked
    def __init__(
        self,
        model: nn.Module,
        masks: Mapping[str, torch.Tensor],
        mode: str = "sparse",
    ) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode={mode!r} is not one of {list(self.MODES)}")
        params = dict(model.named_parameters())
        self.mode = mode
        self.masks: Dict[str, torch.Tensor] = {}
        self.params: Dict[str, nn.Parameter] = {}
        for name, mask in masks.items():
            if name not in params:
                close = [p for p in params if p.endswith(name.rsplit(".", 1)[-1])]
                raise ValueError(
                    f"mask {name!r} names no parameter of the model; "
                    f"parameters include: {close[:_MAX_CANDIDATES_SHOWN]}"
                )
            param = params[name]
            if tuple(mask.shape) != tuple(param.shape):
                raise ValueError(
                    f"mask {name!r} has shape {tuple(mask.shape)} but the "
                    f"parameter has shape {tuple(param.shape)}"
                )
            if mask.dtype != torch.bool:
                raise ValueError(
                    f"mask {name!r} must be a bool tensor, got {mask.dtype}"
                )
            self.masks[name] = mask.to(param.device)
            self.params[name] = param
        self._pruned = {name: ~mask for name, mask in self.masks.items()}
        self._handles: List[Any] = []
        for name, param in self.params.items():
            self._handles.append(param.register_hook(self._grad_hook(name)))
        if mode == "sparse":
            self.zero_masked_weights()
        logger.info(
            "MSRS fixed masks: mode=%s masks=%d sparsity=%.4f",
            mode,
            len(self.masks),
            masks_sparsity(self.masks),
        )

    def _keep_on(self, name: str, device: torch.device) -> torch.Tensor:
        """The keep-mask (m* = 1) of ``name`` on ``device`` (cached)."""
        keep = self.masks[name]
        if keep.device != device:
            keep = keep.to(device)
            self.masks[name] = keep
        return keep

    def _pruned_on(self, name: str, device: torch.device) -> torch.Tensor:
        """``~mask`` of ``name`` on ``device`` (follows ``model.to(device)``)."""
        pruned = self._pruned[name]
        if pruned.device != device:
            pruned = pruned.to(device)
            self._pruned[name] = pruned
        return pruned

    def _grad_hook(self, name: str) -> Any:
        def hook(grad: torch.Tensor) -> torch.Tensor:
            # A multiply by the bool keep-mask is ~10x cheaper than masked_fill
            # on CPU; pruned entries become ±0.0 (== 0.0).
            return grad.mul(self._keep_on(name, grad.device))

        return hook

    def zero_masked_weights(self) -> None:
        """Set the masked entries of every masked parameter to exactly 0.0."""
        with torch.no_grad():
            for name, param in self.params.items():
                param.masked_fill_(self._pruned_on(name, param.device), 0.0)

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Keep masked weights at 0.0 after every step of ``optimizer``.

        In mode ``"sparse"``, optimizer state tensors of the parameter's shape
        (e.g. AdamW's moments) are zeroed at the masked entries once, now, and
        the weights are re-zeroed after each step. In mode ``"grad_masked"``
        this does nothing (the weights are meant to move), so callers may
        attach every optimizer whatever the mode.

        Args:
            optimizer: Optimizer over (some of) the masked parameters; other
                parameters of it are left alone.
        """
        if self.mode != "sparse":
            return
        ids = {id(p) for group in optimizer.param_groups for p in group["params"]}
        names = [n for n, p in self.params.items() if id(p) in ids]
        with torch.no_grad():
            for name in names:
                state = optimizer.state.get(self.params[name], {})
                for value in state.values():
                    if (
                        isinstance(value, torch.Tensor)
                        and value.shape == self.params[name].shape
                    ):
                        value.masked_fill_(self._pruned_on(name, value.device), 0.0)

        def post_hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            with torch.no_grad():
                for name in names:
                    param = self.params[name]
                    param.mul_(self._keep_on(name, param.device))

        self._handles.append(optimizer.register_step_post_hook(post_hook))

    def remove(self) -> None:
        """Remove every gradient and optimizer hook registered by this object."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
