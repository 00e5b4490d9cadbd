"""Sparse training as one family (DESIGN §7): MSRS and the Table 4 baselines.

=====================  ==========================================================
module                 what it is
=====================  ==========================================================
``masked_layers``      MSRS masked Linear/Conv layers (eqs. 3-8): mechanism only
``selection``          the one selector of maskable weights (include/exclude)
``mask_state``         binary masks on plain weights, exact zeros (DDP, resume)
``sparse_method``      the method interface (hooks the model/trainer call)
``msrs_search``        MSRS mask search: φ, λ (two readings), the ε stop rule
``masked_training``    training under strategy-chosen binary masks
``fixed_masks``        MSRS sparse / grad-masked retraining's strategy
``baselines``          SET, RigL, GMP, CHASE strategies (ERK starts)
``method_choices``     ``--msrs_conf`` -> method + selection
``folding``            binary masks of masked layers; θ ⊙ m folded into weights
``mask_file``          ``mask.pth`` read/write
``report``/``artifacts``  the sparsity report and run artifacts (one format)
=====================  ==========================================================

Pure torch: this package does not import espnet2.
"""

from espnet_msrs.sparsity.folding import (
    binary_masks,
    folded_state_dict,
    mask_sparsity,
    masks_sparsity,
    strip_masks,
)
from espnet_msrs.sparsity.mask_file import load_mask_metadata, load_masks, save_masks
from espnet_msrs.sparsity.mask_state import MaskState
from espnet_msrs.sparsity.masked_layers import (
    DEFAULT_MASK_KWARGS,
    MaskedConv1d,
    MaskedConv2d,
    MaskedConv3d,
    MaskedLinear,
    MaskedWeightMixin,
    initial_mask_logits,
)
from espnet_msrs.sparsity.masked_training import MaskedTraining
from espnet_msrs.sparsity.method_choices import MODES, build_sparse_method
from espnet_msrs.sparsity.msrs_search import MSRSSearch
from espnet_msrs.sparsity.report import format_report, group_of, sparsity_report
from espnet_msrs.sparsity.selection import (
    MASKED_CLASSES,
    MaskSelection,
    apply_masks,
    masked_modules,
)
from espnet_msrs.sparsity.sparse_method import SparseMethod

__all__ = [
    "DEFAULT_MASK_KWARGS",
    "MASKED_CLASSES",
    "MODES",
    "MSRSSearch",
    "MaskSelection",
    "MaskState",
    "MaskedConv1d",
    "MaskedConv2d",
    "MaskedConv3d",
    "MaskedLinear",
    "MaskedTraining",
    "MaskedWeightMixin",
    "SparseMethod",
    "apply_masks",
    "binary_masks",
    "build_sparse_method",
    "folded_state_dict",
    "format_report",
    "group_of",
    "initial_mask_logits",
    "load_mask_metadata",
    "load_masks",
    "mask_sparsity",
    "masked_modules",
    "masks_sparsity",
    "save_masks",
    "sparsity_report",
    "strip_masks",
]
