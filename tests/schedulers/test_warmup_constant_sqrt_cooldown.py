"""Tests of the LR-SMS ASR schedule (warm-up, constant, 1-sqrt cool-down)."""

import math

import pytest
import torch

from espnet_msrs.schedulers.warmup_constant_sqrt_cooldown import (
    WarmupConstantSqrtCooldownLR,
)

PEAK = 6.0e-4


def _optimizer(lr=PEAK):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def lrs_used(scheduler, optimizer, num_updates):
    """The learning rate each of ``num_updates`` updates runs with, as in
    ESPnet's trainer (optimizer.step(), then scheduler.step())."""
    used = []
    for _ in range(num_updates):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return used


def test_warmup_end_cooldown_start_and_last_step():
    optimizer = _optimizer()
    sched = WarmupConstantSqrtCooldownLR(
        optimizer, warmup_steps=10, cooldown_steps=40, total_steps=100
    )
    used = lrs_used(sched, optimizer, 110)
    assert used[0] == pytest.approx(PEAK / 10)  # update 1
    assert used[9] == pytest.approx(PEAK)  # update W = 10: warm-up end
    assert used[10:60] == [PEAK] * 50  # constant up to N - C = 60
    assert used[59] == PEAK  # cool-down start (last update at the peak)
    # 1-sqrt: update 60 + 10 -> 1 - sqrt(10/40) = 0.5
    assert used[69] == pytest.approx(PEAK * 0.5)
    assert used[99] == 0.0  # the last update n = N
    assert used[98] == pytest.approx(PEAK * (1 - math.sqrt(39 / 40)))
    assert used[100:] == [0.0] * 10  # after N
    # linear warm-up, monotone cool-down
    assert used[:10] == pytest.approx([PEAK * n / 10 for n in range(1, 11)])
    assert all(a > b for a, b in zip(used[60:99], used[61:100]))


def test_peak_is_the_optimizer_lr_for_every_param_group():
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    optimizer = torch.optim.AdamW(
        [{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 2e-3}]
    )
    sched = WarmupConstantSqrtCooldownLR(
        optimizer, warmup_steps=2, cooldown_steps=4, total_steps=8
    )
    for _ in range(2):
        optimizer.step()
        sched.step()
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 2e-3]


def test_no_warmup_and_no_cooldown():
    optimizer = _optimizer()
    sched = WarmupConstantSqrtCooldownLR(
        optimizer, warmup_steps=0, cooldown_steps=0, total_steps=5
    )
    assert lrs_used(sched, optimizer, 7) == [PEAK] * 5 + [0.0] * 2


def test_epochs_are_sized_by_set_steps_per_epoch():
    optimizer = _optimizer()
    sched = WarmupConstantSqrtCooldownLR(
        optimizer, warmup_epochs=5, cooldown_epochs=15
    )
    assert sched.needs_steps_per_epoch
    assert optimizer.param_groups[0]["lr"] == 0.0  # not sized: no update yet
    optimizer.step()
    with pytest.raises(ValueError, match="stated in epochs but was stepped before"):
        sched.step()

    optimizer = _optimizer()
    sched = WarmupConstantSqrtCooldownLR(
        optimizer, warmup_epochs=5, cooldown_epochs=15
    )
    sched.set_steps_per_epoch(4, max_epoch=75)
    assert not sched.needs_steps_per_epoch
    assert (sched.warmup_steps, sched.cooldown_steps, sched.total_steps) == (20, 60, 300)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(PEAK / 20)
    assert sched.get_last_lr() == [pytest.approx(PEAK / 20)]
    used = lrs_used(sched, optimizer, 300)
    assert used[19] == pytest.approx(PEAK) and used[239] == PEAK
    assert used[299] == 0.0
    assert "warmup_epochs=5, warmup_steps=20" in repr(sched)


def test_fractional_epochs_and_explicit_total():
    optimizer = _optimizer()
    sched = WarmupConstantSqrtCooldownLR(
        optimizer, warmup_epochs=0.5, cooldown_steps=7, total_epochs=3
    )
    sched.set_steps_per_epoch(10, max_epoch=3)
    assert (sched.warmup_steps, sched.cooldown_steps, sched.total_steps) == (5, 7, 30)


def test_total_other_than_max_epoch_is_logged(caplog):
    sched = WarmupConstantSqrtCooldownLR(
        _optimizer(), warmup_epochs=1, cooldown_epochs=1, total_epochs=4
    )
    with caplog.at_level("INFO"):
        sched.set_steps_per_epoch(10, max_epoch=3)  # a cut-off schedule (search)
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "total_steps=40 > --max_epoch=3 x 10 steps" in caplog.text
    caplog.clear()
    sched = WarmupConstantSqrtCooldownLR(
        _optimizer(), warmup_epochs=1, cooldown_epochs=1, total_epochs=2
    )
    with caplog.at_level("INFO"):
        sched.set_steps_per_epoch(10, max_epoch=3)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "the last 10 updates run at learning rate 0" in caplog.text


def test_state_dict_round_trip_keeps_the_sized_schedule():
    optimizer = _optimizer()
    sched = WarmupConstantSqrtCooldownLR(optimizer, warmup_epochs=1, cooldown_epochs=1)
    sched.set_steps_per_epoch(3, max_epoch=4)
    lrs_used(sched, optimizer, 5)
    state = sched.state_dict()

    optimizer2 = _optimizer()
    resumed = WarmupConstantSqrtCooldownLR(optimizer2, warmup_epochs=1, cooldown_epochs=1)
    resumed.set_steps_per_epoch(5, max_epoch=4)  # a different run length...
    resumed.load_state_dict(state)  # ...but the checkpoint's schedule wins
    optimizer2.load_state_dict(optimizer.state_dict())
    assert (resumed.total_steps, resumed.last_epoch) == (12, 5)
    assert lrs_used(resumed, optimizer2, 7) == lrs_used(sched, optimizer, 7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(warmup_steps=1, warmup_epochs=1, cooldown_steps=1), "not both"),
        (dict(cooldown_steps=1), "needs warmup_steps or warmup_epochs"),
        (dict(warmup_steps=1), "needs cooldown_steps or cooldown_epochs"),
        (dict(warmup_steps=-1, cooldown_steps=1), r"warmup_steps=-1 must be"),
        (dict(warmup_epochs=float("nan"), cooldown_steps=1), "finite"),
        (dict(warmup_steps=6, cooldown_steps=5, total_steps=10), r"must fit in the total \(10 steps\)"),
        (dict(warmup_steps=0, cooldown_steps=0, total_steps=0), "must be > 0"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WarmupConstantSqrtCooldownLR(_optimizer(), **kwargs)


def test_lengths_that_do_not_fit_once_sized_name_the_epochs():
    sched = WarmupConstantSqrtCooldownLR(_optimizer(), warmup_epochs=2, cooldown_epochs=2)
    with pytest.raises(ValueError, match=r"steps_per_epoch=4; warmup_epochs=2, cooldown_epochs=2"):
        sched.set_steps_per_epoch(4, max_epoch=3)
