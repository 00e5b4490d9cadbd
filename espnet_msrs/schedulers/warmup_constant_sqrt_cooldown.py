"""Warm-up, constant learning rate, then square-root ("1-sqrt") cool-down.

The ASR schedule of LR-SMS ("Full-Rank No More", §III "Training details":
"A constant learning rate with square root cooldown scheduler [44] is used for
ASR ... 15 epochs of cooldown ... a warm-up of 5 epochs", 75 epochs, peak
6e-4), with [44] = Hägele et al., "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations", arXiv 2405.18392 (2024), whose cool-down is

    η(n) = η_max · (1 − sqrt((n − (N − C)) / C)),   N − C ≤ n ≤ N,

falling from the peak η_max at the start of the cool-down to 0 at the end of
training (N steps, the last C of them cool-down).

Here, with ``n`` the 1-based number of the optimizer update (ESPnet's
``WarmupLR``/``NoamLR`` convention: ``n = last_epoch + 1``), W warm-up,
C cool-down and N total steps, the update ``n`` uses ``η_max · f(n)``::

    f(n) = n / W                          1 <= n <= W       (linear warm-up)
    f(n) = 1                              W < n <= N - C    (constant)
    f(n) = 1 - sqrt((n - (N - C)) / C)    N - C < n <= N    (1-sqrt cool-down)
    f(n) = 0                              n > N

so the learning rate is the peak at the last warm-up update (n = W) and at the
last constant update (n = N − C, where the cool-down starts), and exactly 0 at
the last update n = N (η(N) = 0 as in [44]; the last update therefore leaves
the weights unchanged).  Our choices where the papers say nothing: the warm-up
is linear from η_max/W (Hägele et al. start at η_max/100; ESPnet's schedulers
start near 0) and the final learning rate is 0 (no floor).

η_max is the optimizer's learning rate (``optim_conf: {lr: ...}``), as in
ESPnet's ``WarmupLR``.  Lengths are given in steps or in epochs (converted by
the trainer with the run's own optimizer steps per epoch, see
:mod:`espnet_msrs.schedulers.abs_epoch_sized_scheduler`); without
``total_steps``/``total_epochs`` the schedule ends with the run's
``--max_epoch``.
"""

import logging
import math
from typing import List, Optional, Union

import torch
from torch.optim.lr_scheduler import LRScheduler
from typeguard import typechecked

from espnet_msrs.schedulers.abs_epoch_sized_scheduler import AbsEpochSizedScheduler

logger = logging.getLogger(__name__)

_PHASES = ("warmup", "cooldown", "total")


class WarmupConstantSqrtCooldownLR(LRScheduler, AbsEpochSizedScheduler):
    """Linear warm-up, constant peak, 1-sqrt cool-down to zero (batch-step).

    Config (ESPnet style)::

        optim: adamw
        optim_conf: {lr: 6.0e-4}            # the peak
        scheduler: warmup_constant_sqrt_cooldown
        scheduler_conf: {warmup_epochs: 5, cooldown_epochs: 15}  # of max_epoch 75

    Args:
        optimizer: The wrapped optimizer; its ``lr`` is the peak.
        warmup_steps: W in optimizer steps (>= 0).
        cooldown_steps: C in optimizer steps (>= 0).
        total_steps: N in optimizer steps (>= 1).
        warmup_epochs: W in epochs (may be fractional); give this or
            ``warmup_steps``.
        cooldown_epochs: C in epochs; give this or ``cooldown_steps``.
        total_epochs: N in epochs; give this, ``total_steps`` or neither
            (N is then the run's ``--max_epoch`` epochs).
        last_epoch: ESPnet/PyTorch's resume index (-1 for a new run).

    Raises:
        ValueError: Both or neither of the steps/epochs options of a phase,
            a negative length, or W + C > N.
    """

    @typechecked
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: Optional[int] = None,
        cooldown_steps: Optional[int] = None,
        total_steps: Optional[int] = None,
        warmup_epochs: Optional[Union[int, float]] = None,
        cooldown_epochs: Optional[Union[int, float]] = None,
        total_epochs: Optional[Union[int, float]] = None,
        last_epoch: int = -1,
    ):
        given = {
            "warmup": (warmup_steps, warmup_epochs),
            "cooldown": (cooldown_steps, cooldown_epochs),
            "total": (total_steps, total_epochs),
        }
        for phase, (steps, epochs) in given.items():
            if steps is not None and epochs is not None:
                raise ValueError(
                    f"scheduler_conf: give {phase}_steps or {phase}_epochs, not both "
                    f"(got {phase}_steps={steps}, {phase}_epochs={epochs})"
                )
            if phase != "total" and steps is None and epochs is None:
                raise ValueError(
                    f"scheduler_conf: warmup_constant_sqrt_cooldown needs "
                    f"{phase}_steps or {phase}_epochs (e.g. warmup_epochs: 5, "
                    "cooldown_epochs: 15)"
                )
            for kind, value in (("steps", steps), ("epochs", epochs)):
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise ValueError(
                        f"scheduler_conf.{phase}_{kind}={value} must be a finite "
                        "number >= 0"
                    )
        if total_steps == 0 or total_epochs == 0:
            raise ValueError("scheduler_conf: the total length must be > 0")
        self.warmup_epochs = warmup_epochs
        self.cooldown_epochs = cooldown_epochs
        self.total_epochs = total_epochs
        self.warmup_steps = warmup_steps
        self.cooldown_steps = cooldown_steps
        self.total_steps = total_steps
        self.steps_per_epoch: Optional[int] = None
        if not self.needs_steps_per_epoch:
            self._check_lengths()
        super().__init__(optimizer, last_epoch)

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
                f"warmup_constant_sqrt_cooldown: steps_per_epoch={steps_per_epoch} "
                "must be >= 1"
            )
        self.steps_per_epoch = int(steps_per_epoch)
        if self.warmup_epochs is not None:
            self.warmup_steps = round(self.warmup_epochs * steps_per_epoch)
        if self.cooldown_epochs is not None:
            self.cooldown_steps = round(self.cooldown_epochs * steps_per_epoch)
        if self.total_epochs is not None:
            self.total_steps = round(self.total_epochs * steps_per_epoch)
        elif self.total_steps is None:
            self.total_steps = int(max_epoch) * self.steps_per_epoch
        self._check_lengths()
        run_steps = int(max_epoch) * self.steps_per_epoch
        if self.total_steps != run_steps:
            logger.warning(
                f"warmup_constant_sqrt_cooldown: total_steps={self.total_steps} but "
                f"--max_epoch={max_epoch} gives {run_steps} steps: "
                + (
                    "training stops before the cool-down ends"
                    if self.total_steps > run_steps
                    else "the last epochs run at learning rate 0"
                )
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
        return 1.0 - math.sqrt((step_num - (total - cooldown)) / cooldown)

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
                "espnet_msrs.bin.asr_train / avsr_train), or give warmup_steps, "
                "cooldown_steps and total_steps"
            )
        factor = self.lr_factor(self.last_epoch + 1)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _check_lengths(self) -> None:
        warmup, cooldown, total = self.warmup_steps, self.cooldown_steps, self.total_steps
        if total < 1 or warmup + cooldown > total:
            raise ValueError(
                f"scheduler_conf: warm-up ({warmup} steps) + cool-down ({cooldown} "
                f"steps) must fit in the total ({total} steps){self._source()}"
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
