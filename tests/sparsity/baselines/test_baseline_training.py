"""The baselines on the shared mask mechanism (MaskedTraining + MaskState): a
real AdamW loop on a tiny model (ESPnet's order: backward, clip, step), exact
zeros, zero moments of regrown weights, constant budgets and bit-identical
resume."""

import copy

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.baselines import build_strategy
from espnet_msrs.sparsity.masked_training import MaskedTraining
from espnet_msrs.sparsity.selection import MaskSelection


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.ff = nn.Module()
        self.ff.w_1 = nn.Linear(6, 12)
        self.ff.w_2 = nn.Linear(12, 6)
        self.conv = nn.Conv1d(6, 4, 3)
        self.norm = nn.LayerNorm(6)

    def forward(self, x):  # x: (B, T, 6)
        h = self.norm(x + self.ff.w_2(torch.relu(self.ff.w_1(x))))
        return self.conv(h.transpose(1, 2)).pow(2).mean()


def build(method, seed=0, **options):
    torch.manual_seed(seed)
    model = Tiny()
    training = MaskedTraining(method, build_strategy(method, sparsity=0.5, seed=7,
                                                     **options))
    training.setup(model, MaskSelection(), seed=7)
    training.updates = []  # (step, sparsity after) of every strategy update
    update = training.strategy.update

    def recording_update(step, total, weights, masks, grads=None):
        new = update(step, total, weights, masks, grads)
        total_entries = sum(m.numel() for m in new.values())
        training.updates.append(
            (step, 1 - sum(int(m.sum()) for m in new.values()) / total_entries))
        return new

    training.strategy.update = recording_update
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.1)
    training.attach_optimizers([optimizer])
    training.start(model, steps_per_epoch=10, max_epoch=2)
    return model, optimizer, training


def train(model, optimizer, steps, seed=0, check=None):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(2, 5, 6, generator=gen)
        optimizer.zero_grad()
        model(x).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if check is not None:
            check()


def weights(training):
    return training.mask_state.params


@pytest.mark.parametrize("method,options", [
    ("set", {"update_interval": 3}),
    ("rigl", {"update_interval": 3}),
    ("chase", {"update_interval": 3, "channel_interval": 6, "channel_sparsity": 0.25}),
])
def test_prune_and_grow_keeps_exact_zeros_and_zero_moments(method, options):
    model, optimizer, training = build(method, **options)
    selected = weights(training)
    assert set(selected) == {"ff.w_1.weight", "ff.w_2.weight", "conv.weight"}
    budget = training.mask_state.masks
    active0 = sum(int(m.sum()) for m in budget.values())
    assert active0 == round(0.5 * sum(p.numel() for p in selected.values()))
    before = {}

    def check():
        state = training.mask_state
        for name, param in state.params.items():
            mask = state.masks[name]
            assert torch.equal(param[~mask], torch.zeros_like(param[~mask])), name
            moments = optimizer.state[param]
            assert not moments["exp_avg"][~mask].any()
            assert not moments["exp_avg_sq"][~mask].any()
        if method in ("set", "rigl"):
            assert sum(int(m.sum()) for m in state.masks.values()) == active0

    # one update step by hand: the regrown entries start at weight 0 / moments 0
    train(model, optimizer, 2, check=check)
    before = {n: m.clone() for n, m in training.mask_state.masks.items()}
    grown_values = {}

    def record_grown(opt, args, kwargs):
        for name, param in training.mask_state.params.items():
            grown = training.mask_state.masks[name] & ~before[name]
            grown_values[name] = (
                param[grown].clone(), opt.state[param]["exp_avg"][grown].clone(),
                opt.state[param]["exp_avg_sq"][grown].clone(), int(grown.sum()))

    handle = optimizer.register_step_pre_hook(record_grown)  # runs after ours
    train(model, optimizer, 1, seed=1, check=check)  # step 3: an update step
    handle.remove()
    assert [u[0] for u in training.updates] == [3]
    assert sum(v[3] for v in grown_values.values()) > 0
    for name, (w, m1, m2, n) in grown_values.items():
        assert not w.any() and not m1.any() and not m2.any(), name
    train(model, optimizer, 17, seed=2, check=check)
    assert training.steps == 20


def test_gmp_reaches_the_target_at_the_end_and_pruned_weights_stay_zero():
    model, optimizer, training = build("gmp", update_interval=2, end_fraction=0.5)
    assert training.mask_state.sparsity() == 0.0
    train(model, optimizer, 20)
    assert training.mask_state.sparsity() == pytest.approx(0.5, abs=0.01)
    assert [u[0] for u in training.updates] == [2, 4, 6, 8, 10]
    sparsities = [u[1] for u in training.updates]
    assert sparsities == sorted(sparsities) and sparsities[-1] == pytest.approx(0.5, abs=0.01)
    for name, param in weights(training).items():
        assert not param[~training.mask_state.masks[name]].any()


def test_chase_final_masks_are_at_the_budget():
    # the last prune-and-grow update (t = 18 < T_p = 20) is inside the soft
    # bound and leaves extra weights active
    model, optimizer, training = build("chase", update_interval=6, channel_interval=6,
                                       exploration_end=1.0, channel_sparsity=0.2,
                                       extra_density=0.5)
    train(model, optimizer, 18)
    assert [u[0] for u in training.updates] == [6, 12, 18]
    assert training.updates[-1][1] < 0.5 - 0.01
    train(model, optimizer, 2, seed=1)
    # step 20 = T: the soft bound's extra weights are pruned back, so the
    # last model file is at the target sparsity
    assert training.mask_state.sparsity() == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("method", ["set", "chase"])
def test_resume_continues_bit_identically(method, tmp_path):
    options = {"update_interval": 3}
    if method == "chase":
        options.update(channel_interval=6, channel_sparsity=0.25)
    # uninterrupted: 20 steps
    model_a, opt_a, train_a = build(method, **options)
    train(model_a, opt_a, 8, seed=0)
    train(model_a, opt_a, 12, seed=1)
    # interrupted after 8 steps: save like ESPnet (model + optimizer state dicts)
    model_b, opt_b, train_b = build(method, **options)
    train(model_b, opt_b, 8, seed=0)
    torch.save({"model": model_b.state_dict(), "optimizers": [opt_b.state_dict()]},
               tmp_path / "checkpoint.pth")
    # a fresh process: build, setup, start, then ESPnet's resume
    model_c, opt_c, train_c = build(method, seed=123, **options)
    ckpt = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    model_c.load_state_dict(ckpt["model"])
    opt_c.load_state_dict(ckpt["optimizers"][0])
    assert train_c.steps == 8
    train(model_c, opt_c, 12, seed=1)
    for (name, p_a), (_, p_c) in zip(model_a.named_parameters(), model_c.named_parameters()):
        assert torch.equal(p_a, p_c), name
    for name in train_a.mask_state.masks:
        assert torch.equal(train_a.mask_state.masks[name], train_c.mask_state.masks[name])
    assert train_a.mask_updates == train_c.mask_updates > 0


def test_start_needs_the_steps_per_epoch():
    model, optimizer, training = build("rigl")
    with pytest.raises(ValueError, match="steps per"):
        training.start(model, steps_per_epoch=0, max_epoch=3)
