"""MSRS policy: the mask-search controller (MSRS paper, eq. 5–8, Algorithm 1).

The layers (``masked_layers.py``) are mechanism only.  This controller holds
the policy of the first loop of Algorithm 1:

* the sparsity penalty ``λ·1ᵀφ`` (eq. 7) added to the model's loss, reported
  as its own term ``mask_penalty`` next to ESPnet's ``loss_att``/``loss_ctc``,
  plus ``sparsity`` (binary-mask sparsity over masked weights) and the φ
  statistics ``phi_mean``, ``phi_std``, ``phi_min``, ``phi_max``;
* the stopping criterion: after every epoch the binary mask ``1[φ ≥ 0]``
  (eq. 8) is taken and its overall sparsity recorded; the search stops when
  the change between two consecutive epochs is below ε, but not before
  ``min_search_epochs`` (our choice: the paper's pseudo-code is garbled there;
  a mask that has not started to move yet, e.g. 0 → 0, must not stop the
  search).  ``max_search_epochs`` is ESPnet's ``--max_epoch`` of the run.

State: the per-epoch history is the int64 buffer ``zeros_history`` (entry
``e`` = number of pruned mask entries after epoch ``e``, entry 0 at φ0, −1 =
not recorded).  Being a buffer of fixed shape and integer dtype, it is saved
in ESPnet's checkpoints, restored exactly by ``--resume true``, survives
``--train_dtype`` casts, and does not break ESPnet's n-best checkpoint
averaging (integer entries are accumulated, not averaged).  Under DDP every
rank holds the same φ (DDP all-reduces gradients, the optimizers are
deterministic), so every rank computes the same counts;
:meth:`MaskSearchController.end_epoch` checks this with one all-reduce and
fails loudly if the ranks disagree, so the stop decision is identical on all
ranks by construction.

Loss convention: ESPnet's ``ESPnetASRModel`` uses ``(1−γ)·L_att + γ·L_ctc``
(the convex combination of the papers' lineage, Auto-AVSR / ESPnet1); the
controller adds ``λ·Σφ`` to that loss, in at least fp32.

Mixed precision (what we measured; ``tests/sparsity/test_controller.py`` and
the bf16 run of ``tests/tasks/test_msrs_procedure.py`` pin it down):

* Masked layers compute ``θ ⊙ σ(τ_f·φ)`` in fp32 with autocast disabled;
  only the following matmul/conv runs in fp16/bf16, so ``∂L/∂w`` arrives in
  fp16/bf16 and is cast to fp32 before
  ``∂L/∂φ = ∂L/∂w ⊙ θ ⊙ τ_b σ'(τ_b φ)`` is formed.  Parameters, φ and the
  optimizer states stay fp32.
* **bf16** (fp32 exponent range): no underflow of ``∂L/∂φ`` at any loss
  size; the relative error against fp32 is ~5e-3 (bf16's 8-bit mantissa),
  which Adam's normalisation tolerates: a bf16 search on the tiny corpus
  follows the fp32 sparsity trajectory to ~1e-3.  CPU runs use bf16
  autocast (ESPnet's ``--use_amp`` is CUDA-only; the MSRS trainer adds CPU
  autocast).
* **fp16 without loss scaling**: ``∂L/∂w`` entries below ~6e-8 flush to
  zero (below ~6e-5 they lose precision).  For a 2-layer masked MLP whose
  loss is ~1e-4 (×mean square), 13 % of the ∂L/∂φ entries came out exactly
  0 (37 % relative error); at ~1e-6 *all* of them were 0 — the data term of
  eq. 5 silently disappears and only ``λ`` moves φ, with no warning and
  finite losses.  With loss scaling (2¹⁶, ESPnet's ``GradScaler``, which
  ``--use_amp true`` always uses on CUDA, for fp16 and bf16 alike) the same
  gradients survive with ~7e-4 relative error.  So: never run a search in
  fp16 without a ``GradScaler``.
* The penalty path never underflows: ``λ·Σφ`` is formed in fp32 from fp32 φ
  and its gradient ``λ`` (times the loss scale) reaches φ in fp32, even for
  λ = 2e-10 — but the *value* ``λ·Σφ`` is below fp16's range, which is why
  it is added to an fp16/bf16 loss after promoting the loss to fp32.
* The reported ``mask_penalty`` and ``phi_*`` statistics are fp32.
"""

import logging
from typing import Dict, List, Optional

import torch

from espnet_msrs.sparsity.policy import mask_penalty, masked_modules

logger = logging.getLogger(__name__)


class MaskSearchConverged(Exception):
    """Raised by the trainer at the start of an epoch once the mask is stable."""


class MaskSearchController(torch.nn.Module):
    """Adds λ·Σφ to an ESPnet model's loss and decides when the search stops.

    Attach with :meth:`attach`; it becomes the submodule ``msrs_controller`` of
    the model (no parameters; its history is the buffer ``zeros_history``).

    Args:
        mask_penalty: λ of eq. 7 (sum over all mask entries, not a mean).
        epsilon: ε, threshold on the change of overall binary sparsity.
        min_search_epochs: Never stop before this many search epochs.
    """

    #: Number of epochs the history can hold (epoch 0 = φ0 included).
    CAPACITY = 1024

    def __init__(
        self,
        mask_penalty: float = 2e-10,
        epsilon: float = 0.01,
        min_search_epochs: int = 2,
    ):
        super().__init__()
        if not mask_penalty >= 0:
            raise ValueError(
                f"msrs_conf.mask_penalty must be >= 0, got {mask_penalty}"
            )
        if not epsilon > 0:
            raise ValueError(f"msrs_conf.epsilon must be > 0, got {epsilon}")
        if min_search_epochs < 1:
            raise ValueError(
                f"msrs_conf.min_search_epochs must be >= 1, got {min_search_epochs}"
            )
        self.mask_penalty = float(mask_penalty)
        self.epsilon = float(epsilon)
        self.min_search_epochs = int(min_search_epochs)
        self.register_buffer(
            "zeros_history", torch.full((self.CAPACITY,), -1, dtype=torch.int64)
        )
        self._owner: Optional[List[torch.nn.Module]] = None

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
        return self

    @property
    def owner(self) -> torch.nn.Module:
        assert self._owner is not None, "controller is not attached"
        return self._owner[0]

    # ------------------------------------------------------------- measuring
    def _logits(self) -> List[torch.Tensor]:
        return [m.mask_logits for m in masked_modules(self.owner).values()]

    @property
    def num_mask_entries(self) -> int:
        """Number of mask entries (masked weights) of the owner."""
        return sum(int(p.numel()) for p in self._logits())

    @torch.no_grad()
    def count_pruned(self) -> int:
        """Number of entries with φ < 0 (pruned by the binary mask of eq. 8)."""
        return int(self._count_negative([p.detach() for p in self._logits()]))

    @staticmethod
    def _count_negative(logits: List[torch.Tensor]) -> torch.Tensor:
        return torch.stack([torch.count_nonzero(p < 0) for p in logits]).sum()

    @torch.no_grad()
    def mask_statistics(self) -> Dict[str, torch.Tensor]:
        """Binary sparsity and φ statistics as fp32 0-dim tensors (no host sync)."""
        logits = [p.detach() for p in self._logits()]
        total = sum(p.numel() for p in logits)
        zeros = self._count_negative(logits)
        sums = torch.stack([p.sum(dtype=torch.float32) for p in logits]).sum()
        sq = torch.stack(torch._foreach_norm(logits, 2)).float().square().sum()
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

    def current_sparsity(self) -> float:
        """Fraction of zeros of the binary masks 1[φ ≥ 0] over masked weights."""
        return self.count_pruned() / self.num_mask_entries

    # ---------------------------------------------------------------- history
    @property
    def epochs(self) -> List[int]:
        """Epochs with a recorded sparsity (0 = at φ0), ascending."""
        return [int(e) for e in torch.nonzero(self.zeros_history >= 0).flatten()]

    @property
    def history(self) -> List[float]:
        """Recorded sparsities, in the order of :attr:`epochs`."""
        total = self.num_mask_entries
        return [int(self.zeros_history[e]) / total for e in self.epochs]

    def record(self, epoch: int) -> float:
        """Record the binary sparsity of the current φ as that of ``epoch``.

        Under torch.distributed the count of every rank is compared (one
        all-reduce); a mismatch means the ranks' φ diverged and raises.

        Returns:
            The recorded sparsity.
        """
        if not 0 <= epoch < self.CAPACITY:
            raise ValueError(
                f"msrs mask search: epoch={epoch} outside the recorded range "
                f"[0, {self.CAPACITY}); use fewer search epochs"
            )
        zeros = self.count_pruned()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            both = torch.tensor(
                [zeros, -zeros], dtype=torch.int64, device=self.zeros_history.device
            )
            torch.distributed.all_reduce(both, op=torch.distributed.ReduceOp.MAX)
            if int(both[0]) != -int(both[1]):
                raise RuntimeError(
                    f"msrs mask search: ranks disagree on the binary mask after "
                    f"epoch={epoch} (pruned entries between {-int(both[1])} and "
                    f"{int(both[0])}); the mask logits diverged across ranks"
                )
        self.zeros_history[epoch] = zeros
        return zeros / self.num_mask_entries

    def start(self) -> None:
        """Record the sparsity at φ0 (epoch 0) unless it is already recorded."""
        if int(self.zeros_history[0]) < 0:
            self.record(0)

    def end_epoch(self, epoch: int) -> float:
        """Record the binary sparsity after ``epoch`` (>= 1); returns it."""
        sparsity = self.record(epoch)
        previous = self.sparsity_at(epoch - 1)
        delta = sparsity - previous if previous is not None else float("nan")
        logger.info(
            f"msrs mask search: epoch={epoch} sparsity={sparsity:.4f} "
            f"delta={delta:+.4f} epsilon={self.epsilon} converged={self.converged}"
        )
        return sparsity

    def sparsity_at(self, epoch: int) -> Optional[float]:
        """Recorded sparsity after ``epoch``, or None."""
        if not 0 <= epoch < self.CAPACITY or int(self.zeros_history[epoch]) < 0:
            return None
        return int(self.zeros_history[epoch]) / self.num_mask_entries

    @property
    def last_epoch(self) -> int:
        """Last recorded epoch (−1 if none)."""
        epochs = self.epochs
        return epochs[-1] if epochs else -1

    @property
    def converged(self) -> bool:
        """True when |s_e − s_{e−1}| < ε for the last recorded epoch e, and
        e >= ``min_search_epochs``."""
        last = self.last_epoch
        if last < max(1, self.min_search_epochs):
            return False
        current, previous = self.sparsity_at(last), self.sparsity_at(last - 1)
        if previous is None:
            return False
        return abs(current - previous) < self.epsilon


def _add_mask_terms(model, inputs, output):
    """Forward hook: (loss, stats, weight) -> loss + λΣφ with extra stats."""
    controller = getattr(model, "msrs_controller", None)
    if controller is None:
        return output
    if isinstance(output, dict) and "loss" in output and "stats" in output:
        loss, stats, weight = output["loss"], output["stats"], output.get("weight")
    elif isinstance(output, tuple) and len(output) == 3:
        loss, stats, weight = output
    else:
        return output
    if controller.mask_penalty > 0:
        penalty = controller.mask_penalty * mask_penalty(model).float()
    else:  # λ = 0: no graph, the loss is left bit-identical
        penalty = loss.new_zeros((), dtype=torch.float32)
    stats = dict(stats)
    extra = {"mask_penalty": penalty.detach(), **controller.mask_statistics()}
    stats.update({k: stat_like(v, weight) for k, v in extra.items()})
    if controller.mask_penalty > 0:
        loss = loss.to(torch.promote_types(loss.dtype, penalty.dtype)) + penalty
    stats["loss"] = loss.detach()
    if isinstance(output, dict):
        return dict(output, loss=loss, stats=stats)
    return loss, stats, output[2]


def stat_like(value: torch.Tensor, weight) -> torch.Tensor:
    """A 0-dim stat in the shape ESPnet's ``force_gatherable`` gives stats:
    (1,) when the model's ``weight`` is (1,) (needed by ``recursive_average``
    under DDP), else 0-dim."""
    if isinstance(weight, torch.Tensor) and weight.dim() == 1 and value.dim() == 0:
        return value.reshape(1)
    return value


def find_controller(model: torch.nn.Module) -> Optional[MaskSearchController]:
    """The controller of a (possibly DDP- or otherwise wrapped) model, if any."""
    inner = model
    for _ in range(8):
        controller = getattr(inner, "msrs_controller", None)
        if isinstance(controller, MaskSearchController):
            return controller
        if not hasattr(inner, "module"):
            return None
        inner = inner.module
    return None
