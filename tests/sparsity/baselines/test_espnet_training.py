"""The baselines inside ESPnet's training (``MSRSASRTask.main``): resume after
a kill equals the uninterrupted run (masks, schedule position, random
state), CPU bf16 autocast, and identical masks on two gloo DDP ranks."""

import json

import pytest
import torch

from tests.tasks.test_msrs_procedure import (  # noqa: F401  (fixtures)
    STEPS_PER_EPOCH,
    assert_nested_close,
    assert_same_training_state,
    checkpoint,
    corpus,
    one_thread,
    task,
    train,
    train_killed,
    train_on_two_gloo_ranks,
)

# SET: random regrowth, so a resume must also restore the generator state
SET = ["--msrs_conf", "mode=set", "--msrs_conf", "sparsity=0.5",
       "--msrs_conf", "update_interval=3", "--max_epoch", "3"]
RIGL = ["--msrs_conf", "mode=rigl", "--msrs_conf", "sparsity=0.5",
        "--msrs_conf", "update_interval=2", "--max_epoch", "2"]


def _masks(out):
    return torch.load(out / "mask.pth", weights_only=True)["masks"]


@pytest.fixture(scope="module")
def set_run(task, corpus):
    return train(task, corpus, corpus["root"] / "set", *SET)


def test_set_run_updates_masks_and_keeps_zeros(set_run):
    report = json.loads((set_run / "sparsity_report.json").read_text())
    assert report["prunable"]["sparsity"] == pytest.approx(0.5, abs=1e-4)
    # 3 epochs x 4 steps = T = 12, ΔT = 3: updates at t = 3, 6, 9 (t < T)
    state = checkpoint(set_run)["optimizers"][0]
    from espnet_msrs.sparsity.sparse_method import STATE_KEY

    method = state[STATE_KEY]
    assert method["method"] == "set"
    assert method["state"]["steps"] == 3 * STEPS_PER_EPOCH
    assert method["state"]["mask_updates"] == 3
    model = torch.load(set_run / "3epoch.pth", weights_only=True)
    for name, mask in _masks(set_run).items():
        assert not model[name][~mask].any(), name


def test_set_resume_after_kill_equals_uninterrupted(task, corpus, set_run, monkeypatch):
    out = corpus["root"] / "set_killed"
    # dies in the 2nd step of epoch 2, after the epoch-1 checkpoint and before
    # the update at step 6
    train_killed(task, corpus, out, monkeypatch, STEPS_PER_EPOCH + 2, *SET)
    assert checkpoint(out)["reporter"]["epoch"] == 1
    train(task, corpus, out, *SET, "--resume", "true")
    assert_same_training_state(set_run, out)
    assert_nested_close(_masks(set_run), _masks(out))
    a = json.loads((set_run / "sparsity_report.json").read_text())
    b = json.loads((out / "sparsity_report.json").read_text())
    assert a["prunable"] == b["prunable"]


def test_rigl_under_cpu_bf16_autocast(task, corpus):
    out = train(task, corpus, corpus["root"] / "rigl_bf16", *RIGL, "--use_amp", "true")
    report = json.loads((out / "sparsity_report.json").read_text())
    assert report["prunable"]["sparsity"] == pytest.approx(0.5, abs=1e-4)
    model = torch.load(out / "2epoch.pth", weights_only=True)
    assert all(v.dtype != torch.bfloat16 for v in model.values())
    for name, mask in _masks(out).items():
        assert not model[name][~mask].any(), name
    assert "nan" not in json.dumps(report)


def test_rigl_ddp_two_cpu_ranks_have_identical_masks(corpus):
    out = corpus["root"] / "rigl_ddp"
    r0, r1 = train_on_two_gloo_ranks(
        corpus, out, RIGL,
        '{"masks": method.mask_state.masks, "updates": method.mask_updates}',
    )
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["updates"] == r1["updates"] > 0
    for name, mask in r0["masks"].items():
        assert torch.equal(mask, r1["masks"][name]), name
        assert not r0["model"][name][~mask].any(), name
    for name, value in r0["model"].items():
        assert torch.equal(value, r1["model"][name]), name
