"""Tests of bench/common.py: the FLOP counter, ratios and the CPU clock."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench import common


@pytest.mark.parametrize("groups", [1, 4, 16])
def test_conv_backward_flops_account_for_groups(groups):
    conv = torch.nn.Conv1d(16, 16, 5, padding=2, groups=groups)
    x = torch.randn(2, 16, 9, requires_grad=True)
    forward, backward, torch_backward = (common.flop_counter(), common.flop_counter(),
                                         FlopCounterMode(display=False))
    with forward:
        y = conv(x)
    # multiply-adds of the forward: every output x (16 / groups) inputs x 5 taps
    assert forward.get_total_flops() == 2 * 2 * 16 * 9 * (16 // groups) * 5
    with backward:
        y.sum().backward(retain_graph=True)
    # gradients of the input and of the weight: one forward's worth each
    assert backward.get_total_flops() == 2 * forward.get_total_flops()
    with torch_backward:
        y.sum().backward()
    if groups == 1:  # torch's own formula agrees where it is right
        assert torch_backward.get_total_flops() == backward.get_total_flops()
    else:  # ... and counts a grouped backward as a dense one
        assert torch_backward.get_total_flops() > backward.get_total_flops()
    # no input gradient wanted: only the weight's
    x.requires_grad_(False)
    y = conv(x)
    only_weight = common.flop_counter()
    with only_weight:
        y.sum().backward()
    assert only_weight.get_total_flops() == forward.get_total_flops()


def test_paired_ratio_and_summary():
    r = common.paired_ratio([2.0, 3.0, 8.0], [1.0, 1.0, 2.0])
    assert r["median"] == 3.0 and r["p25"] == 2.5 and r["p75"] == 3.5
    s = common.summary([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert s["samples"] == [3.0, 1.0, 2.0]
    assert common.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_cpu_clock_counts_finished_children():
    import subprocess
    import sys

    clock = common.CPUClock()
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"],
                   check=True)
    elapsed = clock.elapsed()
    assert elapsed["children_cpu"] > 0.05
    assert elapsed["wall"] >= elapsed["cpu"] >= 0
