"""End-to-end tests of the MSRS procedure (MSRS paper, Algorithm 1) in ESPnet.

Every run is a real ``MSRSASRTask.main(cmd=[...])`` (espnet2's trainer,
iterators, checkpoints) on a tiny generated corpus, in this process except
the DDP test.  Runs are shared through module-scoped fixtures:

search (λ large for tiny data) -> artifacts -> dense / sparse / grad-masked
retraining; plus the λ = 0 equivalence, resume after a kill in both phases,
bf16 AMP in both phases and a 2-process gloo DDP search.
"""

import contextlib
import json
import logging
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.helpers.micro_model import MICRO_CONFIG
from tests.helpers.tiny_corpus import make_tiny_corpus

REPO = Path(__file__).resolve().parents[2]
MAX_SEARCH_EPOCHS = 8
STEPS_PER_EPOCH = 4  # 8 training utterances, batch size 2

#: The micro model of tests/helpers/micro_model.py with our encoder/decoder,
#: the Conformer flavour of the papers, LayerScale, a φ optimizer and
#: per-batch logging (tensorboard kept: the gradient-norm test reads it).
CONFIG = {
    **{k: v for k, v in MICRO_CONFIG.items() if k not in ("use_tensorboard", "max_epoch")},
    "encoder": "msrs_conformer",
    "encoder_conf": {
        **MICRO_CONFIG["encoder_conf"],
        "macaron_style": True,
        "rel_pos_type": "latest",
        "pos_enc_layer_type": "rel_pos",
        "selfattention_layer_type": "rel_selfattn",
        "use_cnn_module": True,
        "layer_scale": True,  # LayerScale + MSRS in one run (MSRS Table 1)
    },
    "decoder": "msrs_transformer",
    "optim_conf": {"lr": 0.003, "betas": [0.9, 0.98], "weight_decay": 0.01},
    # φ: AdamW without weight decay, cosine with warm-up over the search.
    "optim2": "adamw",
    "optim2_conf": {"lr": 0.001, "betas": [0.9, 0.98]},
    "scheduler2": "cosineannealingwarmuprestarts",
    "scheduler2_conf": {
        "first_cycle_steps": 24,
        "warmup_steps": 4,
        "max_lr": 0.001,
        "min_lr": 0.0,
    },
    "grad_clip": 5.0,
    "keep_nbest_models": 1,
    "log_interval": 1,
}
# λ must grow as the data shrinks (MSRS Sec. 4): 2e-10 is for LRS3.
SEARCH = ["--msrs_conf", "mode=search", "--msrs_conf", "mask_penalty=1.0e-5",
          "--max_epoch", str(MAX_SEARCH_EPOCHS)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest (and deterministically) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def task():
    import espnet_msrs  # noqa: F401  (registers our classes)
    from espnet_msrs.tasks.asr import MSRSASRTask

    return MSRSASRTask


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("msrs_corpus")
    paths = make_tiny_corpus(root, sets={"train": 8, "valid": 4})
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    paths["config"] = config
    paths["root"] = root
    return paths


def _cmd(corpus, out: Path, extra) -> list:
    data = {}
    for name in ("train", "valid"):
        d = corpus[name]
        data[name] = [
            f"--{name}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
            f"--{name}_data_path_and_name_and_type", f"{d}/text,text,text",
            f"--{name}_shape_file", f"{d}/text",
        ]
    return [
        "--config", str(corpus["config"]),
        "--output_dir", str(out),
        "--token_list", str(corpus["token_list"]),
        "--token_type", "char",
        "--ngpu", "0",
        *data["train"], *data["valid"], *extra,
    ]


def train(task, corpus, out: Path, *extra) -> Path:
    task.main(cmd=_cmd(corpus, out, list(extra)))
    return out


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)


def assert_nested_close(a, b, path="", atol=1e-6):
    """Tensors, numbers, dicts and lists equal within ``atol``."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.shape == b.shape and a.dtype == b.dtype, path
        if a.is_floating_point():
            torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=path)
        else:
            assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_nested_close(a[k], b[k], f"{path}.{k}", atol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_nested_close(x, y, f"{path}[{i}]", atol)
    elif isinstance(a, float):
        both_nan = math.isnan(a) and math.isnan(b)
        assert math.isclose(a, b, abs_tol=atol) or both_nan, path
    else:
        assert a == b, (path, a, b)


def assert_same_training_state(dir_a: Path, dir_b: Path) -> None:
    """Same weights, φ, controller history, optimizer and scheduler states."""
    a, b = checkpoint(dir_a), checkpoint(dir_b)
    assert_nested_close(a["model"], b["model"], "model")
    assert_nested_close(a["optimizers"], b["optimizers"], "optimizers")
    assert_nested_close(a["schedulers"], b["schedulers"], "schedulers")
    assert a["reporter"]["epoch"] == b["reporter"]["epoch"]
    for epoch, phases in a["reporter"]["stats"].items():
        for key in ("loss", "loss_att", "loss_ctc"):
            assert phases["valid"][key] == pytest.approx(
                b["reporter"]["stats"][epoch]["valid"][key], abs=1e-6
            )


def plain_model_keys(task, corpus, out: Path) -> set:
    """State-dict keys of the same model built without any MSRS machinery."""
    from espnet2.tasks.asr import ASRTask

    model, _ = ASRTask.build_model_from_file(out / "config.yaml", None, "cpu")
    return set(model.state_dict())


class Killed(Exception):
    pass


def train_killed(task, corpus, out, monkeypatch, kill_at_step, *extra):
    """A run that dies in its ``kill_at_step``-th training forward."""
    build = task.build_model.__func__

    def build_and_arm(cls, args):
        model = build(cls, args)
        steps = {"n": 0}

        def bomb(module, inputs):
            if module.training:
                steps["n"] += 1
                if steps["n"] == kill_at_step:
                    raise Killed

        model.register_forward_pre_hook(bomb)
        return model

    with monkeypatch.context() as m:
        m.setattr(task, "build_model", classmethod(build_and_arm))
        with pytest.raises(Killed):
            train(task, corpus, out, *extra)


# ------------------------------------------------------------- task options
def _optim_args(**kw):
    import argparse

    base = dict(optim="adamw", optim_conf={"lr": 1e-3, "weight_decay": 0.1},
                optim2="adamw", optim2_conf={"lr": 1e-2}, exclude_weight_decay=False,
                exclude_weight_decay_conf={}, grad_clip=1.0, grad_clip_type=2.0,
                sharded_ddp=False)
    return argparse.Namespace(**{**base, **kw})


def _masked_toy():
    from espnet_msrs.sparsity.selection import apply_masks

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4),
                                torch.nn.Linear(4, 2))
    apply_masks(model)
    return model


def test_two_optimizers_theta_in_order_and_phi_without_weight_decay(task):
    from espnet_msrs.tasks.asr import build_msrs_optimizers

    model = _masked_toy()
    theta_opt, phi_opt = build_msrs_optimizers(_optim_args(), model)
    theta = [p for n, p in model.named_parameters() if not n.endswith("mask_logits")]
    phi = [p for n, p in model.named_parameters() if n.endswith("mask_logits")]
    assert theta_opt.param_groups[0]["params"] == theta
    assert theta_opt.param_groups[0]["weight_decay"] == 0.1
    assert phi_opt.param_groups[0]["params"] == phi
    assert phi_opt.param_groups[0]["weight_decay"] == 0.0
    assert phi_opt.param_groups[0]["lr"] == 1e-2
    with pytest.raises(ValueError, match="weight_decay must be 0"):
        build_msrs_optimizers(_optim_args(optim2_conf={"weight_decay": 0.01}), model)
    # ESPnet's --exclude_weight_decay works on θ and keeps φ out
    theta_opt, _ = build_msrs_optimizers(_optim_args(exclude_weight_decay=True), model)
    grouped = [p for g in theta_opt.param_groups for p in g["params"]]
    assert {id(p) for p in grouped} == {id(p) for p in theta}
    no_decay = [p for g in theta_opt.param_groups if g["weight_decay"] == 0.0
                for p in g["params"]]
    assert len(no_decay) == 4  # 2 biases + LayerNorm weight and bias
    # a dense model gets one optimizer
    assert len(build_msrs_optimizers(_optim_args(), torch.nn.Linear(2, 2))) == 1


def test_phi_gradients_are_clipped_on_their_own(task):
    from espnet_msrs.tasks.asr import build_msrs_optimizers

    model = _masked_toy()
    _, phi_opt = build_msrs_optimizers(_optim_args(grad_clip=1e-3), model)
    phi = [p for n, p in model.named_parameters() if n.endswith("mask_logits")]
    for p in phi:
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in phi]
    phi_opt.step()
    assert float(torch.cat([p.grad.flatten() for p in phi]).norm()) == pytest.approx(
        1e-3, rel=1e-4
    )
    assert all(not torch.equal(a, p) for a, p in zip(before, phi))
    for p in phi:  # a non-finite φ gradient skips the φ update
        p.grad = torch.full_like(p, float("inf"))
    before = [p.detach().clone() for p in phi]
    phi_opt.step()
    assert all(torch.equal(a, p) for a, p in zip(before, phi))


# --------------------------------------------------------------------- search
@contextlib.contextmanager
def log_to(path: Path):
    """ESPnet's logging of the run into ``path`` (the recipe's train.log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(
        "[host] %(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
    ))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


@pytest.fixture(scope="module")
def search(task, corpus):
    out = corpus["root"] / "search"
    with log_to(out / "train.log"):
        return train(task, corpus, out, *SEARCH)


def test_search_sparsity_rises_and_stops_by_epsilon(search):
    report = json.loads((search / "sparsity_report.json").read_text())
    s = report["search"]
    hist = s["sparsity_history"]
    assert s["stop_reason"] == "converged"
    assert s["epochs"] == list(range(len(hist)))
    assert s["final_epoch"] < MAX_SEARCH_EPOCHS  # by ε, not by the epoch cap
    assert hist[0] < 0.05  # φ0 of eq. 3 prunes only |θ0| < e^-6
    assert hist[-1] > 0.3
    assert hist[1] - hist[0] > 0.1  # it rose
    assert abs(hist[-1] - hist[-2]) < s["epsilon"] == 0.01
    assert all(abs(b - a) >= 0.01 for a, b in zip(hist[1:-2], hist[2:-1]))
    # the run stopped right after the converged epoch: no later checkpoint
    assert checkpoint(search)["reporter"]["epoch"] == s["final_epoch"]
    assert not (search / f"{s['final_epoch'] + 1}epoch.pth").exists()


def test_search_artifacts(task, corpus, search):
    from espnet_msrs.sparsity.mask_file import load_mask_metadata, load_masks

    masks = load_masks(search / "mask.pth")
    meta = load_mask_metadata(search / "mask.pth")
    report = json.loads((search / "sparsity_report.json").read_text())
    state = checkpoint(search)["model"]
    init = torch.load(search / "init.pth", map_location="cpu", weights_only=True)

    # binary mask m* = 1[φ_j >= 0] of the last search epoch
    assert len(masks) == 27  # every Linear/Conv weight of the model
    for name, mask in masks.items():
        phi = state[name.removesuffix("weight") + "mask_logits"]
        assert torch.equal(mask, phi >= 0), name
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert meta["zeros"] == zeros == report["prunable"]["zeros"]
    assert meta["sparsity"] == pytest.approx(report["search"]["sparsity_history"][-1])
    assert meta["stop_reason"] == "converged"

    # init.pth = θ_j ⊙ m*, a plain ESPnet state dict
    assert set(init) == plain_model_keys(task, corpus, search)
    assert not any("mask_logits" in k for k in init)
    for name, mask in masks.items():
        assert torch.equal(init[name], state[name] * mask), name
        assert torch.all(init[name][~mask] == 0)

    # report: per group, over prunable weights and over all parameters
    assert report["all_params"]["numel"] > report["prunable"]["numel"]
    assert report["all_params"]["zeros"] == report["prunable"]["zeros"]
    assert {"encoder.input", "encoder.block0", "decoder.block0", "output"} <= set(
        report["groups"]
    )
    assert sum(report["phi_histogram"]["counts"]) == report["prunable"]["numel"]
    for png in ("sparsity_groups.png", "phi_hist.png"):
        assert (search / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    env = json.loads((search / "environment.json").read_text())
    assert env["torch"] == torch.__version__


def test_search_reports_loss_terms_sparsity_phi_and_grad_norm(search):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    keys = {"loss_att", "loss_ctc", "mask_penalty", "sparsity", "phi_mean",
            "phi_std", "phi_min", "phi_max", "grad_norm_enc0_ffn", "grad_norm"}
    stats = checkpoint(search)["reporter"]["stats"]
    assert keys <= set(stats[1]["train"])
    assert stats[2]["train"]["mask_penalty"] < 0  # λΣφ with φ pushed negative
    assert 0 < stats[2]["train"]["sparsity"] < 1
    assert stats[2]["train"]["grad_norm_enc0_ffn"] > 0
    events = EventAccumulator(str(search / "tensorboard" / "train"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert keys <= tags
    # log_interval 1: one grad-norm point per step (the first step has none),
    # all flushed to disk at the end of the run
    from espnet_msrs.bin.plot_grad_norm import read_tensorboard, read_train_log

    steps, values = read_tensorboard(search / "tensorboard" / "train",
                                     "grad_norm_enc0_ffn")
    final_epoch = checkpoint(search)["reporter"]["epoch"]
    assert steps == list(range(2, final_epoch * STEPS_PER_EPOCH + 1))
    assert all(v > 0 for v in values)
    valid = checkpoint(search)["reporter"]["stats"][1]["valid"]
    assert {"loss_att", "loss_ctc", "mask_penalty", "sparsity"} <= set(valid)
    # ESPnet's train.log: per-step lines, epoch summaries, the stop rule
    log = (search / "train.log").read_text()
    step_lines = [line for line in log.splitlines() if "epoch:train:" in line]
    assert len(step_lines) == final_epoch * STEPS_PER_EPOCH
    for key in keys:
        assert f" {key}=" in step_lines[-1], key
    assert "1epoch results: [train]" in log and "mask_penalty=" in log
    assert "msrs mask search: epoch=1 sparsity=" in log
    assert f"msrs mask search converged: epoch={final_epoch}" in log
    log_steps, log_values = read_train_log(search / "train.log", "grad_norm_enc0_ffn")
    # the log prints 3 decimals (or 4 significant digits below 1e-3)
    assert log_steps == steps
    assert log_values == pytest.approx(values, rel=2e-3, abs=5e-4)


def test_search_resume_after_kill_equals_uninterrupted(
    task, corpus, search, monkeypatch
):
    out = corpus["root"] / "search_killed"
    # dies in the 2nd step of epoch 2 (after the epoch-1 checkpoint)
    train_killed(task, corpus, out, monkeypatch, STEPS_PER_EPOCH + 2, *SEARCH)
    assert checkpoint(out)["reporter"]["epoch"] == 1
    assert not (out / "mask.pth").exists()
    train(task, corpus, out, *SEARCH, "--resume", "true")
    assert_same_training_state(search, out)
    a = torch.load(search / "mask.pth", weights_only=True)
    b = torch.load(out / "mask.pth", weights_only=True)
    assert_nested_close(a, b)
    ra = json.loads((search / "sparsity_report.json").read_text())["search"]
    rb = json.loads((out / "sparsity_report.json").read_text())["search"]
    assert ra == rb


def test_resume_of_converged_search_stops_at_once(task, corpus, search):
    before = checkpoint(search)
    (search / "mask.pth").unlink()
    train(task, corpus, search, *SEARCH, "--resume", "true")
    after = checkpoint(search)
    assert after["reporter"]["epoch"] == before["reporter"]["epoch"]
    assert_nested_close(before["model"], after["model"])
    assert (search / "mask.pth").exists()


# ----------------------------------------------------------------- retraining
def _decode_and_check_plain(task, corpus, out: Path, model_file: Path):
    """The final model is a plain ESPnet model: espnet2's ASRTask and
    Speech2Text load it and decode."""
    from espnet2.bin.asr_inference import Speech2Text
    from espnet2.tasks.asr import ASRTask

    state = torch.load(model_file, map_location="cpu", weights_only=True)
    assert set(state) == plain_model_keys(task, corpus, out)
    model, _ = ASRTask.build_model_from_file(out / "config.yaml", model_file, "cpu")
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    s2t = Speech2Text(
        asr_train_config=out / "config.yaml",
        asr_model_file=model_file,
        beam_size=2,
        ctc_weight=0.3,
        maxlenratio=0.5,
    )
    wav_path = (corpus["valid"] / "wav.scp").read_text().split()[1]
    wav, _ = sf.read(wav_path, dtype="float32")
    results = s2t(torch.from_numpy(wav))
    assert len(results) == 1 and isinstance(results[0][0], str)
    return state


def _masks(search):
    from espnet_msrs.sparsity.mask_file import load_masks

    return load_masks(search / "mask.pth")


def test_dense_retrain_from_masked_init(task, corpus, search):
    out = train(
        task, corpus, corpus["root"] / "dense", "--max_epoch", "1",
        "--init_param", str(search / "init.pth"),
    )
    state = _decode_and_check_plain(task, corpus, out, out / "valid.acc.ave.pth")
    init = torch.load(search / "init.pth", weights_only=True)
    masks = _masks(search)
    # fresh LR schedule: the first step is a warm-up step again
    assert checkpoint(out)["schedulers"][0]["last_epoch"] == STEPS_PER_EPOCH
    # dense: weights pruned by m* (0 in init.pth) train again
    moved = [int((state[n][~m] != 0).sum()) for n, m in masks.items()]
    assert sum(moved) > 0.5 * sum(int((~m).sum()) for m in masks.values())
    name = "encoder.embed.out.0.weight"
    assert not torch.equal(state[name], init[name])


@pytest.fixture(scope="module")
def sparse_args(search):
    return ["--init_param", str(search / "init.pth"), "--msrs_conf", "mode=sparse",
            "--msrs_conf", f"mask_file={search / 'mask.pth'}", "--max_epoch", "2"]


@pytest.fixture(scope="module")
def sparse(task, corpus, sparse_args):
    return train(task, corpus, corpus["root"] / "sparse", *sparse_args)


def test_sparse_retrain_keeps_exactly_the_mask(task, corpus, search, sparse):
    masks = _masks(search)
    init = torch.load(search / "init.pth", weights_only=True)
    for model_file in (sparse / "2epoch.pth", sparse / "valid.acc.ave.pth"):
        state = _decode_and_check_plain(task, corpus, sparse, model_file)
        for name, mask in masks.items():
            assert torch.equal(state[name] == 0, ~mask), name  # zeros == m* exactly
        assert not torch.equal(state["decoder.decoders.0.feed_forward.w_1.weight"],
                               init["decoder.decoders.0.feed_forward.w_1.weight"])
    # optimizer state is zero at pruned entries too
    ckpt = checkpoint(sparse)
    names = [n for n, _ in _named_params(task, sparse)]
    for idx, st in ckpt["optimizers"][0]["state"].items():
        if names[idx] in masks:
            assert torch.all(st["exp_avg"][~masks[names[idx]]] == 0)


def _named_params(task, out):
    from espnet2.tasks.asr import ASRTask

    model, _ = ASRTask.build_model_from_file(out / "config.yaml", None, "cpu")
    return list(model.named_parameters())


def test_sparse_resume_after_kill_equals_uninterrupted(
    task, corpus, sparse, sparse_args, monkeypatch
):
    out = corpus["root"] / "sparse_killed"
    train_killed(task, corpus, out, monkeypatch, STEPS_PER_EPOCH + 3, *sparse_args)
    assert checkpoint(out)["reporter"]["epoch"] == 1
    train(task, corpus, out, *sparse_args, "--resume", "true")
    assert_same_training_state(sparse, out)


def test_grad_masked_retrain_from_random_init(task, corpus, search):
    from espnet2.torch_utils.set_all_random_seed import set_all_random_seed

    extra = ["--msrs_conf", "mode=grad_masked", "--msrs_conf",
             f"mask_file={search / 'mask.pth'}", "--max_epoch", "1",
             "--optim_conf", "weight_decay=0.0"]
    out = corpus["root"] / "grad_masked"
    args = task.get_parser().parse_args(_cmd(corpus, out, extra))
    set_all_random_seed(args.seed)  # exactly as espnet2's main_worker
    initial = {k: v.clone() for k, v in task.build_model(args).state_dict().items()}
    train(task, corpus, out, *extra)
    state = _decode_and_check_plain(task, corpus, out, out / "1epoch.pth")
    for name, mask in _masks(search).items():
        # masked gradients: pruned weights keep their random init (not zeroed)
        assert torch.equal(state[name][~mask], initial[name][~mask]), name
        assert torch.all(initial[name][~mask] != 0)
    moved = sum(
        int((state[n][m] != initial[n][m]).sum()) for n, m in _masks(search).items()
    )
    assert moved > 0.9 * sum(int(m.sum()) for m in _masks(search).values())


# -------------------------------------------------------------- equivalences
def test_inert_masks_with_zero_penalty_equal_dense_training(task, corpus):
    """λ = 0 and φ ≫ 0 (μ = 10): σ(τ_f φ) = 1 exactly, no penalty, the θ
    optimizer sees θ in the same order, the φ optimizer draws no random
    numbers: the search run trains θ exactly like a dense run."""
    dense = train(task, corpus, corpus["root"] / "eq_dense", "--max_epoch", "2")
    search = train(
        task, corpus, corpus["root"] / "eq_search", "--max_epoch", "2",
        "--msrs_conf", "mode=search", "--msrs_conf", "mask_penalty=0",
        "--msrs_conf", "mu=10",
    )
    a, b = checkpoint(dense), checkpoint(search)
    theta = {k: v for k, v in b["model"].items() if not k.endswith("mask_logits")}
    assert_nested_close(a["model"], theta, "model")
    from espnet_msrs.sparsity.sparse_method import STATE_KEY

    method_state = b["optimizers"][0].pop(STATE_KEY)  # only in checkpoint.pth
    assert method_state["method"] == "search"
    assert method_state["state"]["zeros_history"] == [0, 0]  # s_0, s_1
    assert_nested_close(a["optimizers"][0], b["optimizers"][0], "optim0")
    for epoch in (1, 2):
        for phase in ("train", "valid"):
            for key in ("loss", "loss_att", "loss_ctc", "acc"):
                assert a["reporter"]["stats"][epoch][phase][key] == pytest.approx(
                    b["reporter"]["stats"][epoch][phase][key], abs=1e-6
                )
    assert json.loads((search / "sparsity_report.json").read_text())["search"][
        "sparsity_history"
    ] == [0.0, 0.0, 0.0]
    # clipping was active; ESPnet's clipping saw θ only (φ is clipped apart)
    for epoch in (1, 2):
        assert b["reporter"]["stats"][epoch]["train"]["clip"] > 0
        assert (a["reporter"]["stats"][epoch]["train"]["grad_norm"]
                == b["reporter"]["stats"][epoch]["train"]["grad_norm"])


# --------------------------------------------------------------------- AMP
def test_bf16_amp_search_and_sparse_retrain(task, corpus, search, caplog):
    caplog.set_level("INFO")
    out = train(
        task, corpus, corpus["root"] / "amp_search", "--use_amp", "true",
        "--msrs_conf", "mode=search", "--msrs_conf", "mask_penalty=1.0e-5",
        "--max_epoch", "2", "--keep_nbest_models", "2",
    )
    assert "forward under autocast dtype=torch.bfloat16" in caplog.text
    stats = checkpoint(out)["reporter"]["stats"]
    fp32 = checkpoint(search)["reporter"]["stats"]  # same run in fp32
    for key in ("loss_att", "loss_ctc"):
        assert stats[1]["train"][key] != fp32[1]["train"][key]  # bf16 was used
        assert stats[1]["train"][key] == pytest.approx(fp32[1]["train"][key], rel=0.05)
    report = json.loads((out / "sparsity_report.json").read_text())["search"]
    hist = report["sparsity_history"]
    assert hist[2] > hist[0] + 0.1  # φ moved under bf16 ...
    fp32_hist = json.loads((search / "sparsity_report.json").read_text())["search"][
        "sparsity_history"
    ]
    for s_bf16, s_fp32 in zip(hist, fp32_hist[:3]):  # ... like in fp32
        assert abs(s_bf16 - s_fp32) < 5e-3
    assert report["stop_reason"] == "max_epoch"
    # espnet2's n-best averaging of search checkpoints: θ and φ, nothing else
    averaged = torch.load(out / "valid.acc.ave_2best.pth", weights_only=True)
    phi = {k for k in averaged if k.endswith(".mask_logits")}
    assert len(phi) == 27
    assert set(averaged) - phi == plain_model_keys(task, corpus, out)
    retrain = train(
        task, corpus, corpus["root"] / "amp_sparse", "--use_amp", "true",
        "--init_param", str(out / "init.pth"), "--msrs_conf", "mode=sparse",
        "--msrs_conf", f"mask_file={out / 'mask.pth'}", "--max_epoch", "1",
    )
    stats2 = checkpoint(retrain)["reporter"]["stats"]
    for st in (stats[1], stats[2], stats2[1]):
        for phase in ("train", "valid"):
            for key in ("loss", "loss_att", "loss_ctc"):
                assert np.isfinite(st[phase][key]), (phase, key)
    masks = _masks(out)
    state = torch.load(retrain / "1epoch.pth", weights_only=True)
    for name, mask in masks.items():
        assert torch.equal(state[name] == 0, ~mask), name


# --------------------------------------------------------------------- DDP
DDP_DRIVER = textwrap.dedent(
    """
    import sys

    import torch

    torch.set_num_threads(1)
    import espnet_msrs  # noqa: F401
    from espnet_msrs.tasks.asr import MSRSASRTask
    from espnet_msrs.train.msrs_trainer import MSRSTrainer


    def record(method):
        return RECORD


    class RecordingTrainer(MSRSTrainer):
        @classmethod
        def run(cls, model, **kwargs):
            super().run(model=model, **kwargs)
            rank = torch.distributed.get_rank()
            out = kwargs["trainer_options"].output_dir
            torch.save(
                {"model": model.state_dict(), **record(model.sparse_method),
                 "world_size": torch.distributed.get_world_size()},
                f"{out}/rank{rank}.pth",
            )


    class Task(MSRSASRTask):
        trainer = RecordingTrainer


    Task.main(cmd=sys.argv[1:])
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_on_two_gloo_ranks(corpus, out: Path, extra, record: str) -> tuple:
    """Train on two CPU processes (gloo DDP) into ``out``; each rank saves its
    state dict, world size and ``record``, a Python expression of ``method``
    (the model's sparse method) after training.  Returns both ranks' saves."""
    driver = out.parent / f"{out.name}_driver.py"
    driver.write_text(DDP_DRIVER.replace("RECORD", record))
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    procs = []
    for rank in range(2):
        cmd = [sys.executable, str(driver), *_cmd(corpus, out, extra),
               "--multiprocessing_distributed", "false", "--dist_backend", "gloo",
               "--dist_world_size", "2", "--dist_rank", str(rank),
               "--dist_master_addr", "127.0.0.1", "--dist_master_port", str(port)]
        procs.append(subprocess.Popen(cmd, env=env, cwd=str(REPO),
                                      stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    try:
        errs = [p.communicate(timeout=300)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err[-3000:]
    return tuple(torch.load(out / f"rank{rank}.pth", weights_only=False)
                 for rank in range(2))


def test_ddp_two_cpu_ranks_share_phi_masks_and_stop(corpus):
    out = corpus["root"] / "ddp_search"
    r0, r1 = train_on_two_gloo_ranks(
        corpus, out, SEARCH,
        '{"epochs": method.epochs, "history": method.history, '
        '"converged": method.converged, "stop_reason": method.stop_reason}',
    )
    assert r0["world_size"] == r1["world_size"] == 2
    # identical φ (hence masks), θ and stop decision on both ranks, bit for bit
    assert set(r0["model"]) == set(r1["model"])
    for name, value in r0["model"].items():
        assert torch.equal(value, r1["model"][name]), name
    assert r0["epochs"] == r1["epochs"] and r0["history"] == r1["history"]
    assert r0["converged"] and r1["converged"]
    assert r0["epochs"][-1] < MAX_SEARCH_EPOCHS
    report = json.loads((out / "sparsity_report.json").read_text())
    assert report["search"]["stop_reason"] == "converged"
    assert report["search"]["sparsity_history"] == r0["history"]
    assert r0["history"][-1] > 0.3
    masks = torch.load(out / "mask.pth", weights_only=True)["masks"]
    for name, mask in masks.items():
        phi = r1["model"][name.removesuffix("weight") + "mask_logits"]
        assert torch.equal(mask, phi >= 0)
