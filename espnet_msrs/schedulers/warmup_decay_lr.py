"""Linear warm-up, constant peak, then a decay to zero: the shared mechanism of
the papers' schedules, with lengths in optimizer steps or in epochs.

Hägele et al. (arXiv 2405.18392, the LR-SMS paper's [44]) treat the cosine
schedule and "constant learning rate with cool-down" as one family: a warm-up
of W updates, a constant phase, and a decay over the last C of the N updates
(cosine: C = N − W).  With ``n`` the 1-based number of the optimizer update
(ESPnet's ``WarmupLR``/``NoamLR`` convention, ``n = last_epoch + 1``), the
update ``n`` uses ``η_max · f(n)``::

    f(n) = n / W                      1 <= n <= W        (linear warm-up)
    f(n) = 1                          W < n <= N - C     (constant)
    f(n) = decay((n - (N - C)) / C)   N - C < n <= N     (decay, decay(1) = 0)
    f(n) = 0                          n > N

so the learning rate is the peak η_max at the last warm-up update (n = W) and
at the last update before the decay (n = N − C), and exactly 0 at the last
update n = N.  η_max is the optimizer's learning rate (``optim_conf: {lr:
...}``), as in ESPnet's ``WarmupLR``.  The warm-up starts at η_max/W (no
update runs at learning rate 0).

Every length is given in steps (``warmup_steps``, ...) or in epochs
(``warmup_epochs``, ..., fractional allowed); epochs are converted by the
trainer with the run's own optimizer steps per epoch (see
:mod:`espnet_msrs.schedulers.abs_epoch_sized_scheduler`); without a total
the schedule ends with the run's ``--max_epoch``.
"""

import logging
import math
from abc import abstractmethod
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch.optim.lr_scheduler import LRScheduler

from espnet_msrs.schedulers.abs_epoch_sized_scheduler import AbsEpochSizedScheduler

logger = logging.getLogger(__name__)

Length = Optional[Union[int, float]]
_PHASES = ("warmup", "cooldown", "total")


class WarmupDecayLR(LRScheduler, AbsEpochSizedScheduler):
    """Base of the warm-up / constant / decay schedules (batch-step).

    Subclasses name the schedule, choose which lengths a config gives
    (their ``__init__`` arguments are the YAML API) and define :meth:`decay`.

    Args:
        optimizer: The wrapped optimizer; its ``lr`` is the peak.
        lengths: Phase (``warmup``, ``cooldown``, ``total``) ->
            ``(steps, epochs)``, at most one of them not None.  A missing
            ``warmup`` or ``cooldown`` is an error unless listed in
            ``optional``; a missing ``total`` is the run's ``--max_epoch``.
        optional: Phases that may be missing: ``cooldown`` missing means
            "every update after the warm-up" (C = N − W).
        name: The registered name, used in error messages.
        last_epoch: ESPnet/PyTorch's resume index (-1 for a new run).

    Raises:
        ValueError: Both steps and epochs for a phase, a required phase
            missing, a negative or non-finite length, or W + C > N.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lengths: Dict[str, Tuple[Optional[int], Length]],
        optional: Tuple[str, ...],
        name: str,
        last_epoch: int = -1,
    ):
        self.name = name
        for phase in _PHASES:
            steps, epochs = lengths.get(phase, (None, None))
            if steps is not None and epochs is not None:
                raise ValueError(
                    f"scheduler_conf: give {phase}_steps or {phase}_epochs, not both "
                    f"(got {phase}_steps={steps}, {phase}_epochs={epochs})"
                )
            if (
                phase != "total"
                and phase not in optional
                and steps is None
                and epochs is None
            ):
                raise ValueError(
                    f"scheduler_conf: {name} needs {phase}_steps or {phase}_epochs"
                )
            for kind, value in (("steps", steps), ("epochs", epochs)):
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise ValueError(
                        f"scheduler_conf.{phase}_{kind}={value} must be a finite "
                        "number >= 0"
                    )
                if phase == "total" and value == 0:
                    raise ValueError(f"scheduler_conf.total_{kind} must be > 0")
            setattr(self, f"{phase}_steps", steps)
            setattr(self, f"{phase}_epochs", epochs)
        # cool-down over every update after the warm-up (cosine)
        self.cooldown_is_rest = lengths.get("cooldown", (None, None)) == (None, None)
        self.steps_per_epoch: Optional[int] = None
        self._fill_rest()
        if not self.needs_steps_per_epoch:
            self._check_lengths()
        super().__init__(optimizer, last_epoch)

    @abstractmethod
    def decay(self, fraction: float) -> float:
        """Fraction of the peak when ``fraction`` ∈ (0, 1] of the decay is done;
        ``decay(1) == 0``."""

    @property
    def needs_steps_per_epoch(self) -> bool:
        return None in (self.warmup_steps, self.cooldown_steps, self.total_steps)

    def set_steps_per_epoch(self, steps_per_epoch: int, max_epoch: int) -> None:
        """Convert the ``*_epochs`` options (and the default length) to steps.

        ``round(epochs · steps_per_epoch)``; a missing total is
        ``max_epoch · steps_per_epoch``.  The learning rate of the next update
        is set in the optimizer right away.

        Args:
            steps_per_epoch: Optimizer steps per epoch (>= 1).
            max_epoch: The run's ``--max_epoch``.

        Raises:
            ValueError: ``steps_per_epoch < 1`` or W + C > N once converted.
        """
        if steps_per_epoch < 1:
            raise ValueError(
                f"{self.name}: steps_per_epoch={steps_per_epoch} must be >= 1"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        for phase in _PHASES:
            epochs = getattr(self, f"{phase}_epochs")
            if epochs is not None:
                setattr(self, f"{phase}_steps", round(epochs * steps_per_epoch))
        if self.total_steps is None:
            self.total_steps = int(max_epoch) * self.steps_per_epoch
        self._fill_rest()
        self._check_lengths()
        run_steps = int(max_epoch) * self.steps_per_epoch
        if self.total_steps > run_steps:
            # e.g. an MSRS mask search: the retraining's schedule, cut off
            logger.info(
                f"{self.name}: total_steps={self.total_steps} > --max_epoch="
                f"{max_epoch} x {self.steps_per_epoch} steps: training stops "
                "before the decay ends"
            )
        elif self.total_steps < run_steps:
            logger.warning(
                f"{self.name}: total_steps={self.total_steps} < --max_epoch="
                f"{max_epoch} x {self.steps_per_epoch} steps: the last "
                f"{run_steps - self.total_steps} updates run at learning rate 0"
            )
        lrs = self._lrs()
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def lr_factor(self, step_num: int) -> float:
        """``f(n)``: the fraction of the peak used by the ``n``-th update (n >= 1).

        Raises:
            ValueError: The schedule is stated in epochs and not sized yet.
        """
        if self.needs_steps_per_epoch:
            raise ValueError(f"{self!r}: not sized yet (set_steps_per_epoch)")
        warmup, cooldown, total = self.warmup_steps, self.cooldown_steps, self.total_steps
        if warmup > 0 and step_num <= warmup:
            return step_num / warmup
        if step_num <= total - cooldown:
            return 1.0
        if step_num >= total:
            return 0.0
        return self.decay((step_num - (total - cooldown)) / cooldown)

    def get_lr(self) -> List[float]:
        return self._lrs()

    def _get_closed_form_lr(self) -> List[float]:
        return self._lrs()

    def _lrs(self) -> List[float]:
        if self.needs_steps_per_epoch:
            if self.last_epoch == 0:
                # LRScheduler.__init__'s initial step, before the trainer has
                # sized the schedule (resolve_epoch_schedules): no update has
                # used this value yet.
                return [0.0 for _ in self.base_lrs]
            raise ValueError(
                f"{self!r} is stated in epochs but was stepped before the run sized "
                "it: train with espnet_msrs' trainer (python -m "
                "espnet_msrs.bin.asr_train / avsr_train), or give every length in "
                "steps"
            )
        factor = self.lr_factor(self.last_epoch + 1)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _fill_rest(self) -> None:
        if (
            self.cooldown_is_rest
            and self.total_steps is not None
            and self.warmup_steps is not None
        ):
            self.cooldown_steps = self.total_steps - self.warmup_steps

    def _check_lengths(self) -> None:
        warmup, cooldown, total = self.warmup_steps, self.cooldown_steps, self.total_steps
        if total < 1 or warmup + cooldown > total or cooldown < 0:
            decay = "" if self.cooldown_is_rest else f" + decay ({cooldown} steps)"
            raise ValueError(
                f"scheduler_conf: {self.name}: warm-up ({warmup} steps){decay} must "
                f"fit in the total ({total} steps){self._source()}"
            )

    def _source(self) -> str:
        if self.steps_per_epoch is None:
            return ""
        given = ", ".join(
            f"{p}_epochs={getattr(self, p + '_epochs')}"
            for p in _PHASES
            if getattr(self, p + "_epochs") is not None
        )
        return f" (steps_per_epoch={self.steps_per_epoch}; {given})"

    def __repr__(self) -> str:
        parts = []
        for phase in _PHASES:
            epochs = getattr(self, phase + "_epochs")
            steps = getattr(self, phase + "_steps")
            if epochs is not None:
                parts.append(f"{phase}_epochs={epochs}")
            elif phase == "total" and steps is None:
                parts.append("total=--max_epoch")
            if steps is not None:
                parts.append(f"{phase}_steps={steps}")
        if self.needs_steps_per_epoch:
            parts.append("steps_per_epoch=<set by the trainer>")
        elif self.steps_per_epoch is not None:
            parts.append(f"steps_per_epoch={self.steps_per_epoch}")
        return f"{type(self).__name__}({', '.join(parts)})"
