"""avsr.sh options of the sparse-training baselines (MSRS Table 4):
``--init_frontend`` (the "Frontend" rows)."""

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf
import torch
import yaml

from espnet_msrs.asr.frontend.av_resnet_frontend import packed_dim
from tests.helpers.tiny_corpus import make_tiny_corpus
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


def _stage9_recipe(root: Path) -> Path:
    """Tiny corpus as dump/raw + stats (shape files "uid T,D" at 25 fps) + tokens."""
    make_tiny_corpus(root, sets={"train": 4, "valid": 2, "test": 2})
    (root / "avsr.sh").symlink_to(AVSR_SH)
    (root / "path.sh").write_text(f'export PATH="{BIN}:$PATH"\n')
    raw, stats = root / "dump" / "raw", root / "exp" / "stats"
    dim = packed_dim("audio", 88, 640)
    for name in ("train", "valid"):
        shutil.copytree(root / "data" / name, raw / name)
        (stats / name).mkdir(parents=True)
        lines = [f"{u} {math.ceil(sf.info(p).frames / 640)},{dim}" for u, p in
                 (line.split() for line in (raw / name / "wav.scp").read_text().splitlines())]
        (stats / name / "speech_shape").write_text("\n".join(lines) + "\n")
    (stats / ".done").write_text("stats\n")
    token_dir = root / "data" / "token_list" / "char"
    token_dir.mkdir(parents=True)
    shutil.copy(root / "tokens.txt", token_dir / "tokens.txt")
    return stats


def test_stage9_starts_from_the_frontend_of_another_model(tmp_path):
    """--init_frontend: the new run's frontend starts as the given model's
    (with lr 0 it stays so), the rest of the model does not."""
    stats = _stage9_recipe(tmp_path)
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
