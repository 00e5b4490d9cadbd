"""Binary mask files (``mask.pth``): written by every sparse-training run.

The MSRS mask search writes its m* = 1[φ_j ≥ 0] (eq. 8) here for the
retraining to read (``msrs_conf.mask_file``); the other methods write their
final masks in the same format, so one reader serves every method.

A file holds ``{"format", "version", "masks", "metadata"}``: weight name ->
bool tensor (on CPU), and JSON-serialisable metadata that always includes
``num_masks``, ``numel``, ``zeros`` and ``sparsity``.  It loads with
``torch.load(..., weights_only=True)``.
"""

import json
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch
from typeguard import typechecked

from espnet_msrs.sparsity.folding import masks_sparsity
from espnet_msrs.utils import atomic
from espnet_msrs.utils.safe_load import load_torch_file

MASK_FILE_FORMAT = "espnet_msrs.sparsity.masks"
MASK_FILE_VERSION = 1


@typechecked
def save_masks(
    masks: Mapping[str, torch.Tensor],
    path: Union[str, Path],
    metadata: Optional[Mapping[str, Any]] = None,
) -> None:
    """Write binary masks atomically (parent directories are created).

    Args:
        masks: Weight name -> bool tensor.
        path: Output file.
        metadata: Extra JSON-serialisable information (stop reason, λ, ...).

    Raises:
        ValueError: A mask is not bool, or the metadata is not JSON.
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
    atomic.torch_save(payload, path)


def _load_mask_file(path: Union[str, Path]) -> Dict[str, Any]:
    path = Path(path)
    payload = load_torch_file(path, what="mask file")  # ValueError naming it
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
    """Masks written by :func:`save_masks`: weight name -> bool tensor (CPU)."""
    return dict(_load_mask_file(path)["masks"])


def load_mask_metadata(path: Union[str, Path]) -> Dict[str, Any]:
    """Metadata stored by :func:`save_masks` (``sparsity``, ``numel``, ...)."""
    return dict(_load_mask_file(path)["metadata"])
