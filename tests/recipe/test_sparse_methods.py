"""The sparse-training baselines of MSRS Table 4 through the recipes:
``--init_frontend`` (the "Frontend" rows) and ``--method set|rigl|gmp|chase``
(one epoch of each through the synthgrid demo recipe)."""

import json
import os
import re
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
# one epoch (SET and GMP: two, and stage 10); small batches and update intervals so
# that every method updates its masks within an epoch (the micro train set
# has 10 utterances)
SCHEDULES = {
    "set": "--msrs_conf update_interval=1",
    "rigl": "--msrs_conf update_interval=1 --msrs_conf end_fraction=0.9",
    "gmp": "--msrs_conf update_interval=1 --msrs_conf end_fraction=0.8",
    "chase": "--msrs_conf update_interval=1 --msrs_conf channel_interval=1",
}
EPOCHS = {"set": 2, "gmp": 2}
# stages 9-10 for these (stage 10 takes their last epoch's model)
STAGE10 = ("set", "gmp")


def _args(method):
    return ("--method", method, "--asr_args",
            f"--max_epoch {EPOCHS.get(method, 1)} --batch_size 2 {SCHEDULES[method]}")


@pytest.fixture(scope="module")
def demo(micro_data, tmp_path_factory):
    """The synthgrid demo recipe on the session's micro data (stages 1-7
    done), then stage 9 per method (SET, GMP: stages 9-10)."""
    from tests.recipe.fixtures import MICRO_OPTS, micro_recipe, run_recipe

    recipe = micro_recipe(micro_data, tmp_path_factory.mktemp("baselines"))
    runs = {}
    for method in METHODS:
        last = "10" if method in STAGE10 else "9"
        runs[method] = run_recipe(recipe, *MICRO_OPTS, "--stage", "9", "--stop_stage", last,
                                  *_args(method))
    return recipe, runs


@pytest.mark.parametrize("method", METHODS)
def test_each_method_through_the_demo_recipe(demo, method):
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
    # the last model file is a plain ESPnet state dict with the final zeros in its weights
    last = train_dir / f"{EPOCHS.get(method, 1)}epoch.pth"
    model = torch.load(last, map_location="cpu", weights_only=True)
    masks = torch.load(train_dir / "mask.pth", weights_only=True)["masks"]
    assert not any("mask" in key for key in model)
    zeros = sum(int((model[name] == 0).sum()) for name in masks)
    inactive = sum(int((~mask).sum()) for mask in masks.values())
    assert zeros >= inactive > 0
    for name, mask in masks.items():
        assert not model[name][~mask].any(), name


def test_stage10_takes_the_last_epoch_of_a_method_whose_masks_change(demo):
    """Averaging epochs with different masks unions their supports: for SET
    (RigL, GMP, CHASE) stage 10 takes the last epoch's model, which holds the
    final masks, unless --nbest_average says otherwise, and logs the
    sparsity the model has."""
    from tests.recipe.fixtures import MICRO_OPTS, run_recipe

    recipe, runs = demo
    out = runs["set"].stdout
    assert runs["set"].returncode == 0, out[-3000:] + runs["set"].stderr[-3000:]
    assert ("Stage 10: the last epoch's model (method=set changes its masks during training; "
            "an average would hold the union of their supports") in out
    train_dir = recipe / "exp" / "av_set" / "train"
    model_file = train_dir / "valid.acc.ave.pth"
    assert model_file.resolve() == (train_dir / "2epoch.pth").resolve()
    masks = torch.load(train_dir / "mask.pth", weights_only=True)["masks"]

    def outside(model):  # nonzero weights where the final masks are 0
        return sum(int(model[name][~mask].count_nonzero()) for name, mask in masks.items())

    assert outside(torch.load(model_file, weights_only=True)) == 0
    assert re.search(r"Stage 10: masked weights of \S+: sparsity=[0-9.]+% nonzero_outside_mask=0 "
                     r"\(the final masks of \S+: 40\.0%\)", out)
    assert "denser" not in out
    # Asked to average both epochs: done, with a warning naming what it costs.
    # GMP's epoch 1 is denser than its final masks (it prunes gradually), so
    # the average of epochs 1-2 holds weights outside them. (SET at this size
    # re-prunes the zero weights it regrew at the previous update, so its
    # epochs share one support and an average of them stays at 40 %.)
    gmp_dir = recipe / "exp" / "av_gmp" / "train"
    assert runs["gmp"].returncode == 0, runs["gmp"].stdout[-3000:]
    assert (gmp_dir / "valid.acc.ave.pth").resolve() == (gmp_dir / "2epoch.pth").resolve()
    masks = torch.load(gmp_dir / "mask.pth", weights_only=True)["masks"]
    assert outside(torch.load(gmp_dir / "valid.acc.ave.pth", weights_only=True)) == 0
    both = run_recipe(recipe, *MICRO_OPTS, "--stage", "10", "--stop_stage", "10",
                      *_args("gmp"), "--nbest_average", "2")
    assert both.returncode == 0, both.stdout[-3000:] + both.stderr[-3000:]
    assert "Stage 10: model averaging (valid acc max, nbest=2)" in both.stdout
    n = int(re.search(r"nonzero_outside_mask=(\d+)", both.stdout)[1])
    assert n > 0
    assert f"is denser than its final masks: {n} weights outside them are nonzero" in both.stdout
    model_file = gmp_dir / "valid.acc.ave.pth"
    assert outside(torch.load(model_file, weights_only=True)) == n
