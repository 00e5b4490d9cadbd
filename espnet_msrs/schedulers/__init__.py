"""Learning-rate schedulers registered into espnet2's ``scheduler`` choices.

* ``warmup_constant_sqrt_cooldown``: :class:`WarmupConstantSqrtCooldownLR`,
  the LR-SMS ASR schedule (linear warm-up, constant, 1-sqrt cool-down);
* ``warmup_cosine``: :class:`WarmupCosineLR`, the MSRS and LR-SMS AVSR
  schedule (linear warm-up, cosine decay).

Both derive from :class:`WarmupDecayLR` and may be stated in epochs; the
trainer converts epochs to optimizer steps with the run's own iterations per
epoch (:func:`resolve_epoch_schedules`).
"""

from espnet_msrs.schedulers.abs_epoch_sized_scheduler import (
    AbsEpochSizedScheduler,
    optimizer_steps_per_epoch,
    resolve_epoch_schedules,
)
from espnet_msrs.schedulers.warmup_constant_sqrt_cooldown import (
    WarmupConstantSqrtCooldownLR,
)
from espnet_msrs.schedulers.warmup_cosine import WarmupCosineLR
from espnet_msrs.schedulers.warmup_decay_lr import WarmupDecayLR

__all__ = [
    "AbsEpochSizedScheduler",
    "WarmupConstantSqrtCooldownLR",
    "WarmupCosineLR",
    "WarmupDecayLR",
    "optimizer_steps_per_epoch",
    "resolve_epoch_schedules",
]
