"""MSRS policy: the mask-search controller (MSRS paper, eq. 5–8, Algorithm 1).

The layers (``masked_layers.py``) are mechanism only.  This controller holds
the policy of the first loop of Algorithm 1:

* the sparsity penalty ``λ·1ᵀφ`` (eq. 7) added to the model's loss, reported
  as its own term ``mask_penalty`` next to ESPnet's ``loss_att``/``loss_ctc``,
  plus ``sparsity`` (binary-mask sparsity over masked weights) and φ
  statistics;
* the stopping criterion: after every epoch the binary mask ``1[φ ≥ 0]``
  (eq. 8) is taken and its overall sparsity recorded; the search stops when
  the change between two consecutive epochs is below ε, but not before
  ``min_search_epochs`` (our choice: the paper's pseudo-code is garbled there;
  a mask that has not started to move yet, e.g. 0 → 0, must not stop the
  search).  ``max_search_epochs`` is ESPnet's ``--max_epoch`` of the run.

Its state (the per-epoch sparsity history) is a pure function of the run and
is saved inside the model's ``state_dict`` (``get_extra_state``), so ESPnet's
checkpoint carries it and ``--resume true`` restores it exactly; every DDP rank
holds the same φ (DDP all-reduces gradients) and so takes the same decision.

Loss convention: ESPnet's ``ESPnetASRModel`` uses ``(1−γ)·L_att + γ·L_ctc``
(the convex combination of the papers' lineage, Auto-AVSR / ESPnet1); the
controller adds ``λ·Σφ`` to that loss.
"""

import logging
from typing import Dict, List, Optional

import torch

from espnet_msrs.sparsity.policy import mask_penalty, masked_modules


class MaskSearchConverged(Exception):
    """Raised by the trainer at the start of an epoch once the mask is stable."""


class MaskSearchController(torch.nn.Module):
    """Adds λ·Σφ to an ESPnet model's loss and decides when the search stops.

    Attach with :meth:`attach`; it becomes the submodule ``msrs_controller`` of
    the model (no parameters; its history lives in ``_extra_state``).

    Args:
        mask_penalty: λ of eq. 7 (sum over all mask entries, not a mean).
        epsilon: ε, threshold on the change of overall binary sparsity.
        min_search_epochs: Never stop before this many search epochs.
    """

    def __init__(
        self,
        mask_penalty: float = 2e-10,
        epsilon: float = 0.01,
        min_search_epochs: int = 2,
    ):
        super().__init__()
        if mask_penalty < 0:
            raise ValueError(
                f"msrs_conf.mask_penalty must be >= 0, got {mask_penalty}"
            )
        if epsilon <= 0:
            raise ValueError(f"msrs_conf.epsilon must be > 0, got {epsilon}")
        if min_search_epochs < 1:
            raise ValueError(
                f"msrs_conf.min_search_epochs must be >= 1, got {min_search_epochs}"
            )
        self.mask_penalty = float(mask_penalty)
        self.epsilon = float(epsilon)
        self.min_search_epochs = int(min_search_epochs)
        # history[e] = overall binary sparsity after epoch e (e = 0: at φ0).
        self.history: List[float] = []
        self.epochs: List[int] = []
        self._owner: Optional[List[torch.nn.Module]] = None

    # ------------------------------------------------------------------ state
    def get_extra_state(self):
        return {"history": list(self.history), "epochs": list(self.epochs)}

    def set_extra_state(self, state):
        self.history = [float(x) for x in state["history"]]
        self.epochs = [int(x) for x in state["epochs"]]

    # ---------------------------------------------------------------- attach
    def attach(self, model: torch.nn.Module) -> "MaskSearchController":
        """Register as ``model.msrs_controller`` and hook the model's forward."""
        if not masked_modules(model):
            raise ValueError(
                "msrs_conf.mode=search but the model has no masked layer; check "
                "msrs_conf.include/exclude"
            )
        model.add_module("msrs_controller", self)
        # A list keeps the owner out of this module's children (no cycle).
        self._owner = [model]
        model.register_forward_hook(_add_mask_terms)
        if not self.history:
            self.history.append(self.current_sparsity())
            self.epochs.append(0)
        return self

    @property
    def owner(self) -> torch.nn.Module:
        assert self._owner is not None, "controller is not attached"
        return self._owner[0]

    # ------------------------------------------------------------- measuring
    @torch.no_grad()
    def mask_statistics(self) -> Dict[str, torch.Tensor]:
        """Binary sparsity and φ statistics as 0-dim tensors (no host sync)."""
        logits = [m.mask_logits for m in masked_modules(self.owner).values()]
        total = sum(p.numel() for p in logits)
        zeros = torch.stack([(p < 0).sum() for p in logits]).sum()
        sums = torch.stack([p.float().sum() for p in logits]).sum()
        sq = torch.stack([p.float().square().sum() for p in logits]).sum()
        mean = sums / total
        var = (sq / total - mean.square()).clamp_min(0.0)
        return {
            "sparsity": zeros.float() / total,
            "phi_mean": mean,
            "phi_std": var.sqrt(),
            "phi_min": torch.stack([p.min() for p in logits]).min().float(),
            "phi_max": torch.stack([p.max() for p in logits]).max().float(),
        }

    def current_sparsity(self) -> float:
        """Fraction of zeros of the binary masks 1[φ ≥ 0] over masked weights."""
        return float(self.mask_statistics()["sparsity"])

    # ------------------------------------------------------------- decisions
    def end_epoch(self, epoch: int) -> float:
        """Record the binary sparsity after ``epoch``; returns it."""
        sparsity = self.current_sparsity()
        if self.epochs and self.epochs[-1] == epoch:  # re-validated epoch
            self.history[-1] = sparsity
        else:
            self.history.append(sparsity)
            self.epochs.append(epoch)
        delta = self.history[-1] - self.history[-2] if len(self.history) > 1 else 0.0
        logging.info(
            f"msrs mask search: epoch={epoch} sparsity={sparsity:.4f} "
            f"delta={delta:+.4f} epsilon={self.epsilon} converged={self.converged}"
        )
        return sparsity

    @property
    def converged(self) -> bool:
        """True when |s_e − s_{e−1}| < ε after at least ``min_search_epochs``."""
        if len(self.history) < 2 or self.epochs[-1] < self.min_search_epochs:
            return False
        return abs(self.history[-1] - self.history[-2]) < self.epsilon


def _add_mask_terms(model, inputs, output):
    """Forward hook: (loss, stats, weight) -> loss + λΣφ with extra stats."""
    controller = getattr(model, "msrs_controller", None)
    if controller is None or not isinstance(output, tuple) or len(output) != 3:
        return output
    loss, stats, weight = output
    penalty = controller.mask_penalty * mask_penalty(model)
    stats = dict(stats)
    stats["mask_penalty"] = penalty.detach()
    stats.update(controller.mask_statistics())
    loss = loss + penalty.to(loss.dtype)
    stats["loss"] = loss.detach()
    return loss, stats, weight


def find_controller(model: torch.nn.Module) -> Optional[MaskSearchController]:
    """The controller of a (possibly DDP-wrapped) model, if any."""
    inner = getattr(model, "module", model)
    return getattr(inner, "msrs_controller", None)
