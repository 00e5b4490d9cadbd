"""Learning-rate schedulers registered into espnet2's ``scheduler`` choices.

* ``warmup_constant_sqrt_cooldown``: :class:`WarmupConstantSqrtCooldownLR`,
  the LR-SMS ASR schedule (linear warm-up, constant, 1-sqrt cool-down).

Schedulers derived from :class:`AbsEpochSizedScheduler` may be stated in
epochs; the trainer converts them to optimizer steps with the run's own
iterations per epoch (:func:`resolve_epoch_schedules`).
"""

from espnet_msrs.schedulers.abs_epoch_sized_scheduler import (
    AbsEpochSizedScheduler,
    optimizer_steps_per_epoch,
    resolve_epoch_schedules,
)
from espnet_msrs.schedulers.warmup_constant_sqrt_cooldown import (
    WarmupConstantSqrtCooldownLR,
)

__all__ = [
    "AbsEpochSizedScheduler",
    "WarmupConstantSqrtCooldownLR",
    "optimizer_steps_per_epoch",
    "resolve_epoch_schedules",
]
