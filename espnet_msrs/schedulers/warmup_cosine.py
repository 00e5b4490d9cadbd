"""Linear warm-up, then a cosine decay to zero, sized in steps or epochs.

The schedule of MSRS (§3 "Training strategies": "a cosine learning rate
scheduler ... warmed up for up to 5 epochs of the j epochs of joint training,
and then warmed up again for 5 epochs during the subsequent 75 epochs") and of
the LR-SMS AVSR models (§III "Training details": cosine, 75 epochs, warm-up 5,
peak 1e-3).  ESPnet's ``cosineannealingwarmuprestarts`` has the same shape but
counts only steps (and restarts after its cycle); this one takes the papers'
epochs.  With ESPnet's 1-based update number ``n`` (see
:mod:`espnet_msrs.schedulers.warmup_decay_lr`), W warm-up and N total
updates::

    f(n) = n / W                                   1 <= n <= W
    f(n) = (1 + cos(π (n − W) / (N − W))) / 2      W < n <= N
    f(n) = 0                                       n > N

peak (the optimizer's ``lr``) at n = W, 0 at the last update n = N.  The
final learning rate 0 is our choice (the papers give none; the previous
configs used ESPnet's cosine with ``min_lr: 0``).
"""

import math
from typing import Optional, Union

import torch
from typeguard import typechecked

from espnet_msrs.schedulers.warmup_decay_lr import WarmupDecayLR


class WarmupCosineLR(WarmupDecayLR):
    """Linear warm-up to the peak, cosine decay to zero (batch-step).

    Config (ESPnet style)::

        optim: adamw
        optim_conf: {lr: 1.0e-3}            # the peak
        scheduler: warmup_cosine
        scheduler_conf: {warmup_epochs: 5}  # decays to 0 at --max_epoch

    Args:
        optimizer: The wrapped optimizer; its ``lr`` is the peak.
        warmup_steps: W in optimizer steps (>= 0).
        total_steps: N in optimizer steps (>= 1).
        warmup_epochs: W in epochs (may be fractional); give this or
            ``warmup_steps``.
        total_epochs: N in epochs; give this, ``total_steps`` or neither
            (N is then the run's ``--max_epoch`` epochs).
        last_epoch: ESPnet/PyTorch's resume index (-1 for a new run).

    Raises:
        ValueError: Both or neither of the warm-up options, a negative
            length, or W > N.
    """

    @typechecked
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: Optional[int] = None,
        total_steps: Optional[int] = None,
        warmup_epochs: Optional[Union[int, float]] = None,
        total_epochs: Optional[Union[int, float]] = None,
        last_epoch: int = -1,
    ):
        super().__init__(
            optimizer,
            lengths={
                "warmup": (warmup_steps, warmup_epochs),
                "total": (total_steps, total_epochs),
            },
            optional=("cooldown",),
            name="warmup_cosine",
            last_epoch=last_epoch,
        )

    def decay(self, fraction: float) -> float:
        """``(1 + cos(π·fraction)) / 2``."""
        return 0.5 * (1.0 + math.cos(math.pi * fraction))
