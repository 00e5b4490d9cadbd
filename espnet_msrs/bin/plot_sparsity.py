#!/usr/bin/env python3
"""Plot MSRS sparsity per module group of one or more runs (MSRS Fig. 3).

MSRS (Fernandez-Lopez et al., Interspeech 2024) Fig. 3 shows, for several
pruning methods, the sparsity of the front end, of an encoder block and of a
decoder block (block averages), non-prunable layers excluded.  This tool reads
the ``sparsity_report.json`` files written by the mask search (the output of
:func:`espnet_msrs.sparsity.report.sparsity_report`) and draws:

1. sparsity of the prunable weights per module group — ``frontend``,
   ``fusion``, ``encoder.input``, **encoder block (average)**, ``encoder.other``,
   **decoder block (average)**, ``decoder.other``, ``output``, ``other`` (groups
   without prunable weights in every report are left out), one bar per report;
2. and 3. sparsity of each layer of an encoder block and of a decoder block
   (e.g. ``self_attn.linear_q``, ``feed_forward.w_1``,
   ``conv_module.pointwise_conv1``), averaged over the blocks (when the
   reports carry their per-parameter entries).

A block average pools the blocks: Σ zeros / Σ prunable weights over all
encoder (decoder) blocks.  Example::

    python -m espnet_msrs.bin.plot_sparsity \\
        --report msrs=exp/avsr_msrs/mask_search/sparsity_report.json \\
        --report exp/vsr_msrs/mask_search/sparsity_report.json --out fig3.png

writes ``fig3.png`` and the plotted numbers to ``fig3.json`` (``--json``).

MSRS Fig. 3 itself (MSRS, ERK — the per-layer sparsity SET, RigL and CHASE
start from and SET/RigL keep — and GMP), from the experiment directories of
the recipes (``--run`` reads ``<exp>/mask_search/sparsity_report.json`` of an
MSRS run, else ``<exp>/train/sparsity_report.json``), first panel limited to
the paper's three groups::

    python -m espnet_msrs.bin.plot_sparsity --run msrs=exp/vsr_msrs_sparse \\
        --run erk=exp/vsr_rigl --run gmp=exp/vsr_gmp \\
        --groups frontend encoder.block decoder.block --out fig3.png
"""

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.figures import pyplot, save_figure, write_plot_json

logger = logging.getLogger(__name__)

#: Fig. 3 groups in drawing order; block groups are pooled over blocks.
GROUP_ORDER: Tuple[str, ...] = (
    "frontend", "fusion", "encoder.input", "encoder.block", "encoder.other",
    "decoder.block", "decoder.other", "output", "other",
)
GROUP_LABELS = {"encoder.block": "encoder block (avg)",
                "decoder.block": "decoder block (avg)"}
_BLOCK_GROUP = re.compile(r"^(encoder|decoder)\.block\d+$")
_BLOCK_PARAM = re.compile(r"^(encoder\.encoders|decoder\.decoders)\.(\d+)\.(.+)$")


def _pooled(entries: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    numel = sum(int(e["numel"]) for e in entries)
    zeros = sum(int(e["zeros"]) for e in entries)
    return {"numel": numel, "zeros": zeros,
            "sparsity": zeros / numel if numel else None}


def fig3_groups(report: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Prunable and all-parameter sparsity per Fig. 3 group of one report.

    Args:
        report: A :func:`sparsity_report` dict.

    Returns:
        Group (of :data:`GROUP_ORDER`) -> ``{"prunable": {numel, zeros,
        sparsity}, "all_params": {...}}``; block groups pooled over blocks.
    """
    if "groups" not in report:
        raise ValueError("report has no 'groups' (expected the output of "
                         "espnet_msrs.sparsity.report.sparsity_report)")
    members: Dict[str, List[Mapping[str, Any]]] = {}
    for name, entry in report["groups"].items():
        match = _BLOCK_GROUP.match(name)
        key = f"{match.group(1)}.block" if match else name
        if key not in GROUP_ORDER:
            key = "other"
        members.setdefault(key, []).append(entry)
    return {
        key: {kind: _pooled([e[kind] for e in members[key]])
              for kind in ("prunable", "all_params")}
        for key in GROUP_ORDER if key in members
    }


def block_layers(report: Mapping[str, Any], sub: str) -> Dict[str, Dict[str, Any]]:
    """Prunable sparsity of each layer of an ``encoder``/``decoder`` block,
    pooled over blocks (from the report's per-parameter entries).

    Args:
        report: A :func:`sparsity_report` dict.
        sub: ``"encoder"`` or ``"decoder"``.

    Returns:
        Layer (parameter name inside the block without ``.weight``, e.g.
        ``self_attn.linear_q``) -> ``{numel, zeros, sparsity, blocks}``, in
        the order of the report; empty if the report has no ``params``.
    """
    members: Dict[str, List[Mapping[str, Any]]] = {}
    blocks: Dict[str, set] = {}
    for name, entry in report.get("params", {}).items():
        match = _BLOCK_PARAM.match(name)
        if not match or not entry.get("prunable") or not match.group(1).startswith(sub):
            continue
        layer = match.group(3)
        layer = layer[: -len(".weight")] if layer.endswith(".weight") else layer
        members.setdefault(layer, []).append(entry)
        blocks.setdefault(layer, set()).add(int(match.group(2)))
    return {layer: dict(_pooled(entries), blocks=len(blocks[layer]))
            for layer, entries in members.items()}


def parse_report(spec: str) -> Tuple[Optional[str], Path]:
    """``label=path`` or ``path`` (label chosen later)."""
    if "=" in spec and not Path(spec).exists():
        label, path = spec.split("=", 1)
        if not label:
            raise ValueError(f"--report {spec!r}: empty label")
        return label, Path(path)
    return None, Path(spec)


def default_labels(paths: Sequence[Path]) -> List[str]:
    """Shortest distinct parent-directory suffixes (``exp/a/mask_search`` ->
    ``a/mask_search`` if ``mask_search`` alone is ambiguous)."""
    parents = [p.resolve().parent.parts for p in paths]
    for depth in range(1, max(len(p) for p in parents) + 1):
        labels = ["/".join(p[-depth:]) or str(path) for p, path in zip(parents, paths)]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


#: Where ``--run <exp dir>`` finds a run's report, in order of preference.
RUN_REPORTS: Tuple[str, ...] = ("mask_search/sparsity_report.json",
                                "train/sparsity_report.json")


def run_report(spec: str) -> str:
    """``[label=]<exp dir>`` -> ``[label=]<its sparsity_report.json>``.

    Raises:
        ValueError: The directory has none of :data:`RUN_REPORTS`.
    """
    label, path = parse_report(spec)
    for rel in RUN_REPORTS:
        report = path / rel
        if report.is_file():
            return f"{label or path.name}={report}"
    raise ValueError(
        f"--run {spec!r}: no sparsity report in {str(path)!r} (looked for "
        f"{', '.join(RUN_REPORTS)}; run stage 8 or 9 of the recipe first)"
    )


def load_reports(specs: Sequence[str]) -> List[Dict[str, Any]]:
    """Read the reports; returns JSON-ready dicts of the plotted data."""
    parsed = [parse_report(s) for s in specs]
    defaults = default_labels([p for _, p in parsed])
    out = []
    for (label, path), default in zip(parsed, defaults):
        if not path.is_file():
            raise ValueError(f"--report {str(path)!r} does not exist")
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"--report {str(path)!r} is not JSON: {e}")
        if not isinstance(report, dict) or "groups" not in report:
            raise ValueError(f"--report {str(path)!r} is not a sparsity report "
                             "(no 'groups'; see espnet_msrs.sparsity.report)")
        out.append({
            "label": label or default,
            "path": str(path),
            "overall": {"prunable": report.get("prunable", {}).get("sparsity"),
                        "all_params": report.get("all_params", {}).get("sparsity")},
            "groups": fig3_groups(report),
            "encoder_block_layers": block_layers(report, "encoder"),
            "decoder_block_layers": block_layers(report, "decoder"),
        })
    return out


def _bar_panel(ax: Any, categories: List[str], runs: List[Dict[str, Any]],
               values: List[List[Optional[float]]], title: str) -> None:
    import numpy as np

    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(categories))
    for i, run in enumerate(runs):
        heights = [100.0 * v if v is not None else 0.0 for v in values[i]]
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, heights, width,
               label=run["label"])
    ax.set_xticks(x)
    ax.set_xticklabels(categories, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("sparsity of prunable weights (%)")
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.grid(True, axis="y", alpha=0.3)


def plot(data: List[Dict[str, Any]], output: Path, title: Optional[str] = None,
         only_groups: Optional[Sequence[str]] = None) -> Dict[str, List[str]]:
    """Draw the panels into a PNG; returns the categories of each panel.

    Args:
        data: :func:`load_reports` output.
        output: PNG path.
        title: Figure title.
        only_groups: Groups of the first panel (default: every group with
            prunable weights), in :data:`GROUP_ORDER`.
    """
    plt = pyplot()

    groups = [g for g in GROUP_ORDER
              if any(r["groups"].get(g, {}).get("prunable", {}).get("numel", 0) > 0
                     for r in data)
              and (only_groups is None or g in only_groups)]
    panels: List[Tuple[str, List[str], str]] = [("groups", groups, "module groups")]
    for sub in ("encoder", "decoder"):
        layers: List[str] = []
        for run in data:
            for layer in run[f"{sub}_block_layers"]:
                if layer not in layers:
                    layers.append(layer)
        if layers:
            panels.append((f"{sub}_block_layers", layers, f"{sub} block (avg)"))
    widths = [max(len(cats), 2) for _, cats, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.0 + 0.55 * sum(widths)
                                                      + 1.2 * len(panels), 4.2),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (key, cats, panel_title) in zip(axes[0], panels):
        if key == "groups":
            values = [[r["groups"].get(g, {}).get("prunable", {}).get("sparsity")
                       for g in cats] for r in data]
            labels = [GROUP_LABELS.get(g, g) for g in cats]
        else:
            values = [[r[key].get(c, {}).get("sparsity") for c in cats] for r in data]
            labels = cats
        _bar_panel(ax, labels, data, values, panel_title)
    axes[0][0].legend(fontsize=8)
    save_figure(fig, output, title)
    return {key: cats for key, cats, _ in panels}


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser("Sparsity per module group of MSRS runs (MSRS Fig. 3 layout)")
    parser.add_argument("--report", nargs="+", action="extend", default=[],
                        help="[label=]sparsity_report.json, one or more (the "
                        "option may be repeated)")
    parser.add_argument("--run", nargs="+", action="extend", default=[],
                        help="[label=]experiment dir (exp/<tag>): its "
                        f"{' or '.join(RUN_REPORTS)}; label default: the dir name")
    parser.add_argument("--groups", nargs="+", default=None, choices=GROUP_ORDER,
                        help="groups of the first panel (MSRS Fig. 3: frontend "
                        "encoder.block decoder.block); default: all with prunable "
                        "weights")
    parser.add_argument("--out", "--output", dest="out", type=Path, required=True,
                        help="PNG file")
    parser.add_argument("--json", type=Path, default=None,
                        help="data file (default: the PNG path with .json)")
    parser.add_argument("--title", default=None)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command-line entry point; returns the JSON data written."""
    parser = get_parser()
    args = parse_tool_args(parser, cmd)
    if not args.report and not args.run:
        parser.error("give at least one --report or --run")
    specs = list(args.report) + [run_report(spec) for spec in args.run]
    data = load_reports(specs)
    panels = plot(data, args.out, args.title, args.groups)
    result = {"panels": panels, "reports": data}
    json_path = write_plot_json(result, args.out, args.json)
    for run in data:
        logger.info(f"plot_sparsity: report={run['label']} "
                     f"prunable_sparsity={run['overall']['prunable']} "
                     f"groups={len(run['groups'])}")
    logger.info(f"plot_sparsity: png={args.out} json={json_path}")
    return result


if __name__ == "__main__":
    main()
