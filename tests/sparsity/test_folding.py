"""Tests of binary masks of masked layers and of folding them into weights."""

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.folding import (
    binary_masks,
    folded_state_dict,
    mask_sparsity,
    masks_sparsity,
    strip_masks,
)
from espnet_msrs.sparsity.selection import apply_masks, masked_modules
from tests.helpers.toy_models import ALL_WEIGHTS, Toy, set_logits


def test_binary_masks_and_sparsity():
    model = Toy()
    apply_masks(model)
    set_logits(model)
    masks = binary_masks(model)
    assert list(masks) == ALL_WEIGHTS
    total = sum(m.numel() for m in masks.values())
    zeros = sum(int((m.mask_logits < 0).sum()) for m in masked_modules(model).values())
    for name, m in masked_modules(model).items():
        assert torch.equal(masks[f"{name}.weight"], m.mask_logits >= 0)
    assert 0 < zeros < total
    assert mask_sparsity(model) == pytest.approx(zeros / total)


def test_folded_state_dict_loads_into_plain_model():
    torch.manual_seed(2)
    model = Toy()
    apply_masks(model, exclude="output")
    set_logits(model, seed=3)
    x = torch.randn(2, 2, 7)
    expected = model(x)
    state = folded_state_dict(model)
    assert not [k for k in state if "mask_logits" in k]
    plain = Toy()
    plain.load_state_dict(state, strict=True)
    torch.testing.assert_close(plain(x), expected)
    for name, mask in binary_masks(model).items():
        assert (state[name][~mask] == 0.0).all()
        theta = dict(model.named_parameters())[name]
        assert torch.equal(state[name][mask], theta[mask])


def test_strip_masks_in_place():
    torch.manual_seed(4)
    model = Toy()
    apply_masks(model)
    set_logits(model)
    x = torch.randn(1, 2, 5)
    expected = model(x)
    names = strip_masks(model)
    assert names == ALL_WEIGHTS
    assert not masked_modules(model)
    assert type(model.frontend) is nn.Conv1d and type(model.encoder[0]) is nn.Linear
    torch.testing.assert_close(model(x), expected)


def test_masks_sparsity_counts_zeros_over_all_entries():
    masks = {"a": torch.tensor([True, False, False]), "b": torch.ones(5, dtype=torch.bool)}
    assert masks_sparsity(masks) == pytest.approx(2 / 8)
    assert masks_sparsity({}) == 0.0
