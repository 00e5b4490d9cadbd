"""Tests of the MSRS / LR-SMS AVSR schedule (warm-up, cosine decay to 0)."""

import math

import pytest
import torch
from espnet2.schedulers.cosine_anneal_warmup_restart import (
    CosineAnnealingWarmupRestarts,
)

from espnet_msrs.schedulers.warmup_cosine import WarmupCosineLR
from tests.schedulers.test_warmup_constant_sqrt_cooldown import lrs_used

PEAK = 1.0e-3


def _optimizer(lr=PEAK):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def test_warmup_end_half_way_and_last_step():
    optimizer = _optimizer()
    sched = WarmupCosineLR(optimizer, warmup_steps=10, total_steps=110)
    used = lrs_used(sched, optimizer, 115)
    assert used[:10] == pytest.approx([PEAK * n / 10 for n in range(1, 11)])
    assert used[9] == pytest.approx(PEAK)  # warm-up end
    assert used[59] == pytest.approx(PEAK / 2)  # half of the decay: cos(π/2)
    assert used[34] == pytest.approx(PEAK * (1 + math.cos(math.pi / 4)) / 2)
    assert used[109] == 0.0 and used[110:] == [0.0] * 5  # the last update N
    assert all(a > b for a, b in zip(used[10:109], used[11:110]))


def test_same_shape_as_espnets_cosine_one_update_later():
    """ESPnet's cosineannealingwarmuprestarts (min_lr 0, one cycle) runs its
    update s (0-based) at the value ours gives update n = s (1-based), i.e.
    ours is ESPnet's shifted by one update: no update at learning rate 0."""
    ours_opt, espnet_opt = _optimizer(), _optimizer()
    ours = WarmupCosineLR(ours_opt, warmup_steps=8, total_steps=40)
    espnet = CosineAnnealingWarmupRestarts(
        espnet_opt, first_cycle_steps=40, warmup_steps=8, max_lr=PEAK, min_lr=0.0
    )
    a = lrs_used(ours, ours_opt, 39)
    b = lrs_used(espnet, espnet_opt, 40)
    assert b[0] == 0.0
    assert a == pytest.approx(b[1:], abs=1e-12)


def test_epochs_and_max_epoch_default():
    optimizer = _optimizer()
    sched = WarmupCosineLR(optimizer, warmup_epochs=5)
    assert sched.needs_steps_per_epoch
    sched.set_steps_per_epoch(100, max_epoch=75)
    assert (sched.warmup_steps, sched.cooldown_steps, sched.total_steps) == (500, 7000, 7500)
    used = lrs_used(sched, optimizer, 7500)
    assert used[499] == pytest.approx(PEAK) and used[-1] == 0.0
    assert "warmup_cosine" not in repr(sched) and "warmup_epochs=5" in repr(sched)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(total_steps=10), "needs warmup_steps or warmup_epochs"),
        (dict(warmup_steps=11, total_steps=10), r"warm-up \(11 steps\) must fit in the total \(10 steps\)"),
        (dict(warmup_steps=1, total_epochs=0), "total_epochs must be > 0"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupCosineLR(_optimizer(), **kwargs)
