#!/usr/bin/env python3
"""Parameter summary of an ESPnet training config, without data.

Builds the model exactly as espnet2's ``ASRTask.build_model`` builds it from a
training YAML (after :func:`espnet_msrs.register`), and prints:

* parameters per group: front end (``frontend.audio``, ``frontend.video``,
  ``frontend.fusion``), ``encoder.input`` (ESPnet's ``encoder.embed``), every
  encoder block, every decoder block, and the output layers
  (``output.decoder``: the decoder's token embedding and output layer;
  ``output.ctc``: the CTC projection);
* the rank of every factorised layer (LR-SMS eq. 2; from the encoder's and
  decoder's ``linear_plan``);
* with ``--checkpoint``, the sparsity per group of the saved weights
  (:func:`espnet_msrs.sparsity.report.sparsity_report`; for a mask-search
  checkpoint the zeros are those of the binary masks ``1[φ ≥ 0]``, MSRS eq. 8);
* last, a line ``total_params: N``.

Example::

    python -m espnet_msrs.bin.model_summary --config conf/tuning/train_vsr_large.yaml
    python -m espnet_msrs.bin.model_summary --config exp/asr_x/config.yaml \\
        --checkpoint exp/asr_x/valid.acc.ave.pth

The vocabulary size comes from ``--vocab_size``, else from the YAML's
``token_list`` (a file or a list), else it is 5000 (the papers' SentencePiece
unigram vocabulary; paper configs carry no token list).

Counting conventions: ``total_params`` counts the model's parameters
(LayerScale included) except MSRS mask logits φ (``*.mask_logits``, training
state that never reaches the final model); they are printed on a line of
their own when present.  The ``--msrs_conf`` of a config (mask search, sparse
retraining) changes how a model is trained, not its architecture, and is not
applied here.

Speed: the model is built on PyTorch's ``meta`` device (shapes only; the
~170 SVDs of a paper-size low-rank model and every random initialisation are
skipped).  A checkpoint is then loaded into it with ``assign=True``, which
checks every name and shape against the config.
"""

import argparse
import collections
import logging
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, TextIO, Tuple, Union

import torch
import yaml

from espnet_msrs.utils.cli import add_log_level_argument, parse_tool_args, tool_parser

logger = logging.getLogger(__name__)

DEFAULT_VOCAB_SIZE = 5000
#: Keys of an experiment's ``config.yaml`` (ESPnet's ``main`` writes them) that
#: are not options to re-apply: run-time values, and ``config``, the training
#: YAML the run started from (re-reading it would undo command-line options).
ESPNET_RUNTIME_KEYS = ("version", "distributed", "required", "config", "print_config")
MASK_LOGITS = "mask_logits"
_EXTRA_STATE = "_extra_state"

_GROUP_ORDER = (
    "frontend.audio",
    "frontend.video",
    "frontend.fusion",
    "frontend",
    "normalize",
    "preencoder",
    "encoder.input",
    "encoder.block",
    "encoder.other",
    "postencoder",
    "decoder.block",
    "decoder.other",
    "output.decoder",
    "output.ctc",
    "other",
)


def param_group(name: str) -> str:
    """Summary group of an ESPnet ASR model parameter: the sparsity report's
    grouping at its finer level (:func:`espnet_msrs.sparsity.report.group_of`
    with ``fine=True``): ``frontend.audio`` | ``frontend.video`` |
    ``frontend.fusion`` | ``frontend`` | ``encoder.input`` |
    ``encoder.block<b>`` | ``encoder.other`` | ``decoder.block<b>`` |
    ``decoder.other`` | ``output.decoder`` | ``output.ctc`` | ``normalize`` |
    ``preencoder`` | ``postencoder`` | ``other``.
    """
    from espnet_msrs.sparsity.report import group_of

    return group_of(name, fine=True)


def _group_sort_key(group: str) -> Tuple[int, int]:
    for kind in ("encoder", "decoder"):
        prefix = f"{kind}.block"
        if group.startswith(prefix) and group[len(prefix) :].isdigit():
            return (_GROUP_ORDER.index(prefix), int(group[len(prefix) :]))
    if group in _GROUP_ORDER:
        return (_GROUP_ORDER.index(group), 0)
    return (len(_GROUP_ORDER), 0)


def _is_mask_logits(name: str) -> bool:
    return name == MASK_LOGITS or name.endswith("." + MASK_LOGITS)


def count_parameters(
    named_params: Mapping[str, torch.Tensor],
) -> Tuple["collections.OrderedDict[str, int]", int, int]:
    """Parameters per summary group.

    Args:
        named_params: Name -> parameter (``dict(model.named_parameters())``).

    Returns:
        ``(groups, total, mask_logits)``: group -> number of parameters in the
        order of the model (front end, encoder, decoder, output), the total
        without mask logits, and the number of mask-logit entries.
    """
    groups: Dict[str, int] = {}
    mask_logits = 0
    for name, param in named_params.items():
        if _is_mask_logits(name):
            mask_logits += param.numel()
            continue
        group = param_group(name)
        groups[group] = groups.get(group, 0) + param.numel()
    ordered = collections.OrderedDict(
        (g, groups[g]) for g in sorted(groups, key=_group_sort_key)
    )
    return ordered, sum(ordered.values()), mask_logits


def factorised_layers(model: torch.nn.Module) -> List[str]:
    """One line ``<name> <group> m×n rank=r (r/min(m,n)=…)`` per factorised layer.

    Reads ``linear_plan`` of the encoder and decoder (see
    :func:`espnet_msrs.layers.linear_groups.convert_block_linears`).
    """
    lines = []
    for sub, blocks in (("encoder", "encoders"), ("decoder", "decoders")):
        plan = getattr(getattr(model, sub, None), "linear_plan", None) or {}
        for name, entry in plan.items():
            if entry["type"] != "lowrank":
                continue
            m, n = entry["shape"]
            rank = entry["rank"]
            lines.append(
                f"{sub}.{blocks}.{name} {entry['group']} {m}x{n} rank={rank} "
                f"(r/min(m,n)={rank / min(m, n):.3f})"
            )
    return lines


def linear_types(model: torch.nn.Module) -> Dict[str, Dict[str, str]]:
    """Sub-model -> layer group -> linear type(s) from the ``linear_plan``s."""
    out: Dict[str, Dict[str, str]] = {}
    for sub in ("encoder", "decoder"):
        plan = getattr(getattr(model, sub, None), "linear_plan", None)
        if not plan:
            continue
        kinds: Dict[str, List[str]] = {}
        for entry in plan.values():
            seen = kinds.setdefault(entry["group"], [])
            if entry["type"] not in seen:
                seen.append(entry["type"])
        out[sub] = {group: "+".join(types) for group, types in kinds.items()}
    return out


def read_config(config: Union[str, Path]) -> Dict:
    """Load a training YAML as a dict.

    Raises:
        ValueError: Missing file, or the YAML is not a mapping.
    """
    path = Path(config)
    if not path.is_file():
        raise ValueError(f"--config {config}: no such file")
    with path.open(encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    if not isinstance(conf, dict):
        raise ValueError(
            f"--config {config}: expected a YAML mapping of training options, "
            f"got {type(conf).__name__}"
        )
    return conf


def is_training_config(config: Union[str, Path]) -> bool:
    """True for an ESPnet ASR training YAML (it chooses an encoder).

    Decoding configs (``beam_size``, ``ctc_weight``, …), SentencePiece or
    front-end-only files in a ``conf/`` directory are not training configs.
    """
    try:
        conf = read_config(config)
    except (ValueError, yaml.YAMLError):
        return False
    return "encoder" in conf or "encoder_conf" in conf


def _placeholder_token_list(vocab_size: int) -> List[str]:
    if vocab_size < 3:
        raise ValueError(
            f"--vocab_size {vocab_size}: must be >= 3 (<blank>, <unk>, <sos/eos>)"
        )
    return ["<blank>", "<unk>"] + [f"tok{i}" for i in range(vocab_size - 3)] + [
        "<sos/eos>"
    ]


def resolve_token_list(
    token_list: Union[None, str, Sequence[str]],
    vocab_size: Optional[int],
    config: Union[str, Path],
) -> Tuple[List[str], str]:
    """Token list for building the model, and where its size came from.

    Args:
        token_list: The config's ``token_list`` (file path, list or None).
        vocab_size: ``--vocab_size`` (wins when given).
        config: Config path (a relative token-list path is tried relative to
            the working directory, then to the config's directory).

    Returns:
        ``(tokens, source)``.
    """
    if vocab_size is not None:
        return _placeholder_token_list(vocab_size), "--vocab_size"
    if isinstance(token_list, (list, tuple)):
        return [str(t) for t in token_list], "token_list in the config"
    if isinstance(token_list, str):
        for candidate in (Path(token_list), Path(config).parent / token_list):
            if candidate.is_file():
                with candidate.open(encoding="utf-8") as f:
                    tokens = [line.rstrip() for line in f]
                return tokens, f"token_list file {candidate}"
        source = (
            f"default: token_list file {token_list} not found; "
            "pass --vocab_size to choose"
        )
        logger.warning(f"model_summary: {source}")
        return _placeholder_token_list(DEFAULT_VOCAB_SIZE), source
    return _placeholder_token_list(DEFAULT_VOCAB_SIZE), "default: the papers' 5000"


def build_args(
    config: Union[str, Path], vocab_size: Optional[int] = None
) -> Tuple[argparse.Namespace, str]:
    """Parse a training YAML with the espnet_msrs ASR task's parser.

    Args:
        config: Training YAML.
        vocab_size: Vocabulary size overriding the config's token list.

    Returns:
        ``(args, vocab_source)``: the namespace ``ASRTask.build_model`` takes
        (``token_list`` replaced by a list of the chosen size) and where the
        vocabulary size came from.

    Raises:
        ValueError: Unreadable config or an option the task does not know.
    """
    from espnet_msrs.register import register

    register()
    from espnet_msrs.tasks.asr import MSRSASRTask

    conf = read_config(config)
    parser = MSRSASRTask.get_parser()
    known = {action.dest for action in parser._actions}
    conf = {k: v for k, v in conf.items() if k not in ESPNET_RUNTIME_KEYS}
    unknown = sorted(k for k in conf if k not in known)
    if unknown:
        raise ValueError(
            f"--config {config}: unknown option(s) {unknown} for the espnet_msrs "
            "ASR task (python -m espnet_msrs.bin.asr_train --help lists them)"
        )
    # What ESPnet's --config does: the YAML's values become the defaults.
    parser.set_defaults(**conf)
    args = parser.parse_args([])
    args.token_list, source = resolve_token_list(args.token_list, vocab_size, config)
    return args, source


def build_model(
    config: Union[str, Path],
    vocab_size: Optional[int] = None,
    device: Union[str, torch.device] = "meta",
) -> Tuple[torch.nn.Module, argparse.Namespace, str]:
    """Build the model of a training YAML as espnet2's ``ASRTask`` does.

    Args:
        config: Training YAML.
        vocab_size: Vocabulary size (default: the config's token list, else 5000).
        device: Device to build on; ``"meta"`` builds shapes only (fast).

    Returns:
        ``(model, args, vocab_source)``.
    """
    args, source = build_args(config, vocab_size)
    from espnet2.tasks.asr import ASRTask

    with torch.device(device):
        model = ASRTask.build_model(args)
    return model, args, source


def load_checkpoint_state(path: Union[str, Path]) -> Dict[str, torch.Tensor]:
    """Model state dict from an ESPnet ``*.pth`` (``model.pth``, ``N epoch.pth``,
    ``valid.acc.ave.pth``, search ``init.pth``) or a ``checkpoint.pth``
    (``{"model": state_dict, "optimizers": …}``).

    The file is loaded with ``weights_only=True``
    (:func:`espnet_msrs.utils.safe_load.load_torch_file`): a pickle that
    would run code is refused.

    Raises:
        ValueError: Missing, truncated or unsafe file, or no state dict in it.
    """
    from espnet_msrs.utils.safe_load import load_torch_file

    state = load_torch_file(path, what="--checkpoint")
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) or k.endswith(_EXTRA_STATE)
        for k, v in state.items()
    ):
        raise ValueError(
            f"--checkpoint {path}: expected a model state dict (name -> tensor) "
            "or an ESPnet checkpoint.pth with a 'model' entry"
        )
    return dict(state)


def load_into(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str
) -> Dict[str, torch.Tensor]:
    """Load ``state`` into ``model`` (``assign=True``), checking it fits.

    Mask logits and extra state of a mask-search checkpoint that the config's
    model does not have are set aside.

    Returns:
        Binary masks ``1[φ ≥ 0]`` (weight name -> bool tensor) of every
        ``*.mask_logits`` entry in the checkpoint.

    Raises:
        ValueError: Names or shapes that do not match the config's model.
    """
    own = model.state_dict()
    masks = {}
    for name, value in state.items():
        if _is_mask_logits(name):
            weight = name[: -len(MASK_LOGITS)] + "weight"
            masks[weight] = value >= 0
    loadable = {
        k: v
        for k, v in state.items()
        if k in own
        or not (_is_mask_logits(k) or k.endswith(_EXTRA_STATE))
    }
    missing = sorted(set(own) - set(loadable))
    unexpected = sorted(set(loadable) - set(own))
    shapes = sorted(
        f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in loadable.items()
        if k in own and isinstance(v, torch.Tensor) and v.shape != own[k].shape
    )
    if missing or unexpected or shapes:
        raise ValueError(
            f"--checkpoint {path} does not fit the config's model: "
            f"missing={missing[:5]} unexpected={unexpected[:5]} "
            f"shape mismatch (checkpoint vs config)={shapes[:5]}"
        )
    model.load_state_dict(loadable, strict=True, assign=True)
    return masks


def prunable_weight_names(model: torch.nn.Module) -> List[str]:
    """Weights MSRS can prune: every Linear/Conv1d/2d/3d weight (masked or not,
    low-rank factors included)."""
    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    return [
        f"{name}.weight" if name else "weight"
        for name, module in model.named_modules()
        if isinstance(module, kinds)
    ]


def checkpoint_sparsity(
    model: torch.nn.Module, state: Mapping[str, torch.Tensor], masks: Mapping
) -> Dict:
    """:func:`sparsity_report` of a checkpoint's weights.

    With mask logits in the checkpoint the zeros are the binary masks' zeros
    over the masked weights; otherwise exact 0.0 entries of every Linear/Conv
    weight (a folded or sparse-retrained model).
    """
    from espnet_msrs.sparsity.report import sparsity_report

    own = dict(model.named_parameters())
    params = {k: v for k, v in state.items() if k in own or _is_mask_logits(k)}
    if masks:
        return sparsity_report(params, masks=masks)
    prunable = [n for n in prunable_weight_names(model) if n in params]
    return sparsity_report(params, prunable=prunable)


def summarize(
    config: Union[str, Path],
    vocab_size: Optional[int] = None,
    checkpoint: Optional[Union[str, Path]] = None,
    out: Optional[TextIO] = None,
) -> int:
    """Write the summary of a training config to ``out``; return total_params."""
    out = sys.stdout if out is None else out
    model, args, vocab_source = build_model(config, vocab_size)
    vocab = len(args.token_list)
    write = out.write
    write(f"config: {config}\n")
    write(f"vocab_size: {vocab} ({vocab_source})\n")
    for key in ("frontend", "encoder", "decoder", "model", "preprocessor"):
        conf = getattr(args, f"{key}_conf", None) or {}
        extra = f" modality={conf['modality']}" if "modality" in conf else ""
        write(f"{key}: {getattr(args, key, None)}{extra}\n")
    msrs = dict(getattr(args, "msrs_conf", None) or {})
    write(f"msrs_conf.mode: {msrs.get('mode', 'none')} (not applied here)\n")
    for sub, kinds in linear_types(model).items():
        write(f"{sub} linears: " + " ".join(f"{g}={k}" for g, k in kinds.items()) + "\n")

    masks = {}
    state = None
    if checkpoint is not None:
        state = load_checkpoint_state(checkpoint)
        masks = load_into(model, state, str(checkpoint))

    named = dict(model.named_parameters())
    groups, total, n_mask_logits = count_parameters(named)
    width = max(len(g) for g in groups) if groups else 5
    write("\nparameters per group:\n")
    for group, count in groups.items():
        write(f"  {group:<{width}} {count:>14,d}  {100 * count / total:6.2f} %\n")
    if n_mask_logits:
        write(f"  mask_logits (training only, not counted): {n_mask_logits:,d}\n")

    lines = factorised_layers(model)
    write(f"\nfactorised layers (LR-SMS): {len(lines)}\n")
    for line in lines:
        write(f"  {line}\n")

    if state is not None:
        from espnet_msrs.sparsity.report import format_report

        report = checkpoint_sparsity(model, state, masks)
        basis = "binary masks 1[phi >= 0]" if masks else "exact zeros of the weights"
        write(f"\nsparsity of {checkpoint} ({basis}):\n")
        write(format_report(report) + "\n")

    write(f"\ntotal_params_m: {total / 1e6:.2f}\n")
    write(f"total_params: {total}\n")
    return total


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser(
        "Parameters per group, ranks of factorised layers, sparsity "
        "of a checkpoint, and the total of an ESPnet training config (no data)."
    )
    parser.add_argument("--config", required=True, help="ESPnet training YAML")
    parser.add_argument(
        "--vocab_size",
        type=int,
        default=None,
        help="Vocabulary size (default: the config's token_list, else "
        f"{DEFAULT_VOCAB_SIZE})",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="Model state dict (model.pth, valid.acc.ave.pth, init.pth) or "
        "checkpoint.pth: load it and report its sparsity per group",
    )
    add_log_level_argument(parser, default="WARNING")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns total_params."""
    args = parse_tool_args(get_parser(), cmd)
    return summarize(args.config, args.vocab_size, args.checkpoint)


if __name__ == "__main__":
    main()
