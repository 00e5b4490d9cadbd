"""Artifacts of a sparse-training run, in one format for every method.

Written by rank 0 into the run's output directory when training ends
(:meth:`espnet_msrs.sparsity.sparse_method.SparseMethod.write_artifacts`):

* ``mask.pth`` — the binary masks (weight name -> bool tensor,
  :mod:`espnet_msrs.sparsity.mask_file` format); for the MSRS search
  m* = 1[φ_j ≥ 0] (eq. 8), for the other methods their final masks; its
  metadata holds the method's summary;
* ``sparsity_report.json`` — :func:`espnet_msrs.sparsity.report.sparsity_report`
  of those masks (per parameter, per group, over prunable weights and over
  all parameters) plus ``method``, ``stop_reason`` and a method section
  (``search``: the per-epoch sparsity history, why the search stopped;
  ``training``: the steps and mask updates of the other methods);
* ``sparsity_groups.png`` — sparsity per module group (MSRS Fig. 3 layout);
* MSRS search only: ``init.pth`` — θ0 = θ_j ⊙ m*, a plain ESPnet state dict
  (no mask logits) that the retraining loads with ``--init_param``, and
  ``phi_hist.png`` — the histogram of the final mask logits φ.
"""

import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch

from espnet_msrs.sparsity.folding import binary_masks, folded_state_dict
from espnet_msrs.sparsity.mask_file import save_masks
from espnet_msrs.sparsity.report import sparsity_report
from espnet_msrs.sparsity.selection import masked_modules
from espnet_msrs.utils import atomic
from espnet_msrs.utils.figures import pyplot, save_figure

logger = logging.getLogger(__name__)


def plot_group_sparsity(groups: Dict[str, float], path: Path, title: str) -> None:
    """Bar plot of sparsity per module group (MSRS Fig. 3 layout)."""
    plt = pyplot()

    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names)), 3.5))
    ax.bar(range(len(names)), [100 * groups[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("sparsity [%]")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    save_figure(fig, path, dpi=100)


def plot_phi_histogram(model: torch.nn.Module, path: Path) -> Dict[str, list]:
    """Histogram of all mask logits; returns the bins and counts."""
    plt = pyplot()

    logits = torch.cat(
        [
            m.mask_logits.detach().float().flatten()
            for m in masked_modules(model).values()
        ]
    )
    counts, edges = torch.histogram(logits.cpu(), bins=100)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(edges[:-1].numpy(), counts.numpy(), width=(edges[1] - edges[0]).item(),
           align="edge")
    ax.axvline(0.0, color="red", linestyle="--", linewidth=1)
    ax.set_xlabel("mask logit φ")
    ax.set_ylabel("count")
    ax.set_yscale("log")
    ax.set_title("MSRS mask logits (φ < 0 is pruned)")
    save_figure(fig, path, dpi=100)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def write_sparsity_artifacts(
    model: torch.nn.Module,
    masks: Mapping[str, torch.Tensor],
    method: str,
    section: str,
    summary: Mapping[str, Any],
    out_dir: Path,
    extra: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """Write ``mask.pth``, ``sparsity_report.json`` and the group plot.

    Args:
        model: The ESPnet model (not wrapped in DDP).
        masks: Weight name -> bool mask (True = kept).
        method: ``msrs_conf.mode`` of the run.
        section: Key of the method's summary in the report
            (``search`` / ``training``).
        summary: The method's summary; must hold ``stop_reason``.
        out_dir: The run's output directory.
        extra: More top-level entries of the report.

    Returns:
        The report written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = dict(summary)
    save_masks(masks, out_dir / "mask.pth", metadata={"method": method, **summary})
    report = {
        "method": method,
        "stop_reason": summary["stop_reason"],
        **sparsity_report(dict(model.named_parameters()), masks=masks),
        section: summary,
        **dict(extra or {}),
    }
    groups = {name: g["prunable"]["sparsity"] for name, g in report["groups"].items()
              if g["prunable"]["numel"] > 0}
    plot_group_sparsity(
        groups,
        out_dir / "sparsity_groups.png",
        f"{method}: sparsity per group\noverall "
        f"{100 * report['prunable']['sparsity']:.1f}% of prunable weights, "
        f"{100 * report['all_params']['sparsity']:.1f}% of all parameters",
    )
    atomic.write_json(out_dir / "sparsity_report.json", report, indent=2)
    logger.info(
        f"sparsity artifacts: dir={out_dir} method={method} "
        f"stop_reason={summary['stop_reason']} "
        f"sparsity_prunable={report['prunable']['sparsity']:.4f} "
        f"sparsity_all={report['all_params']['sparsity']:.4f}"
    )
    return report


def write_search_artifacts(
    model: torch.nn.Module, search: Mapping[str, Any], out_dir: Path
) -> Dict[str, Any]:
    """Artifacts of a finished MSRS mask search (recipe stage 8 output).

    Args:
        model: The ESPnet model with masked layers (not wrapped in DDP).
        search: :meth:`MSRSSearch.summary` (stop reason, history, λ, ε).
        out_dir: The search's output directory.

    Returns:
        The report written to ``sparsity_report.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.torch_save(folded_state_dict(model), out_dir / "init.pth")
    histogram = plot_phi_histogram(model, out_dir / "phi_hist.png")
    return write_sparsity_artifacts(
        model, binary_masks(model), "search", "search", search, out_dir,
        extra={"phi_histogram": histogram},
    )
