"""Artifacts of an MSRS mask search (recipe stage 8 output).

Written into the search's experiment directory:

* ``mask.pth`` — binary masks m* = 1[φ_j ≥ 0] (eq. 8), weight name -> bool
  tensor, in :func:`espnet_msrs.sparsity.policy.save_masks` format (read with
  ``load_masks``); its metadata holds the search summary (stop reason, final
  epoch, sparsity history, λ, ε);
* ``init.pth`` — θ0 = θ_j ⊙ m*, a plain state dict (no mask logits) that the
  retraining run loads with ESPnet's ``--init_param``;
* ``sparsity_report.json`` — per parameter, per group and overall sparsity
  (over prunable weights and over all parameters), plus the per-epoch history
  and why the search stopped;
* ``sparsity_groups.png`` — sparsity per module group (MSRS Fig. 3 layout);
* ``phi_hist.png`` — histogram of the final mask logits φ.
"""

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict

import torch

from espnet_msrs.sparsity.policy import (
    binary_masks,
    folded_state_dict,
    masked_modules,
    save_masks,
)
from espnet_msrs.sparsity.report import model_sparsity_report

logger = logging.getLogger(__name__)


def _atomic_torch_save(obj, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def plot_group_sparsity(groups: Dict[str, float], path: Path, title: str) -> None:
    """Bar plot of sparsity per module group (MSRS Fig. 3 layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names)), 3.5))
    ax.bar(range(len(names)), [100 * groups[n] for n in names], color="tab:blue")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("sparsity [%]")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_phi_histogram(model: torch.nn.Module, path: Path) -> Dict[str, list]:
    """Histogram of all mask logits; returns the bins and counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def write_search_artifacts(model, controller, out_dir: Path, stop_reason: str) -> Dict:
    """Write mask, θ_j ⊙ m*, report and plots of a finished mask search.

    Args:
        model: The ESPnet model with masked layers (not wrapped in DDP).
        controller: Its :class:`MaskSearchController` (history, λ, ε).
        out_dir: The search's output directory.
        stop_reason: ``converged``, ``max_epoch`` or ``stopped``.

    Returns:
        The report written to ``sparsity_report.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = list(controller.epochs)
    search = {
        "stop_reason": stop_reason,
        "final_epoch": epochs[-1] if epochs else 0,
        "epochs": epochs,
        "sparsity_history": list(controller.history),
        "epsilon": controller.epsilon,
        "mask_penalty": controller.mask_penalty,
        "min_search_epochs": controller.min_search_epochs,
    }
    masks = binary_masks(model)
    tmp_mask = out_dir / "mask.pth.tmp"
    save_masks(masks, tmp_mask, metadata=search)
    os.replace(tmp_mask, out_dir / "mask.pth")
    state = folded_state_dict(model)
    state = type(state)(
        (k, v) for k, v in state.items() if not k.startswith("msrs_controller.")
    )
    _atomic_torch_save(state, out_dir / "init.pth")
    report = model_sparsity_report(model)
    report["search"] = search
    report["phi_histogram"] = plot_phi_histogram(model, out_dir / "phi_hist.png")
    groups = {name: g["prunable"]["sparsity"] for name, g in report["groups"].items()
              if g["prunable"]["numel"] > 0}
    plot_group_sparsity(
        groups,
        out_dir / "sparsity_groups.png",
        f"MSRS sparsity per group\noverall {100 * report['prunable']['sparsity']:.1f}% "
        f"of prunable weights, {100 * report['all_params']['sparsity']:.1f}% of all "
        "parameters",
    )
    _atomic_write_text(json.dumps(report, indent=2), out_dir / "sparsity_report.json")
    logger.info(
        f"msrs mask search artifacts: dir={out_dir} stop_reason={stop_reason} "
        f"epoch={search['final_epoch']} "
        f"sparsity_prunable={report['prunable']['sparsity']:.4f} "
        f"sparsity_all={report['all_params']['sparsity']:.4f}"
    )
    return report
