"""Layer groups of Conformer/Transformer blocks, and making them LR-SMS low rank.

``encoder_conf``/``decoder_conf``'s ``mhsa_linear``/``ffn_linear`` choose
``dense`` or ``lowrank`` per group: the architecture.  Which weights a
sparse-training method masks is not chosen here but by ``--msrs_conf``'s
selection (:mod:`espnet_msrs.sparsity.selection`), the same for every method.

Layer groups follow DESIGN §2 / LR-SMS paper §II:

* ``mhsa``: every attention projection — ``linear_q``, ``linear_k``,
  ``linear_v``, ``linear_out`` and the Conformer's relative-position
  ``linear_pos`` — of ``self_attn`` and (decoder) ``src_attn``;
* ``ffn``: both linears (``w_1``, ``w_2``) of ``feed_forward`` and of the
  macaron ``feed_forward_macaron``.

Ranks follow eq. 2 of the LR-SMS paper: ``α_l = α_i + b·(α_f − α_i)/B`` with
``b`` the block index inside the sub-model (encoder and decoder counted
separately) and ``B`` its number of blocks; ``r_l = int(α_l·min(m, n))``.

The encoder/decoder classes build ESPnet's dense blocks first (so every weight
is initialised exactly as ESPnet initialises the dense model) and then call
:func:`convert_block_linears` from their constructor: the dense layer is the
initialiser of its low-rank replacement (SVD, LR-SMS eq. 1).  Choosing the
type at build time keeps the YAML the single source of truth: any task that
builds the model from its config gets the same architecture.
"""

import logging
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from espnet_msrs.lowrank.lowrank_linear import LOWRANK_INITS, LowRankLinear
from espnet_msrs.lowrank.rank_schedule import layer_alpha, layer_rank, parse_alpha
from espnet_msrs.sparsity.selection import replace_module

logger = logging.getLogger(__name__)

LINEAR_TYPES = ("dense", "lowrank")
LINEAR_GROUPS = ("mhsa", "ffn")

_GROUP_PATTERNS = {
    "mhsa": re.compile(
        r"^(self_attn|src_attn)\.(linear_q|linear_k|linear_v|linear_out|linear_pos)$"
    ),
    "ffn": re.compile(r"^(feed_forward|feed_forward_macaron)\.(w_1|w_2)$"),
}


def linear_group(name: str) -> Optional[str]:
    """Group (``"mhsa"``/``"ffn"``) of a linear named relative to its block."""
    for group, pattern in _GROUP_PATTERNS.items():
        if pattern.match(name):
            return group
    return None


def validate_linear_types(linear_types: Mapping[str, str], where: str) -> None:
    """Raise ValueError for an unknown group or linear type."""
    for group, kind in linear_types.items():
        if group not in LINEAR_GROUPS:
            raise ValueError(
                f"{where}: unknown layer group {group!r}; allowed: {LINEAR_GROUPS}"
            )
        if kind not in LINEAR_TYPES:
            raise ValueError(
                f"{where}: {group}_linear={kind!r} is not a linear type; "
                f"allowed: {LINEAR_TYPES}"
                + (
                    " (masks are chosen by --msrs_conf include/exclude, the same "
                    "for every sparse-training method)"
                    if kind == "masked"
                    else ""
                )
            )


def _warn_suspicious_alphas(
    parsed: Mapping[str, Tuple[float, float]], linear_types: Mapping[str, str], where: str
) -> None:
    """Valid but likely unintended α settings (issue 11 item 5)."""
    for group, (alpha_i, alpha_f) in parsed.items():
        kind = linear_types.get(group, "dense")
        if kind != "lowrank" and (alpha_i, alpha_f) != (1.0, 1.0):
            logger.warning(
                f"{where}.{group}_alpha=[{alpha_i:g}, {alpha_f:g}] has no effect: "
                f"{where}.{group}_linear is {kind!r} (α sets ranks of 'lowrank' "
                "layers only)"
            )
        elif kind == "lowrank" and alpha_i > alpha_f:
            logger.warning(
                f"{where}.{group}_alpha=[{alpha_i:g}, {alpha_f:g}]: α_i > α_f, so ranks "
                "shrink with depth; LR-SMS eq. 2 grows them (e.g. [0.1, 0.5]). "
                "Swap the two values unless this is intended"
            )


def convert_block_linears(
    blocks: Sequence[torch.nn.Module],
    linear_types: Mapping[str, str],
    alphas: Mapping[str, Union[float, Sequence[float]]],
    where: str = "encoder",
    lowrank_init: str = "svd",
) -> Dict[str, Dict[str, Union[str, int, Tuple[int, int]]]]:
    """Make the MHSA/FFN linears of ``blocks`` low rank where asked.

    Args:
        blocks: The B blocks of one sub-model (e.g. ``encoder.encoders``).
        linear_types: Group -> ``"dense"`` | ``"lowrank"``.
        alphas: Group -> α or [α_i, α_f] (used by ``"lowrank"`` groups only).
        where: Config key prefix used in error messages (``"encoder_conf"``).
        lowrank_init: Initialisation of ``"lowrank"`` layers: ``"svd"`` (LR-SMS
            eq. 1 from the dense layer ESPnet built) or ``"kaiming"`` (both
            factors He-normal, LR-SMS Fig. 4's baseline); see
            :mod:`espnet_msrs.lowrank.lowrank_linear`.

    Returns:
        Plan: layer name (relative to ``blocks``' owner, e.g. ``"3.self_attn.linear_q"``)
        -> {"group", "type", "shape" (m, n), "rank"}; dense layers are listed too.

    Raises:
        ValueError: Unknown type/group, α outside (0, 1], a rank that rounds to 0,
            or a non-dense group that matched no layer.
    """
    validate_linear_types(linear_types, where)
    if lowrank_init not in LOWRANK_INITS:
        raise ValueError(
            f"{where}.lowrank_init={lowrank_init!r} is not allowed; expected one of "
            f"{LOWRANK_INITS}"
        )
    parsed = {
        group: parse_alpha(alphas.get(group, 1.0), f"{where}.{group}_alpha")
        for group in LINEAR_GROUPS
    }
    _warn_suspicious_alphas(parsed, linear_types, where)
    num_blocks = len(blocks)
    plan: Dict[str, Dict] = {}
    matched = {group: 0 for group in LINEAR_GROUPS}
    for b, block in enumerate(blocks):
        for name, module in list(block.named_modules()):
            group = linear_group(name)
            if group is None or type(module) is not torch.nn.Linear:
                continue
            matched[group] += 1
            kind = linear_types.get(group, "dense")
            m, n = module.out_features, module.in_features
            entry = {"group": group, "type": kind, "shape": (m, n), "rank": min(m, n)}
            if kind == "lowrank":
                alpha_i, alpha_f = parsed[group]
                alpha = layer_alpha(alpha_i, alpha_f, b, num_blocks)
                rank = layer_rank(alpha, m, n, f"{where}.{group}_alpha")
                replace_module(
                    block, name, LowRankLinear.from_linear(module, rank, lowrank_init)
                )
                entry["rank"] = rank
            plan[f"{b}.{name}"] = entry
    for group, kind in linear_types.items():
        if kind != "dense" and matched[group] == 0:
            raise ValueError(
                f"{where}: {group}_linear={kind!r} matched no layer in {num_blocks} "
                "blocks (expected attention linear_q/k/v/out/pos or feed-forward "
                "w_1/w_2 linears)"
            )
    return plan


def rank_summary(plan: Mapping[str, Mapping]) -> List[str]:
    """Human-readable lines ``name type m×n rank`` for a conversion plan."""
    lines = []
    for name, entry in plan.items():
        m, n = entry["shape"]
        lines.append(f"{name} {entry['type']} {m}x{n} rank={entry['rank']}")
    return lines
