"""Tests of the one selector of maskable weights and of apply_masks."""

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.masked_layers import MaskedConv1d, MaskedLinear
from espnet_msrs.sparsity.selection import (
    MASKED_CLASSES,
    MaskSelection,
    apply_masks,
    masked_modules,
)
from tests.helpers.toy_models import ALL_WEIGHTS, MyLinear, Toy


def test_apply_masks_default_masks_every_exact_linear_conv():
    torch.manual_seed(0)
    model = Toy()
    x = torch.randn(2, 2, 7)
    names = apply_masks(model, tau_forward=100.0)
    assert names == ALL_WEIGHTS
    assert isinstance(model.frontend, MaskedConv1d)
    assert isinstance(model.encoder[0], MaskedLinear)
    assert type(model.extra) is MyLinear
    assert MASKED_CLASSES[nn.Conv1d] is MaskedConv1d
    assert type(model.encoder[1]) is nn.LayerNorm
    assert model.encoder[0].tau_forward == 100.0
    logit_names = [n for n, _ in model.named_parameters() if "mask_logits" in n]
    assert logit_names == [n.replace(".weight", ".mask_logits") for n in ALL_WEIGHTS]
    assert "frontend.bias" in dict(model.named_parameters())
    with torch.no_grad():
        for m in masked_modules(model).values():
            m.mask_logits.fill_(1.0)
    assert model(x).shape == (2, 7, 5)


def test_apply_masks_include_exclude_and_idempotence():
    model = Toy()
    names = apply_masks(model, include=[r"^encoder\.", "output"], exclude=r"\.3\.")
    assert names == ["encoder.0.weight", "output_layer.weight"]
    assert type(model.encoder[3]) is nn.Linear
    assert type(model.frontend) is nn.Conv1d
    first = model.encoder[0]
    logits = first.mask_logits.detach().clone()
    again = apply_masks(model, include=r"^encoder\.", exclude=r"\.3\.")
    assert again == ["encoder.0.weight"]
    assert model.encoder[0] is first
    assert torch.equal(model.encoder[0].mask_logits, logits)
    assert list(masked_modules(model)) == ["encoder.0", "output_layer"]


@pytest.mark.parametrize(
    "kwargs,bad",
    [
        ({"include": [r"^encoder\.", r"^decoder\."]}, r"^decoder\."),
        ({"exclude": ["nothing_here"]}, "nothing_here"),
        ({"include": [r"\.bias$"]}, r"\.bias$"),
        ({"include": ["norm"]}, "norm"),
    ],
)
def test_apply_masks_unmatched_pattern_raises(kwargs, bad):
    model = Toy()
    with pytest.raises(ValueError) as err:
        apply_masks(model, **kwargs)
    assert repr(bad) in str(err.value)
    assert "encoder.0.weight" in str(err.value)
    assert not masked_modules(model)


def test_apply_masks_bad_regex_and_option():
    with pytest.raises(ValueError, match="valid regex"):
        apply_masks(Toy(), include=["("])
    with pytest.raises(ValueError, match="unknown mask option"):
        apply_masks(Toy(), lam=1.0)


def test_apply_masks_keeps_shared_module_shared():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    apply_masks(model)
    assert isinstance(model[0], MaskedLinear) and model[0] is model[2]


def test_selection_gives_weights_in_module_order_and_names_the_key():
    model = Toy()
    selection = MaskSelection(include=[r"^encoder\.", "output"], exclude=r"\.3\.")
    weights = selection.select(model)
    assert list(weights) == ["encoder.0.weight", "output_layer.weight"]
    assert weights["encoder.0.weight"] is model.encoder[0].weight
    assert list(MaskSelection().select(model)) == ALL_WEIGHTS
    assert [n for n, _ in MaskSelection.candidates(model)] == ALL_WEIGHTS
    with pytest.raises(ValueError, match=r"msrs_conf.include pattern 'decoder'"):
        MaskSelection(include=["decoder"]).select(model)
    with pytest.raises(ValueError, match=r"sparse_conf.exclude pattern '\('"):
        MaskSelection(exclude=["("], where="sparse_conf")
    # masked layers (after a search's apply_masks) are still selected
    apply_masks(model)
    assert list(MaskSelection().select(model)) == ALL_WEIGHTS


def test_tied_module_is_selected_once_under_its_first_name():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert list(MaskSelection().select(model)) == ["0.weight"]
