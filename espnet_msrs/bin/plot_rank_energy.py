#!/usr/bin/env python3
"""Fraction of singular vectors holding 95 % of each linear's energy, by depth.

LR-SMS ("Full-Rank No More", Figs. 1 and 3) measures, for every weight matrix
``W`` (m×n) of the MHSA and FFN linears of the Conformer encoder and the
Transformer decoder, the *ratio* = (number of singular vectors needed to
approximate W to 95 %) / (number of singular values, ``min(m, n)``), and shows
it by block depth (Fig. 3) and over training (Fig. 1).  Here "95 % of W" is
95 % of its energy ``‖W‖_F² = Σσ²``: the ratio of a layer is ``k/min(m, n)``
with ``k`` the smallest count such that ``Σ_{i≤k} σ_i² ≥ e·Σσ²``
(``--energy e``, default 0.95).

Reads ESPnet checkpoints (a state dict such as ``valid.acc.ave.pth`` or
``init.pth``, or the ``model`` entry of a ``checkpoint.pth``).  A LR-SMS
low-rank layer counts as its dense equivalent ``W = U·Vᵀ`` (``lowrank_u.weight``
@ ``lowrank_v.weight``; the ratio is still over ``min(m, n)``, so it is at
most ``r/min(m, n)``); a masked layer of a mask-search checkpoint as
``θ ⊙ 1[φ ≥ 0]`` (MSRS eq. 8).  Layers are those of
:mod:`espnet_msrs.layers.linear_groups`: MHSA = attention ``linear_q/k/v/out``
and the Conformer's ``linear_pos`` (self- and source-attention), FFN = ``w_1``
and ``w_2`` of every feed-forward module.

Draws three panels: (a) encoder and (b) decoder, mean ratio of the MHSA and
FFN layers of each block vs depth ``b/B`` (one colour per checkpoint, solid
MHSA, dashed FFN); (c) the mean ratio of each of the four layer families vs
checkpoint (the evolution over a run).  Example::

    python -m espnet_msrs.bin.plot_rank_energy \\
        --checkpoint exp/asr_dense/{5,25,75}epoch.pth --out fig3.png

Checkpoints are drawn in the given order, except that names ``<N>epoch.pth``
are sorted by N when every checkpoint is named so.  The per-layer values go
to ``fig3.json`` (``--json``).
"""

import argparse
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from espnet_msrs.layers.linear_groups import linear_group
from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.figures import pyplot, save_figure, write_plot_json

logger = logging.getLogger(__name__)

_BLOCK_WEIGHT = re.compile(
    r"^(?:.*\.)?(encoder\.encoders|decoder\.decoders)\.(\d+)\.(.+?)"
    r"\.(weight|lowrank_u\.weight)$"
)
_EPOCH = re.compile(r"^(\d+)epoch$")
FAMILIES = ("encoder.mhsa", "encoder.ffn", "decoder.mhsa", "decoder.ffn")


def energy_rank(weight: torch.Tensor, energy: float = 0.95) -> Tuple[int, int]:
    """Singular vectors needed for ``energy`` of ``‖W‖_F²``, and ``min(m, n)``.

    Args:
        weight: W, (m, n), any float dtype (computed in float64).
        energy: Fraction e in (0, 1].

    Returns:
        ``(k, min(m, n))``; ``k = 0`` for an all-zero matrix.
    """
    s = torch.linalg.svdvals(weight.detach().to(torch.float64))
    total = min(weight.shape)
    sq = s.square()
    norm = float(sq.sum())
    if norm == 0.0:
        return 0, total
    cumulative = torch.cumsum(sq, 0) / norm
    # Tolerance: Σσ² of an exactly rank-k matrix must count as k, not k+1.
    k = int(torch.searchsorted(cumulative, torch.tensor(energy - 1e-12,
                                                        dtype=torch.float64))) + 1
    return min(k, total), total


def load_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Model state dict of an ESPnet checkpoint (CPU)."""
    if not path.is_file():
        raise ValueError(f"--checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip/pickle errors of a foreign file
        raise ValueError(f"--checkpoint {str(path)!r} cannot be read: {e}")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]  # ESPnet's resumable checkpoint.pth
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ValueError(f"--checkpoint {str(path)!r} is not a model state dict")
    return state


def layer_weights(state: Mapping[str, torch.Tensor]
                  ) -> List[Dict[str, Any]]:
    """The MHSA/FFN block linears of a state dict with their dense weight.

    Returns:
        One dict per layer, in state-dict order: ``name`` (module name),
        ``sub`` (encoder/decoder), ``block``, ``layer`` (name inside the
        block), ``group`` (mhsa/ffn), ``type`` (dense/lowrank/masked),
        ``rank`` (r of a low-rank layer, else None), ``weight`` (m, n).
    """
    out = []
    for key in state:
        match = _BLOCK_WEIGHT.match(key)
        if not match:
            continue
        prefix, block, inner, kind = match.groups()
        if inner.endswith(".lowrank_v"):  # read with its lowrank_u
            continue
        group = linear_group(inner)
        if group is None:
            continue
        rank = None
        if kind == "lowrank_u.weight":
            module = key[: -len(".lowrank_u.weight")]
            v_key = f"{module}.lowrank_v.weight"
            if v_key not in state:
                raise ValueError(f"checkpoint has {key} but no {v_key}")
            u, v = state[key], state[v_key]
            weight = u.double() @ v.double()  # (m, r) @ (r, n)
            layer_type, rank = "lowrank", int(u.shape[1])
        else:
            module = key[: -len(".weight")]
            weight = state[key]
            layer_type = "dense"
            mask_key = f"{module}.mask_logits"
            if mask_key in state:
                weight = weight * (state[mask_key] >= 0)
                layer_type = "masked"
        if weight.dim() != 2:
            continue
        out.append({"name": module, "sub": prefix.split(".")[0], "block": int(block),
                    "layer": inner, "group": group, "type": layer_type,
                    "rank": rank, "weight": weight})
    return out


def analyse(state: Mapping[str, torch.Tensor], energy: float) -> Dict[str, Any]:
    """Per-layer ratios and per-block / per-family means of one checkpoint."""
    layers = []
    for entry in layer_weights(state):
        weight = entry.pop("weight")
        needed, total = energy_rank(weight, energy)
        layers.append(dict(entry, shape=list(weight.shape), needed=needed,
                           total=total, ratio=needed / total))
    if not layers:
        raise ValueError("no MHSA/FFN linear of encoder.encoders.<b> or "
                         "decoder.decoders.<b> found in the checkpoint")
    by_block: Dict[str, Dict[str, Any]] = {}
    for family in FAMILIES:
        sub, group = family.split(".")
        members = [x for x in layers if x["sub"] == sub and x["group"] == group]
        if not members:
            continue
        num_blocks = max(x["block"] for x in layers if x["sub"] == sub) + 1
        blocks = sorted({x["block"] for x in members})
        means = [sum(x["ratio"] for x in members if x["block"] == b)
                 / sum(1 for x in members if x["block"] == b) for b in blocks]
        by_block[family] = {
            "blocks": blocks, "num_blocks": num_blocks,
            "depth": [b / num_blocks for b in blocks], "mean_ratio": means,
            "mean": sum(x["ratio"] for x in members) / len(members),
        }
    return {"layers": layers, "families": by_block}


def parse_checkpoint(spec: str) -> Tuple[str, Path]:
    """``label=path`` or ``path`` (label = the file stem)."""
    if "=" in spec and not Path(spec).exists():
        label, path = spec.split("=", 1)
        if not label:
            raise ValueError(f"--checkpoint {spec!r}: empty label")
        return label, Path(path)
    return Path(spec).stem, Path(spec)


def order_checkpoints(items: List[Tuple[str, Path]]) -> List[Tuple[str, Path]]:
    """Sort ``<N>epoch`` labels by N when all labels are of that form."""
    if items and all(_EPOCH.match(label) for label, _ in items):
        return sorted(items, key=lambda x: int(_EPOCH.match(x[0]).group(1)))
    return items


def plot(data: List[Dict[str, Any]], output: Path, energy: float,
         title: Optional[str] = None) -> None:
    """Draw the three panels into a PNG."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.0), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"mhsa": "-", "ffn": "--"}
    for col, sub in enumerate(("encoder", "decoder")):
        ax = axes[0][col]
        for i, ckpt in enumerate(data):
            for group in ("mhsa", "ffn"):
                fam = ckpt["families"].get(f"{sub}.{group}")
                if not fam:
                    continue
                ax.plot(fam["depth"], [100 * v for v in fam["mean_ratio"]],
                        styles[group], marker="o", markersize=3,
                        color=colors[i % len(colors)],
                        label=f"{ckpt['label']} {group.upper()}")
        ax.set_xlabel("depth b/B")
        ax.set_xlim(-0.03, 1.0)
        ax.set_ylabel(f"singular vectors for {100 * energy:g}% energy (%)")
        ax.set_title(f"({'ab'[col]}) {sub} blocks")
        ax.set_ylim(0, 100)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    ax = axes[0][2]
    x = list(range(len(data)))
    for j, family in enumerate(FAMILIES):
        values = [ckpt["families"].get(family, {}).get("mean") for ckpt in data]
        if all(v is None for v in values):
            continue
        ax.plot(x, [100 * v if v is not None else float("nan") for v in values],
                styles[family.split(".")[1]], marker="o",
                color=colors[j % len(colors)], label=family)
    ax.set_xticks(x)
    ax.set_xticklabels([c["label"] for c in data], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean ratio (%)")
    ax.set_title("(c) across checkpoints")
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, output, title)


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser(
        "Fraction of singular vectors for 95%% of the energy of every "
        "MHSA/FFN linear, by depth and across checkpoints (LR-SMS Figs. 1 and 3)"
    )
    parser.add_argument("--checkpoint", nargs="+", action="extend", required=True,
                        help="[label=]model.pth, one or more (the option may be "
                        "repeated)")
    parser.add_argument("--out", "--output", dest="out", type=Path, required=True,
                        help="PNG file")
    parser.add_argument("--json", type=Path, default=None,
                        help="data file (default: the PNG path with .json)")
    parser.add_argument("--energy", type=float, default=0.95,
                        help="fraction of Σσ² to keep, in (0, 1]")
    parser.add_argument("--title", default=None)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command-line entry point; returns the JSON data written."""
    args = parse_tool_args(get_parser(), cmd)
    if not 0.0 < args.energy <= 1.0:
        raise ValueError(f"--energy={args.energy} must be in (0, 1]")
    items = order_checkpoints([parse_checkpoint(s) for s in args.checkpoint])
    data = []
    for label, path in items:
        result = analyse(load_state_dict(path), args.energy)
        data.append({"label": label, "path": str(path), **result})
        means = " ".join(f"{k}={v['mean']:.3f}" for k, v in result["families"].items())
        logger.info(f"plot_rank_energy: checkpoint={label} layers="
                     f"{len(result['layers'])} {means}")
    plot(data, args.out, args.energy, args.title)
    out = {"energy": args.energy, "checkpoints": data}
    json_path = write_plot_json(out, args.out, args.json)
    logger.info(f"plot_rank_energy: png={args.out} json={json_path}")
    return out


if __name__ == "__main__":
    main()
