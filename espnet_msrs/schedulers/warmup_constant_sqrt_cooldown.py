"""Warm-up, constant learning rate, then square-root ("1-sqrt") cool-down.

The ASR schedule of LR-SMS ("Full-Rank No More", §III "Training details":
"A constant learning rate with square root cooldown scheduler [44] is used for
ASR ... 15 epochs of cooldown ... a warm-up of 5 epochs", 75 epochs, peak
6e-4), with [44] = Hägele et al., "Scaling Laws and Compute-Optimal Training
Beyond Fixed Training Durations", arXiv 2405.18392 (2024), whose cool-down is

    η(n) = η_max · (1 − sqrt((n − (N − C)) / C)),   N − C ≤ n ≤ N,

falling from the peak η_max at the start of the cool-down to 0 at the end of
training (N updates, the last C of them cool-down).  With ESPnet's 1-based
update number ``n`` (see :mod:`espnet_msrs.schedulers.warmup_decay_lr`)::

    f(n) = n / W                          1 <= n <= W       (linear warm-up)
    f(n) = 1                              W < n <= N - C    (constant)
    f(n) = 1 - sqrt((n - (N - C)) / C)    N - C < n <= N    (1-sqrt cool-down)
    f(n) = 0                              n > N

so the learning rate is the peak at the last warm-up update (n = W) and at the
last constant update (n = N − C, where the cool-down starts), and exactly 0 at
the last update n = N (η(N) = 0 as in [44]; that update leaves the weights
unchanged).  Our choices where the papers say nothing: the warm-up is linear
from η_max/W (Hägele et al.'s code starts at η_max/100; ESPnet's schedulers
near 0) and the final learning rate is 0 (no floor).
"""

import math
from typing import Optional, Union

import torch
from typeguard import typechecked

from espnet_msrs.schedulers.warmup_decay_lr import WarmupDecayLR


class WarmupConstantSqrtCooldownLR(WarmupDecayLR):
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
        super().__init__(
            optimizer,
            lengths={
                "warmup": (warmup_steps, warmup_epochs),
                "cooldown": (cooldown_steps, cooldown_epochs),
                "total": (total_steps, total_epochs),
            },
            optional=(),
            name="warmup_constant_sqrt_cooldown",
            last_epoch=last_epoch,
        )

    def decay(self, fraction: float) -> float:
        """``1 − sqrt(fraction)`` (Hägele et al.'s "1-sqrt" cool-down)."""
        return 1.0 - math.sqrt(fraction)
