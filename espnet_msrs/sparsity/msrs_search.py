"""The MSRS mask search (MSRS paper, eqs. 3–8, Algorithm 1 first loop).

:class:`MSRSSearch` (``msrs_conf.mode: search``) is the sparse-training
method that learns the mask:

* **layers** — the selected Linear/Conv layers become masked layers
  (:mod:`espnet_msrs.sparsity.masked_layers`: mask logits φ with eq. 3's
  initialisation, forward ``θ ⊙ σ(τ_f·φ)``, the two-temperature backward);
  φ is trained by the second optimizer (``--optim2``, no weight decay);
* **penalty** — two readings of the paper, chosen by ``penalty_mode``:

  - ``loss`` (default; eq. 7): ``λ·1ᵀφ`` is added to the model's loss (a
    sum over all mask entries, not a mean), so λ reaches φ through the φ
    optimizer (AdamW normalises it with the data gradient).  This is the
    reading that prunes on the demo; see README "MSRS" for both curves;
  - ``direct`` (eq. 5 as printed): after every φ-optimizer step,
    ``φ ← φ − λ``, outside the learning rate; with the paper's λ = 2e-10
    this moves φ by ~2e-6 over 10⁴ steps against φ0 ≈ 5e-4.

  Either way ``mask_penalty`` (the value ``λ·Σφ``) is reported next to
  ESPnet's ``loss_att``/``loss_ctc``, with ``sparsity`` (of the binary mask
  ``1[φ ≥ 0]``, eq. 8, over masked weights) and ``phi_mean``, ``phi_std``,
  ``phi_min``, ``phi_max``;
* **stop rule** — at the start of every epoch e+1 the binary sparsity s_e
  after epoch e is recorded; the search stops there when
  ``|s_e − s_{e−1}| < ε``, ``e ≥ min_search_epochs`` and the mask has started
  to prune (some s_k, k ≥ 1, above s_0, the sparsity at φ0: a mask that has
  not moved, e.g. 0 → 0 → 0, must not stop the search).  ``--max_epoch``
  caps it.  ``stop_reason`` in the report says which ended the search;
* **hand-over** — at the end, ``mask.pth`` (m*), ``init.pth`` (θ_j ⊙ m*, a
  plain ESPnet state dict for ``--init_param``), ``sparsity_report.json`` and
  plots (:mod:`espnet_msrs.sparsity.artifacts`).

State (saved in ESPnet's checkpoint, see
:mod:`espnet_msrs.sparsity.sparse_method`): the number of pruned entries
after every recorded epoch (entry 0 at φ0).  Under DDP every rank holds the
same φ (DDP all-reduces gradients, the optimizers are deterministic); each
count is compared across ranks with one all-reduce, so the stop decision is
identical on all ranks by construction.

Mixed precision (measured; ``tests/sparsity/test_msrs_search.py`` and the
bf16 run of ``tests/tasks/test_msrs_procedure.py`` pin it down):

* Masked layers compute ``θ ⊙ σ(τ_f·φ)`` in fp32 with autocast disabled;
  only the following matmul/conv runs in fp16/bf16, so ``∂L/∂w`` arrives in
  fp16/bf16 and is cast to fp32 before ``∂L/∂φ = ∂L/∂w ⊙ θ ⊙ τ_b σ'(τ_b φ)``
  is formed.  Parameters, φ and the optimizer states stay fp32.
* **bf16** (fp32 exponent range): no underflow of ``∂L/∂φ``; the relative
  error against fp32 is ~5e-3, which Adam's normalisation tolerates: a bf16
  search on the tiny corpus follows the fp32 sparsity trajectory to ~1e-3.
  CPU runs use bf16 autocast (the MSRS trainer adds CPU autocast).
* **fp16 without loss scaling**: ``∂L/∂w`` entries below ~6e-8 flush to
  zero.  For a 2-layer masked MLP whose loss is ~1e-4, 13 % of the ∂L/∂φ
  entries came out exactly 0; at ~1e-6 *all* of them were 0 — the data term
  of eq. 5 silently disappears.  With loss scaling (ESPnet's ``GradScaler``,
  always used by ``--use_amp true`` on CUDA) the same gradients survive with
  ~7e-4 relative error.  So: never run a search in fp16 without a scaler.
* The penalty never underflows: ``λ·Σφ`` is formed in fp32 from fp32 φ and
  added to the loss after promoting it to fp32 (the value is below fp16's
  range); its gradient λ reaches φ in fp32.
"""

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn
from typeguard import typechecked

from espnet_msrs.sparsity.selection import MaskSelection, apply_masks, masked_modules
from espnet_msrs.sparsity.sparse_method import SparseMethod

logger = logging.getLogger(__name__)

PENALTY_MODES = ("loss", "direct")
CONVERGED = "converged"


class MSRSSearch(SparseMethod):
    """MSRS mask search: φ, λ, the ε stop rule and the hand-over artifacts.

    Args:
        mu: μ of eq. 3.
        rho: ρ of eq. 3.
        varsigma: ς of eq. 3.
        tau_forward: τ_f of eq. 4 (near-binary forward).
        tau_backward: τ_b of eqs. 5–6.
        mask_penalty: λ (eq. 7), >= 0.
        penalty_mode: ``loss`` (λ·Σφ in the loss, eq. 7) or ``direct``
            (φ ← φ − λ after each φ step, eq. 5).
        epsilon: ε, threshold on the change of binary sparsity per epoch.
        min_search_epochs: Never stop before this many epochs.
    """

    name = "search"

    @typechecked
    def __init__(
        self,
        mu: float = 1e-3,
        rho: float = 5e-4,
        varsigma: float = 1e-8,
        tau_forward: float = 1e5,
        tau_backward: float = 1.0,
        mask_penalty: float = 2e-10,
        penalty_mode: str = "loss",
        epsilon: float = 0.01,
        min_search_epochs: int = 2,
    ):
        super().__init__()
        if not mask_penalty >= 0:
            raise ValueError(
                f"msrs_conf.mask_penalty must be >= 0, got {mask_penalty}"
            )
        if penalty_mode not in PENALTY_MODES:
            raise ValueError(
                f"msrs_conf.penalty_mode={penalty_mode!r}; allowed: "
                f"{list(PENALTY_MODES)}"
            )
        if not epsilon > 0:
            raise ValueError(f"msrs_conf.epsilon must be > 0, got {epsilon}")
        if min_search_epochs < 1:
            raise ValueError(
                f"msrs_conf.min_search_epochs must be >= 1, got {min_search_epochs}"
            )
        self.mask_kwargs = dict(mu=mu, rho=rho, varsigma=varsigma,
                                tau_forward=tau_forward, tau_backward=tau_backward)
        self.mask_penalty = float(mask_penalty)
        self.penalty_mode = penalty_mode
        self.epsilon = float(epsilon)
        self.min_search_epochs = int(min_search_epochs)
        self.zeros_history: List[int] = []  # pruned entries after epoch e
        self.layers: List[nn.Module] = []

    # ------------------------------------------------------------ lifecycle
    def setup(self, model: nn.Module, selection: MaskSelection, seed: int) -> None:
        """Turn the selected layers into masked layers (φ0 by eq. 3)."""
        names = apply_masks(model, selection.include, selection.exclude,
                            **self.mask_kwargs)
        self.layers = list(masked_modules(model).values())
        logger.info(f"msrs mask search: masked_weights={len(names)}")

    @property
    def logits(self) -> List[nn.Parameter]:
        """The mask logits φ of every masked layer."""
        return [layer.mask_logits for layer in self.layers]

    def attach_optimizers(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """In ``direct`` mode, φ ← φ − λ after every step of the φ optimizer."""
        super().attach_optimizers(optimizers)
        if self.penalty_mode == "direct" and self.mask_penalty > 0:
            if len(optimizers) < 2:
                raise ValueError("msrs mask search: no optimizer for the mask logits")
            optimizers[1].register_step_post_hook(self._direct_penalty_step)

    @torch.no_grad()
    def _direct_penalty_step(self, optimizer, args, kwargs) -> None:
        for phi in self.logits:
            phi.sub_(self.mask_penalty)

    @torch.no_grad()
    def start(self, model: nn.Module, steps_per_epoch: Optional[int],
              max_epoch: int) -> None:
        """φ0 = eq. 3 of θ0, the weights training starts from (``--init_param``
        included; ``--resume`` then restores the checkpoint's φ)."""
        super().start(model, steps_per_epoch, max_epoch)
        for layer in self.layers:
            layer.reset_mask_logits()

    def loss_terms(
        self, model: nn.Module
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """``λ·Σφ`` (``loss`` mode, λ > 0) and the mask statistics."""
        if self.mask_penalty > 0:
            penalty = self.mask_penalty * torch.stack(
                [phi.sum() for phi in self.logits]
            ).sum().float()
        else:  # λ = 0: no graph, the loss stays bit-identical
            penalty = torch.zeros((), device=self.logits[0].device)
        stats = {"mask_penalty": penalty.detach(), **self.mask_statistics()}
        if self.penalty_mode == "loss" and self.mask_penalty > 0:
            return penalty, stats
        return None, stats

    # ------------------------------------------------------------- measuring
    @property
    def num_mask_entries(self) -> int:
        """Number of mask entries (masked weights)."""
        return sum(int(p.numel()) for p in self.logits)

    @torch.no_grad()
    def _count_negative(self) -> torch.Tensor:
        return torch.stack([torch.count_nonzero(p < 0) for p in self.logits]).sum()

    def count_pruned(self) -> int:
        """Number of entries with φ < 0 (pruned by the binary mask of eq. 8)."""
        return int(self._count_negative())

    @torch.no_grad()
    def mask_statistics(self) -> Dict[str, torch.Tensor]:
        """Binary sparsity and φ statistics as fp32 0-dim tensors (no host sync)."""
        logits = [p.detach() for p in self.logits]
        total = sum(p.numel() for p in logits)
        zeros = self._count_negative()
        sums = torch.stack([p.sum(dtype=torch.float32) for p in logits]).sum()
        sq = torch.stack([p.float().square().sum() for p in logits]).sum()
        extrema = torch.stack([torch.stack(torch.aminmax(p)) for p in logits]).float()
        mean = sums / total
        var = (sq / total - mean.square()).clamp_min(0.0)
        return {
            "sparsity": zeros.float() / total,
            "phi_mean": mean,
            "phi_std": var.sqrt(),
            "phi_min": extrema[:, 0].min(),
            "phi_max": extrema[:, 1].max(),
        }

    # ---------------------------------------------------------------- history
    @property
    def epochs(self) -> List[int]:
        """Epochs with a recorded sparsity (0 = at φ0), ascending."""
        return list(range(len(self.zeros_history)))

    @property
    def history(self) -> List[float]:
        """Recorded sparsities, in the order of :attr:`epochs`."""
        total = self.num_mask_entries
        return [zeros / total for zeros in self.zeros_history]

    def record(self, epoch: int) -> float:
        """Record the binary sparsity of the current φ as that after ``epoch``.

        Under torch.distributed the counts of all ranks are compared (one
        all-reduce); ranks whose φ diverged raise.

        Returns:
            The recorded sparsity.
        """
        if epoch != len(self.zeros_history):
            raise RuntimeError(
                f"msrs mask search: recording epoch={epoch} after "
                f"{len(self.zeros_history)} recorded epochs"
            )
        zeros = self.count_pruned()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            both = torch.tensor([zeros, -zeros], dtype=torch.int64,
                                device=self.logits[0].device)
            torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
            if int(both[0]) != -int(both[1]):
                raise RuntimeError(
                    f"msrs mask search: ranks disagree on the binary mask after "
                    f"epoch={epoch} (pruned entries between {-int(both[1])} and "
                    f"{int(both[0])}); the mask logits diverged across ranks"
                )
        self.zeros_history.append(zeros)
        return zeros / self.num_mask_entries

    @property
    def pruning_started(self) -> bool:
        """Whether some epoch k >= 1 has more pruned entries than φ0."""
        return any(z > self.zeros_history[0] for z in self.zeros_history[1:])

    @property
    def converged(self) -> bool:
        """The stop rule (see the module docstring) on the recorded history."""
        last = len(self.zeros_history) - 1
        if last < max(1, self.min_search_epochs) or not self.pruning_started:
            return False
        history = self.history
        return abs(history[last] - history[last - 1]) < self.epsilon

    def _record_and_log(self, epoch: int) -> None:
        sparsity = self.record(epoch)
        if epoch == 0:
            logger.info(f"msrs mask search: epoch=0 (φ0) sparsity={sparsity:.4f}")
            return
        delta = sparsity - self.history[epoch - 1]
        logger.info(
            f"msrs mask search: epoch={epoch} sparsity={sparsity:.4f} "
            f"delta={delta:+.4f} epsilon={self.epsilon} "
            f"pruning_started={self.pruning_started} converged={self.converged}"
        )

    def epoch_start(self, epoch: int) -> Optional[str]:
        """Record s_{epoch−1}; stop before ``epoch`` if the rule says so."""
        while len(self.zeros_history) < epoch:  # s_{epoch-1} (s_0 at φ0)
            self._record_and_log(len(self.zeros_history))
        if self.converged:
            self.stop_reason = CONVERGED
            last = len(self.zeros_history) - 1
            history = self.history
            logger.info(
                f"msrs mask search converged: epoch={last} "
                f"sparsity={history[last]:.4f} "
                f"delta={history[last] - history[last - 1]:+.4f} "
                f"epsilon={self.epsilon}"
            )
            return CONVERGED
        return super().epoch_start(epoch)

    def end_training(self) -> str:
        """Record the last epoch's sparsity (if the run did not stop by ε)."""
        if self.stop_reason is None:
            while len(self.zeros_history) <= self.last_epoch:
                self._record_and_log(len(self.zeros_history))
            if self.converged:
                self.stop_reason = CONVERGED
        return super().end_training()

    def stop_detail(self, stop_reason: str) -> str:
        """One sentence: why the search ended, with the numbers."""
        history = self.history
        last = len(history) - 1
        if stop_reason == CONVERGED:
            return (
                f"binary sparsity changed by {abs(history[last] - history[last - 1]):.4f}"
                f" < epsilon={self.epsilon} from epoch {last - 1} to {last}"
            )
        started = (
            "the mask had started to prune"
            if self.pruning_started
            else "the mask never pruned beyond its sparsity at φ0"
        )
        if stop_reason == "max_epoch":
            return f"reached --max_epoch={self.max_epoch}; {started}"
        return (
            f"ESPnet ended training after epoch {last} before --max_epoch="
            f"{self.max_epoch} (--patience early stopping, or an epoch without a "
            f"valid step; see train.log); {started}"
        )

    def summary(self, stop_reason: str) -> Dict[str, Any]:
        """The ``search`` section of the report and of ``mask.pth``'s metadata."""
        return {
            "stop_reason": stop_reason,
            "stop_detail": self.stop_detail(stop_reason),
            "final_epoch": len(self.zeros_history) - 1,
            "epochs": self.epochs,
            "sparsity_history": self.history,
            "epsilon": self.epsilon,
            "mask_penalty": self.mask_penalty,
            "penalty_mode": self.penalty_mode,
            "min_search_epochs": self.min_search_epochs,
        }

    def write_artifacts(self, model: nn.Module, output_dir: Path,
                        stop_reason: str) -> Dict[str, Any]:
        from espnet_msrs.sparsity.artifacts import write_search_artifacts

        return write_search_artifacts(model, self.summary(stop_reason), output_dir)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "zeros_history": list(self.zeros_history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.zeros_history = [int(z) for z in state["zeros_history"]]

