"""The sparse-training baselines of MSRS Table 4 through the recipes:
``--init_frontend`` (the "Frontend" rows) and ``--method set|rigl|gmp|chase``
(one epoch of each through the synthgrid demo recipe)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.recipe.fixtures import stage9_recipe
from tests.recipe.test_avsr_sh import AVSR_SH, TEMPLATE

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BASE = ["--train_set", "train", "--valid_set", "valid", "--test_sets", "test"]


def run(args, cwd, **kw):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kw)


def test_init_frontend_is_listed_and_checked(tmp_path):
    result = run(["bash", str(AVSR_SH), "--help"], cwd=TEMPLATE)
    assert "--init_frontend" in result.stdout
    missing = tmp_path / "nope.pth"
    result = run(["bash", str(AVSR_SH), *BASE, "--init_frontend", str(missing)],
                 cwd=TEMPLATE)
    assert result.returncode == 2
    assert f"--init_frontend {missing}: no such file" in result.stderr




def test_stage9_starts_from_the_frontend_of_another_model(tmp_path):
    """--init_frontend: the new run's frontend starts as the given model's
    (with lr 0 it stays so), the rest of the model does not."""
    stats = stage9_recipe(tmp_path)
    config = yaml.safe_load((REPO / "conf" / "tuning" / "train_asr_tiny.yaml").read_text())
    (tmp_path / "src.yaml").write_text(yaml.safe_dump(config))
    frozen = dict(config, optim_conf=dict(config["optim_conf"], lr=0.0, weight_decay=0.0),
                  scheduler=None, scheduler_conf={}, seed=1)
    (tmp_path / "dst.yaml").write_text(yaml.safe_dump(frozen))
    common = ["./avsr.sh", "--stage", "9", "--stop_stage", "9", *BASE,
              "--modality", "audio", "--method", "dense", "--token_type", "char",
              "--stats_dir", str(stats), "--ngpu", "0"]
    first = run([*common, "--tag", "src", "--asr_config", "src.yaml"], cwd=tmp_path,
                timeout=600)
    src_log = tmp_path / "exp" / "src" / "train" / "train.log"
    assert first.returncode == 0, first.stdout[-2000:] + src_log.read_text()[-3000:]
    src_model = tmp_path / "exp" / "src" / "train" / "1epoch.pth"
    second = run([*common, "--tag", "dst", "--asr_config", "dst.yaml",
                  "--init_frontend", str(src_model)], cwd=tmp_path, timeout=600)
    log = (tmp_path / "exp" / "dst" / "train" / "train.log").read_text()
    assert second.returncode == 0, second.stdout[-2000:] + log[-3000:]
    assert f"--init_param {src_model}:frontend:frontend" in log
    src = torch.load(src_model, map_location="cpu")
    dst = torch.load(tmp_path / "exp" / "dst" / "train" / "1epoch.pth", map_location="cpu")
    # parameters (BatchNorm statistics move in training even at lr 0)
    front = [k for k in src if k.startswith("frontend.") and not
             k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert front
    for key in front:
        assert torch.equal(dst[key], src[key]), key
    enc = "encoder.encoders.0.feed_forward.w_1.weight"
    assert not torch.equal(dst[enc], src[enc])


# ------------------------------------------------- the demo recipe, each method
METHODS = ("set", "rigl", "gmp", "chase")
MICRO = (
    "--local_data_opts",
    "--num_speakers 2 --utts_per_speaker 8 --num_valid 1 --num_test 2 --seed 0 --nj 2",
    "--noise_num_utts", "4",
)
# one epoch; small batches and update intervals so that every method updates
# its masks within it (the tiny train set has 10 utterances)
SCHEDULES = {
    "set": "--msrs_conf update_interval=1",
    "rigl": "--msrs_conf update_interval=1 --msrs_conf end_fraction=0.9",
    "gmp": "--msrs_conf update_interval=1 --msrs_conf end_fraction=0.8",
    "chase": "--msrs_conf update_interval=1 --msrs_conf channel_interval=1",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The synthgrid demo recipe: data stages once, then stage 9 per method."""
    from tests.recipe.fixtures import recipe_sandbox, run_recipe

    recipe = recipe_sandbox("synthgrid", "avsr1", tmp_path_factory.mktemp("baselines"))
    prep = run_recipe(recipe, *MICRO, "--stage", "1", "--stop_stage", "7")
    assert prep.returncode == 0, prep.stdout[-3000:] + prep.stderr[-3000:]
    runs = {}
    for method in METHODS:
        runs[method] = run_recipe(
            recipe, *MICRO, "--stage", "9", "--stop_stage", "9", "--method", method,
            "--asr_args", f"--max_epoch 1 --batch_size 2 {SCHEDULES[method]}",
        )
    return recipe, runs


@pytest.mark.parametrize("method", METHODS)
def test_one_epoch_of_each_method_through_the_demo_recipe(demo, method):
    recipe, runs = demo
    result = runs[method]
    train_dir = recipe / "exp" / f"av_{method}" / "train"
    log = (train_dir / "train.log").read_text()
    assert result.returncode == 0, result.stdout[-2000:] + log[-3000:]
    assert f"Stage 9: {method} sparse training (sparsity 0.4)" in result.stdout
    report = json.loads((train_dir / "sparsity_report.json").read_text())
    # exact target: SET/RigL/CHASE keep their ERK budget, GMP reaches s_f
    assert report["prunable"]["sparsity"] == pytest.approx(0.4, abs=1e-3)
    assert f"sparsity_prunable=40.0%" in result.stdout
    # masks changed during the epoch (logged by the mask mechanism)
    assert f"mode={method} step=" in log
    # the model file is a plain ESPnet state dict with the zeros in its weights
    model = torch.load(train_dir / "1epoch.pth", map_location="cpu", weights_only=True)
    masks = torch.load(train_dir / "mask.pth", weights_only=True)["masks"]
    assert not any("mask" in key for key in model)
    zeros = sum(int((model[name] == 0).sum()) for name in masks)
    inactive = sum(int((~mask).sum()) for mask in masks.values())
    assert zeros >= inactive > 0
    for name, mask in masks.items():
        assert not model[name][~mask].any(), name
