"""Binary masks of MSRS masked layers, and folding them into plain weights.

MSRS (Fernandez-Lopez et al., Interspeech 2024):

* :func:`binary_masks` gives ``m = 1[φ ≥ 0]`` of eq. (8) per masked weight,
  and :func:`masks_sparsity` the overall fraction of zeros that the
  stopping rule and the reports use;
* :func:`folded_state_dict` is the hand-over ``θ0 ← θ_j ⊙ m*`` of
  Algorithm 1 as a state dict of the same model built with plain layers
  (what the retraining loads with ``--init_param``); :func:`strip_masks`
  does the same in place.
"""

import collections
from typing import Dict, List, Mapping

import torch
from torch import nn

from espnet_msrs.compat import copy_state_dict_metadata
from espnet_msrs.sparsity.masked_layers import MaskedWeightMixin
from espnet_msrs.sparsity.selection import masked_modules, replace_module, weight_name


def binary_masks(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Binary masks ``1[φ ≥ 0]`` (eq. 8) of the masked layers, by weight name.

    The names (``f"{module}.weight"``) are also the parameter names of the
    same model built with plain layers.

    Returns:
        Weight name -> bool tensor of the weight's shape.
    """
    return {
        weight_name(name): module.binary_mask()
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
    """Fraction of zeros of the binary masks over all masked weights."""
    return masks_sparsity(binary_masks(model))


def folded_state_dict(model: nn.Module) -> "collections.OrderedDict[str, torch.Tensor]":
    """State dict of the plain model after the hand-over ``θ0 = θ_j ⊙ m*``.

    Masked weights become ``θ ⊙ 1[φ ≥ 0]`` (masked entries exactly 0.0) and
    the ``mask_logits`` entries are dropped, so the result loads with
    ``strict=True`` into the same model built with plain layers.

    Args:
        model: Model with masked layers (not wrapped in DDP).

    Returns:
        OrderedDict name -> tensor (detached).
    """
    state = model.state_dict()
    modules = masked_modules(model)
    folded = {
        weight_name(name): module.folded_weight() for name, module in modules.items()
    }
    drop = {f"{name}.mask_logits" if name else "mask_logits" for name in modules}
    out: "collections.OrderedDict[str, torch.Tensor]" = collections.OrderedDict(
        (key, folded.get(key, value)) for key, value in state.items() if key not in drop
    )
    copy_state_dict_metadata(state, out)
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
            names.append(weight_name(name))
        replace_module(model, name, dense)
    return names
