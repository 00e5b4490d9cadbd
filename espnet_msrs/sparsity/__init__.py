"""MSRS sparse masks (Fernandez-Lopez et al., Interspeech 2024): mechanism.

Masked Linear/Conv layers (eqs. 3-8), applying them by parameter-name
patterns, fixed-mask retraining hooks and sparsity reports. Pure torch: this
package does not import espnet2.
"""

from espnet_msrs.sparsity.masked_layers import (
    DEFAULT_MASK_KWARGS,
    MaskedConv1d,
    MaskedConv2d,
    MaskedConv3d,
    MaskedLinear,
    MaskedWeightFunction,
    MaskedWeightMixin,
    initial_mask_logits,
    masked_weight,
)
from espnet_msrs.sparsity.policy import (
    MASKED_CLASSES,
    FixedMaskHooks,
    apply_masks,
    binary_masks,
    folded_state_dict,
    load_mask_metadata,
    load_masks,
    mask_penalty,
    mask_sparsity,
    masked_modules,
    masks_sparsity,
    save_masks,
    strip_masks,
)
from espnet_msrs.sparsity.report import (
    format_report,
    group_of,
    model_sparsity_report,
    sparsity_report,
)

__all__ = [
    "DEFAULT_MASK_KWARGS",
    "FixedMaskHooks",
    "MASKED_CLASSES",
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedConv3d",
    "MaskedLinear",
    "MaskedWeightFunction",
    "MaskedWeightMixin",
    "apply_masks",
    "binary_masks",
    "folded_state_dict",
    "format_report",
    "group_of",
    "initial_mask_logits",
    "load_mask_metadata",
    "load_masks",
    "mask_penalty",
    "mask_sparsity",
    "masked_modules",
    "masked_weight",
    "masks_sparsity",
    "model_sparsity_report",
    "save_masks",
    "sparsity_report",
    "strip_masks",
]
