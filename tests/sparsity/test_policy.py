"""Tests of applying MSRS masks by pattern and of fixed-mask retraining."""

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.masked_layers import MaskedConv1d, MaskedLinear
from espnet_msrs.sparsity.policy import (
    MASKED_CLASSES,
    FixedMaskHooks,
    apply_masks,
    binary_masks,
    folded_state_dict,
    load_mask_metadata,
    load_masks,
    mask_penalty,
    mask_sparsity,
    masked_modules,
    save_masks,
    strip_masks,
)


class MyLinear(nn.Linear):
    """A Linear subclass: not an exact type, never masked."""


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.frontend = nn.Conv1d(2, 4, 3, padding=1)
        self.encoder = nn.Sequential(
            nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 4)
        )
        self.extra = MyLinear(4, 4)
        self.output_layer = nn.Linear(4, 5, bias=False)

    def forward(self, x):  # x: (B, 2, T)
        h = self.frontend(x).transpose(1, 2)
        return self.output_layer(self.extra(self.encoder(h)))


ALL_WEIGHTS = ["frontend.weight", "encoder.0.weight", "encoder.3.weight",
               "output_layer.weight"]


def _set_logits(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in masked_modules(model).values():
            sign = torch.randint(0, 2, module.weight.shape, generator=gen) * 2 - 1
            module.mask_logits.copy_(sign * 0.5)


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


def test_mask_penalty_is_sum_and_differentiable():
    torch.manual_seed(1)
    model = Toy()
    apply_masks(model)
    with torch.no_grad():
        for m in masked_modules(model).values():
            m.mask_logits.normal_()
    expected = sum(m.mask_logits.sum() for m in masked_modules(model).values())
    penalty = mask_penalty(model)
    assert penalty.dim() == 0
    torch.testing.assert_close(penalty, expected)
    penalty.backward()
    for m in masked_modules(model).values():
        assert torch.equal(m.mask_logits.grad, torch.ones_like(m.mask_logits))
    assert float(mask_penalty(nn.Linear(2, 2))) == 0.0


def test_binary_masks_and_sparsity():
    model = Toy()
    apply_masks(model)
    _set_logits(model)
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
    _set_logits(model, seed=3)
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
    _set_logits(model)
    x = torch.randn(1, 2, 5)
    expected = model(x)
    names = strip_masks(model)
    assert names == ALL_WEIGHTS
    assert not masked_modules(model)
    assert type(model.frontend) is nn.Conv1d and type(model.encoder[0]) is nn.Linear
    torch.testing.assert_close(model(x), expected)


def test_save_and_load_masks(tmp_path):
    masks = {"a.weight": torch.tensor([[True, False], [False, False]]),
             "b.weight": torch.ones(3, dtype=torch.bool)}
    path = tmp_path / "sub" / "masks.pt"
    save_masks(masks, path, metadata={"epoch": 3})
    loaded = load_masks(path)
    assert list(loaded) == list(masks)
    for k in masks:
        assert torch.equal(loaded[k], masks[k])
    meta = load_mask_metadata(path)
    assert meta["epoch"] == 3 and meta["numel"] == 7 and meta["zeros"] == 3
    assert meta["sparsity"] == pytest.approx(3 / 7)
    with pytest.raises(ValueError, match="bool"):
        save_masks({"a": torch.ones(2)}, tmp_path / "x.pt")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt"):
        load_masks(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="missing.pt"):
        load_masks(tmp_path / "missing.pt")


def _regression_model_and_masks(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    gen = torch.Generator().manual_seed(seed)
    masks = {
        "0.weight": torch.rand(8, 6, generator=gen) < 0.6,
        "2.weight": torch.rand(3, 8, generator=gen) < 0.6,
    }
    return model, masks


def _step(model, optimizer, gen):
    x = torch.randn(16, 6, generator=gen)
    y = torch.randn(16, 3, generator=gen)
    optimizer.zero_grad()
    loss = (model(x) - y).square().mean()
    loss.backward()
    optimizer.step()


def test_sparse_mode_keeps_masked_weights_exactly_zero():
    model, masks = _regression_model_and_masks(5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # dense steps: non-zero optimizer state everywhere
        _step(model, optimizer, gen)
    hooks = FixedMaskHooks(model, masks, mode="sparse")
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert (params[name][~mask] == 0.0).all()
    start = {n: params[n].detach().clone() for n in masks}
    hooks.attach_optimizer(optimizer)
    for _ in range(100):
        _step(model, optimizer, gen)
    for name, mask in masks.items():
        w = params[name].detach()
        assert torch.equal(w[~mask], torch.zeros_like(w[~mask]))
        assert (w[mask] != start[name][mask]).all()
        assert (params[name].grad[~mask] == 0.0).all()
    hooks.remove()


def test_grad_masked_mode_masks_gradients_only():
    model, masks = _regression_model_and_masks(6)
    params = dict(model.named_parameters())
    start = {n: params[n].detach().clone() for n in masks}
    hooks = FixedMaskHooks(model, masks, mode="grad_masked")
    for name in masks:  # weights are not zeroed
        assert torch.equal(params[name], start[name])
    lr, wd = 1e-2, 0.1
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    hooks.attach_optimizer(optimizer)  # a no-op in this mode
    _step(model, optimizer, torch.Generator().manual_seed(1))
    for name, mask in masks.items():
        grad = params[name].grad
        assert torch.equal(grad[~mask], torch.zeros_like(grad[~mask]))
        assert (grad[mask] != 0).any()
        # Decoupled weight decay is not a gradient: it still shrinks them.
        torch.testing.assert_close(
            params[name][~mask], start[name][~mask] * (1 - lr * wd)
        )
    hooks.remove()
    optimizer.zero_grad()
    model(torch.randn(4, 6)).sum().backward()
    assert (params["0.weight"].grad[~masks["0.weight"]] != 0).any()


def test_fixed_mask_validation():
    model, masks = _regression_model_and_masks(7)
    with pytest.raises(ValueError, match="'1.weight'"):
        FixedMaskHooks(model, {"1.weight": torch.ones(8, 6, dtype=torch.bool)})
    with pytest.raises(ValueError, match="'2.weight'.*shape"):
        FixedMaskHooks(model, {"2.weight": torch.ones(8, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="mode"):
        FixedMaskHooks(model, masks, mode="dense")


def test_masks_from_search_drive_plain_retraining(tmp_path):
    """Search model -> saved binary masks -> plain model retrained sparse."""
    torch.manual_seed(8)
    search = Toy()
    apply_masks(search)
    _set_logits(search, seed=9)
    save_masks(binary_masks(search), tmp_path / "masks.pt")
    masks = load_masks(tmp_path / "masks.pt")
    retrain = Toy()
    retrain.load_state_dict(folded_state_dict(search))
    hooks = FixedMaskHooks(retrain, masks, mode="sparse")
    optimizer = torch.optim.AdamW(retrain.parameters(), lr=1e-2, weight_decay=0.1)
    hooks.attach_optimizer(optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        retrain(torch.randn(2, 2, 7)).square().mean().backward()
        optimizer.step()
    params = dict(retrain.named_parameters())
    assert sorted(hooks.masks) == sorted(ALL_WEIGHTS)
    for name, mask in masks.items():
        assert (params[name][~mask] == 0.0).all()
        assert (params[name][mask] != 0.0).all()
