"""Tests of espnet_msrs.lowrank.rank_schedule (LR-SMS eq. 2, Algorithm 1)."""

import math

import pytest

from espnet_msrs.lowrank.rank_schedule import (
    block_ranks,
    layer_alpha,
    layer_rank,
    parse_alpha,
)

KEY = "encoder_conf.mhsa_alpha"


@pytest.mark.parametrize(
    "value,expected",
    [
        (0.25, (0.25, 0.25)),
        (1, (1.0, 1.0)),
        ([0.1, 0.2], (0.1, 0.2)),
        ((0.3, 0.5), (0.3, 0.5)),
        ([0.5, 0.2], (0.5, 0.2)),
    ],
)
def test_parse_alpha(value, expected):
    parsed = parse_alpha(value, KEY)
    assert parsed == expected
    assert all(type(a) is float for a in parsed)


@pytest.mark.parametrize(
    "value",
    [0, 0.0, -0.1, 1.5, float("nan"), [0.1], [0.1, 0.2, 0.3], [0.1, 0.0],
     [0.2, 1.01], "0.1", None, True, [0.1, "0.2"]],
)
def test_parse_alpha_rejects_bad_values(value):
    with pytest.raises(ValueError, match=KEY) as err:
        parse_alpha(value, KEY)
    assert "(0, 1]" in str(err.value)


def test_layer_alpha_eq2():
    assert layer_alpha(0.1, 0.2, 0, 12) == pytest.approx(0.1)
    assert layer_alpha(0.1, 0.2, 6, 12) == pytest.approx(0.15)
    assert layer_alpha(0.1, 0.2, 11, 12) == pytest.approx(0.1 + 11 * 0.1 / 12)
    assert layer_alpha(0.3, 0.3, 5, 6) == pytest.approx(0.3)
    assert layer_alpha(0.4, 0.2, 1, 2) == pytest.approx(0.3)  # decreasing range
    assert layer_alpha(0.7, 0.9, 0, 1) == pytest.approx(0.7)


@pytest.mark.parametrize("b,num_blocks", [(-1, 12), (12, 12), (0, 0)])
def test_layer_alpha_rejects_bad_block(b, num_blocks):
    with pytest.raises(ValueError, match="num_blocks"):
        layer_alpha(0.1, 0.2, b, num_blocks)


def test_layer_rank_known_examples():
    # LR-SMS ASR, MHSA α ∈ [0.1, 0.2], 12 encoder blocks, d = 768
    assert layer_rank(layer_alpha(0.1, 0.2, 0, 12), 768, 768, KEY) == 76  # 76.8
    assert layer_rank(layer_alpha(0.1, 0.2, 11, 12), 768, 768, KEY) == 147  # 147.2
    # FFN α ∈ [0.2, 0.5] on a 3072×768 layer: min(m, n) = 768
    assert layer_rank(layer_alpha(0.2, 0.5, 0, 12), 3072, 768, KEY) == 153  # 153.6
    assert layer_rank(layer_alpha(0.2, 0.5, 11, 12), 768, 3072, KEY) == 364  # 364.8
    assert layer_rank(0.12, 768, 768, KEY) == 92  # uniform α = 0.12: 92.16
    assert layer_rank(1.0, 5, 9, KEY) == 5
    # exact products are not floored one below by float error (0.29·100 = 28.99…)
    assert 0.29 * 100 < 29
    assert layer_rank(0.29, 100, 100, KEY) == 29


def test_layer_rank_rejects_zero_rank_and_bad_alpha():
    with pytest.raises(ValueError, match=KEY) as err:
        layer_rank(0.001, 256, 512, KEY)
    assert "0.00390625" in str(err.value)  # the smallest α that works: 1/256
    assert layer_rank(1 / 256, 256, 512, KEY) == 1
    for alpha in (0.0, -0.5, 1.2, math.inf):
        with pytest.raises(ValueError, match=KEY):
            layer_rank(alpha, 8, 8, KEY)


def test_block_ranks():
    ranks = block_ranks(0.1, 0.2, 12, 768, 768, KEY)
    assert len(ranks) == 12
    assert (ranks[0], ranks[6], ranks[11]) == (76, 115, 147)
    assert ranks == sorted(ranks)  # linearly increasing with depth
    assert block_ranks(0.25, 0.25, 6, 256, 1024, KEY) == [64] * 6
    with pytest.raises(ValueError, match=KEY):
        block_ranks(0.001, 0.2, 4, 64, 64, KEY)  # block 0 rounds to rank 0
