"""Sparsity reports of MSRS models (Fernandez-Lopez et al., Interspeech 2024).

Sparsity is reported per parameter, per module group (the paper's Fig. 3:
frontend, encoder blocks, decoder blocks, ...) and overall, both over the
prunable (masked) weights and over all parameters (the paper's "39.7 %" is
over all parameters: 250 M -> 151 M). Only prunable weights contribute zeros;
biases, norm parameters and embeddings count in the totals with no zeros, and
``mask_logits`` are never counted.
"""

import re
from typing import Any, Collection, Dict, Mapping, Optional

import torch
from torch import nn

from espnet_msrs.sparsity.masked_layers import MaskedWeightMixin
from espnet_msrs.sparsity.folding import binary_masks
from espnet_msrs.sparsity.selection import MASKED_CLASSES

_ENCODER_BLOCK = re.compile(r"^encoder\.encoders\.(\d+)\.")
_DECODER_BLOCK = re.compile(r"^decoder\.decoders\.(\d+)\.")
_GROUP_ORDER = ("frontend", "fusion", "encoder.input", "encoder.block",
                "encoder.other", "decoder.block", "decoder.other", "output", "other")


#: The finer groups of ``group_of(..., fine=True)`` (the model summary's
#: table): parameter-name prefix -> group, first match wins.
_FINE_PREFIXES = (
    ("frontend.audio_frontend.", "frontend.audio"),
    ("frontend.video_frontend.", "frontend.video"),
    ("frontend.fusion.", "frontend.fusion"),
    ("decoder.embed.", "output.decoder"),
    ("decoder.output_layer.", "output.decoder"),
    ("ctc.", "output.ctc"),
)
_FINE_HEADS = ("normalize", "preencoder", "postencoder")


def group_of(param_name: str, fine: bool = False) -> str:
    """Module group of an ESPnet ASR model parameter: the one grouping of
    parameters used by the sparsity reports (MSRS Fig. 3) and, with
    ``fine=True``, by ``model_summary``'s parameter table.

    Rules, first match wins: ``fusion`` anywhere -> ``fusion``;
    ``frontend.`` -> ``frontend``; ``encoder.embed.`` -> ``encoder.input``;
    ``encoder.encoders.<b>.`` -> ``encoder.block<b>``;
    ``decoder.decoders.<b>.`` -> ``decoder.block<b>``; ``ctc.``,
    ``decoder.output_layer``, ``decoder.embed`` -> ``output``; other
    ``encoder.``/``decoder.`` -> ``encoder.other``/``decoder.other``;
    anything else -> ``other``. ``fine=True`` first splits the front end
    (``frontend.audio|video|fusion``) and the output layers
    (``output.decoder|ctc``) and names ESPnet's ``normalize``,
    ``preencoder`` and ``postencoder``.

    Args:
        param_name: Parameter name relative to the ESPnet model.
        fine: The model summary's finer groups.

    Returns:
        Group name.
    """
    if fine:
        for prefix, group in _FINE_PREFIXES:
            if param_name.startswith(prefix):
                return group
        if param_name.split(".")[0] in _FINE_HEADS:
            return param_name.split(".")[0]
    if "fusion" in param_name:
        return "fusion"
    if param_name.startswith("frontend."):
        return "frontend"
    if param_name.startswith("encoder.embed."):
        return "encoder.input"
    match = _ENCODER_BLOCK.match(param_name)
    if match:
        return f"encoder.block{int(match.group(1))}"
    match = _DECODER_BLOCK.match(param_name)
    if match:
        return f"decoder.block{int(match.group(1))}"
    if param_name.startswith(("ctc.", "decoder.output_layer", "decoder.embed")):
        return "output"
    if param_name.startswith("encoder."):
        return "encoder.other"
    if param_name.startswith("decoder."):
        return "decoder.other"
    return "other"


def _group_sort_key(group: str) -> tuple:
    match = re.match(r"^(encoder|decoder)\.block(\d+)$", group)
    if match:
        return (_GROUP_ORDER.index(f"{match.group(1)}.block"), int(match.group(2)))
    if group in _GROUP_ORDER:
        return (_GROUP_ORDER.index(group), 0)
    return (len(_GROUP_ORDER), 0)


def _stats(numel: int, zeros: int) -> Dict[str, Any]:
    return {
        "numel": numel,
        "zeros": zeros,
        "nonzeros": numel - zeros,
        "sparsity": zeros / numel if numel else 0.0,
    }


def _is_mask_logits(name: str) -> bool:
    return name == "mask_logits" or name.endswith(".mask_logits")


def sparsity_report(
    named_params: Mapping[str, torch.Tensor],
    masks: Optional[Mapping[str, torch.Tensor]] = None,
    prunable: Optional[Collection[str]] = None,
) -> Dict[str, Any]:
    """Sparsity per parameter, per group and overall (JSON-serialisable).

    Args:
        named_params: Parameter name -> tensor (e.g. ``model.named_parameters()``
            as a dict or a state dict); ``*mask_logits`` entries are ignored.
        masks: Weight name -> bool mask. When given, the prunable weights are
            exactly the masked ones and their zeros are the mask's zeros.
            When None, zeros are the exact 0.0 entries of the prunable
            weights (a folded sparse model).
        prunable: Names of the prunable weights when ``masks`` is None; by
            default every ``*weight`` with ``dim >= 2`` (which also takes in
            embedding tables: pass the names for an exact count, as
            :func:`model_sparsity_report` does).

    Returns:
        ``{"params": {name: {numel, zeros, nonzeros, sparsity, group,
        prunable}}, "groups": {group: {"prunable": stats, "all_params":
        stats}}, "prunable": stats, "all_params": stats}`` where ``stats`` is
        ``{numel, zeros, nonzeros, sparsity}``.
    """
    params = {n: p for n, p in named_params.items() if not _is_mask_logits(n)}
    named = (("mask(s)", masks) if masks is not None
             else ("prunable name(s)", prunable) if prunable is not None else None)
    if named is not None:
        what, names = named
        unknown = sorted(set(names) - set(params))
        if unknown:
            raise ValueError(f"{what} {unknown[:5]} name no parameter of the report")
        prunable_names = set(names)
    else:
        prunable_names = {
            n for n, p in params.items() if n.endswith("weight") and p.dim() >= 2
        }

    per_param: Dict[str, Any] = {}
    totals = {"prunable": [0, 0], "all_params": [0, 0]}
    groups: Dict[str, Dict[str, list]] = {}
    for name, tensor in params.items():
        numel = int(tensor.numel())
        is_prunable = name in prunable_names
        zeros = 0
        if is_prunable:
            if masks is not None:
                mask = masks[name]
                if tuple(mask.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"mask {name!r} has shape {tuple(mask.shape)}, parameter "
                        f"has {tuple(tensor.shape)}"
                    )
                zeros = int((~mask.bool()).sum())
            else:
                zeros = int((tensor.detach() == 0).sum())
        group = group_of(name)
        per_param[name] = dict(_stats(numel, zeros), group=group, prunable=is_prunable)
        acc = groups.setdefault(group, {"prunable": [0, 0], "all_params": [0, 0]})
        keys = ("prunable", "all_params") if is_prunable else ("all_params",)
        for key in keys:
            acc[key][0] += numel
            acc[key][1] += zeros
            totals[key][0] += numel
            totals[key][1] += zeros

    return {
        "params": per_param,
        "groups": {
            g: {k: _stats(*v) for k, v in groups[g].items()}
            for g in sorted(groups, key=_group_sort_key)
        },
        "prunable": _stats(*totals["prunable"]),
        "all_params": _stats(*totals["all_params"]),
    }


def model_sparsity_report(model: nn.Module) -> Dict[str, Any]:
    """:func:`sparsity_report` of a model.

    With masked layers, the prunable weights are the masked ones and zeros
    come from their binary masks ``1[φ ≥ 0]``. Without, the prunable weights
    are the weights of the Linear/Conv layers, and zeros are exact 0.0.

    Args:
        model: Model (not wrapped in DDP).

    Returns:
        The report dict.
    """
    named = dict(model.named_parameters())
    masks = binary_masks(model)
    if masks:
        return sparsity_report(named, masks=masks)
    prunable = [
        f"{name}.weight" if name else "weight"
        for name, module in model.named_modules()
        if isinstance(module, tuple(MASKED_CLASSES))
        and not isinstance(module, MaskedWeightMixin)
    ]
    return sparsity_report(named, prunable=[n for n in prunable if n in named])


def format_report(report: Mapping[str, Any]) -> str:
    """Plain-text table of a report: one row per group, then the totals.

    Args:
        report: Output of :func:`sparsity_report`.

    Returns:
        Multi-line table (no trailing newline).
    """
    header = (
        f"{'group':<18} {'prunable':>12} {'zeros':>12} {'sparsity':>9} "
        f"{'all params':>12} {'nonzeros':>12} {'sparsity':>9}"
    )
    lines = [header, "-" * len(header)]

    def row(name: str, entry: Mapping[str, Any]) -> str:
        pr, al = entry["prunable"], entry["all_params"]
        return (
            f"{name:<18} {pr['numel']:>12,d} {pr['zeros']:>12,d} "
            f"{100 * pr['sparsity']:>8.2f}% {al['numel']:>12,d} "
            f"{al['nonzeros']:>12,d} {100 * al['sparsity']:>8.2f}%"
        )

    for group, entry in report["groups"].items():
        lines.append(row(group, entry))
    lines.append("-" * len(header))
    totals = {"prunable": report["prunable"], "all_params": report["all_params"]}
    lines.append(row("total", totals))
    return "\n".join(lines)
