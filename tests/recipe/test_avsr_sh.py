"""The shared stage script egs2/TEMPLATE/avsr1/avsr.sh: syntax, options,
the data stages and their idempotency, and distributed training on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.helpers.tiny_corpus import make_tiny_corpus
from tests.recipe.fixtures import stage9_recipe

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "avsr1"
SYNTHGRID = REPO / "egs2" / "synthgrid" / "avsr1"
AVSR_SH = TEMPLATE / "avsr.sh"
BIN = Path(sys.executable).parent

REQUIRED_OPTIONS = (
    "--stage", "--stop_stage", "--ngpu", "--nj", "--inference_nj", "--train_set",
    "--valid_set", "--test_sets", "--asr_config", "--search_config",
    "--inference_config", "--nbpe", "--bpemode", "--method", "--retrain_mode",
    "--modality", "--snrs", "--tag", "--help", "--num_nodes", "--dist_launcher",
)


def run(args, cwd, env_extra=None, **kw):
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")
    env.pop("NOISEX_BABBLE", None)
    env.update(env_extra or {})
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kw)


@pytest.mark.parametrize("script", [
    AVSR_SH, TEMPLATE / "path.sh", TEMPLATE / "cmd.sh", TEMPLATE / "db.sh",
    SYNTHGRID / "run.sh", SYNTHGRID / "local" / "data.sh", SYNTHGRID / "db.sh",
])
def test_bash_syntax(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_lists_every_option():
    result = run(["bash", str(AVSR_SH), "--help"], cwd=TEMPLATE)
    assert result.returncode == 0
    for option in REQUIRED_OPTIONS:
        assert option in result.stdout, option
    # run.sh passes --help through ("$@" last) from any cwd
    result = run([str(SYNTHGRID / "run.sh"), "--help"], cwd="/")
    assert result.returncode == 0 and "--retrain_mode" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus", "1"], "unknown option --bogus"),
    (["--stage"], "option --stage needs a value"),
    (["stray"], "unexpected argument 'stray'"),
    (["--method", "magic"], "--method=magic is not allowed; use one of: msrs lr_sms dense layerscale"),
    (["--modality", "both"], "use one of: audio video av"),
    (["--retrain_mode", "x"], "use one of: dense sparse grad_masked"),
    (["--nj", "two"], "--nj=two must be a non-negative integer"),
    (["--train_set", ""], "--train_set is required"),
])
def test_bad_options_fail_clearly(args, message):
    base = ["--train_set", "train", "--valid_set", "valid", "--test_sets", "test"]
    result = run(["bash", str(AVSR_SH), *base, *args], cwd=TEMPLATE)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.fixture()
def recipe(tmp_path):
    """A recipe dir using the shared avsr.sh, with the tiny corpus as data/."""
    make_tiny_corpus(tmp_path, sets={"train": 6, "valid": 2, "test": 3})
    (tmp_path / "avsr.sh").symlink_to(AVSR_SH)
    (tmp_path / "path.sh").write_text(f'export PATH="{BIN}:$PATH"\n')
    return tmp_path


def test_data_stages_and_second_run(recipe):
    opts = ["--stage", "2", "--stop_stage", "4", "--train_set", "train", "--valid_set",
            "valid", "--test_sets", "test", "--modality", "av", "--nj", "1"]
    first = run(["./avsr.sh", *opts], cwd=recipe)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in ("train", "valid", "test"):
        d = recipe / "dump" / "raw" / name
        keys = [line.split()[0] for line in (d / "text").read_text().splitlines()]
        assert keys == [line.split()[0] for line in (recipe / "data" / name / "text")
                        .read_text().splitlines()]
        for f in ("wav.scp", "video.scp", "utt2spk", "spk2utt", "utt2dur", "utt2num_frames"):
            assert (d / f).is_file(), (name, f)
        wav = (d / "wav.scp").read_text().split()[1]
        assert sf.info(recipe / wav).samplerate == 16000
        assert (recipe / "dump" / "raw" / "org" / name / "bad_utts.txt").read_text() == ""
    assert "Successfully finished" in first.stdout
    # a second run redoes nothing
    second = run(["./avsr.sh", *opts], cwd=recipe)
    assert second.returncode == 0
    assert second.stdout.count("done already") == 9  # 3 sets x stages 2, 3, 4
    assert "Stage 2: preprocessing:" not in second.stdout
    # a changed input redoes only what depends on it
    text = recipe / "data" / "test" / "text"
    text.write_text("".join(text.read_text().splitlines(keepends=True)[:2]))
    third = run(["./avsr.sh", *opts], cwd=recipe)
    assert third.returncode == 0, third.stderr
    assert third.stdout.count("done already") == 6
    assert "Stage 3: format and validate: dump/prep/test" in third.stdout
    assert "missing video" not in third.stdout
    assert len((recipe / "dump" / "raw" / "test" / "text").read_text().splitlines()) == 2
    # a changed recording behind an unchanged wav.scp: stage 2 redoes that set
    # and rewrites the 16 kHz copy of that file only
    uid, src = (recipe / "data" / "test" / "wav.scp").read_text().split("\n")[0].split()
    copies = sorted((recipe / "dump" / "audio16000" / "test").glob("*.wav"))
    before = {p.name: p.stat().st_mtime_ns for p in copies}
    audio, rate = sf.read(src)
    sf.write(src, -audio, rate, subtype="PCM_16")
    fourth = run(["./avsr.sh", *opts], cwd=recipe)
    assert fourth.returncode == 0, fourth.stderr
    assert "Stage 2: preprocessing: data/test -> dump/prep/test" in fourth.stdout
    after = {p.name: p.stat().st_mtime_ns for p in copies}
    assert [n for n in before if after[n] != before[n]] == [f"{uid}.wav"]
    new, _ = sf.read(recipe / "dump" / "audio16000" / "test" / f"{uid}.wav")
    assert new[100] == pytest.approx(-audio[100], abs=1e-3)


def test_one_writer_per_experiment(recipe):
    """A live lock stops a second run and names its process; a dead one is taken over."""
    opts = ["--stage", "2", "--stop_stage", "2", "--train_set", "train", "--valid_set",
            "valid", "--test_sets", "test", "--nj", "1"]
    holder = subprocess.Popen(["sleep", "60"])
    lock = recipe / "dump" / ".lock"
    lock.parent.mkdir()
    host = os.uname().nodename
    lock.write_text(f"{holder.pid} {host} 2026-01-01T00:00:00 ./run.sh --stage 1\n")
    try:
        blocked = run(["./avsr.sh", *opts], cwd=recipe)
    finally:
        holder.kill()
        holder.wait()
    assert blocked.returncode == 1
    assert (f"dump is being written by process {holder.pid} on {host}" in blocked.stderr)
    assert not (recipe / "dump" / "prep").exists()  # nothing written
    taken = run(["./avsr.sh", *opts], cwd=recipe)  # the holder is gone now
    assert taken.returncode == 0, taken.stderr
    assert f"Taking over dump/.lock: process {holder.pid} that held it is not running" in taken.stdout
    assert not lock.exists()  # released at the end
    exp_lock = recipe / "exp" / "x" / ".lock"  # stages 8-13 lock the experiment
    exp_lock.parent.mkdir(parents=True)
    exp_lock.write_text(f"{os.getpid()} {host} 2026-01-01T00:00:00 pytest\n")
    busy = run(["./avsr.sh", "--stage", "10", "--stop_stage", "10", "--tag", "x",
                "--train_set", "train", "--valid_set", "valid", "--test_sets", "test"], cwd=recipe)
    assert busy.returncode == 1 and f"exp/x is being written by process {os.getpid()}" in busy.stderr


def test_noisex_recording_is_used_when_set(recipe):
    t = np.arange(3 * 8000) / 8000
    noisex = recipe / "babble_8k.wav"
    sf.write(noisex, 0.3 * np.sin(2 * np.pi * 500 * t), 8000)  # any rate: resampled
    opts = ["--stage", "2", "--stop_stage", "6", "--train_set", "train", "--valid_set", "valid",
            "--test_sets", "test", "--nj", "1", "--snrs", "0 10", "--token_type", "char"]
    proc = run(["./avsr.sh", *opts], cwd=recipe, env_extra={"NOISEX_BABBLE": str(noisex)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    noise = recipe / "dump" / "noise"
    info = json.loads((noise / "babble_train.wav.json").read_text())
    assert info["request"]["kind"] == "recording" and info["source_rate"] == 8000
    assert sf.info(noise / "babble_train.wav").samplerate == 16000
    assert not (noise / "babble_test.wav").exists()  # the test sets use the recording too
    assert "--noise dump/noise/babble_train.wav" in (noise / "log" / "noisy_test.log").read_text()
    assert f"the recording {noisex} (NOISEX_BABBLE)" in proc.stdout
    again = run(["./avsr.sh", *opts], cwd=recipe)  # unset now: synthetic babble, stage 6 redone
    assert again.returncode == 0, again.stderr
    assert "Stage 6: synthetic babble noise (NOISEX_BABBLE unset)" in again.stdout
    assert json.loads((noise / "babble_test.wav.json").read_text())["request"]["kind"] == "synthetic"


@pytest.mark.xfail(
    strict=False,
    reason="known intermittent defect (2026-12-02): after the epoch has finished, a gloo "
    "rank sometimes aborts at exit ('terminate called without an active exception', "
    "exit -6), so torchrun and stage 9 fail; seen in 2 of 4 fresh-clone suite runs and "
    "1 of 6 runs of this test alone; not fixed by destroying the process group",
)
def test_training_stage_with_two_cpu_processes(tmp_path):
    """Stage 9 through --dist_launcher torchrun: 2 gloo processes on the CPU."""
    recipe = tmp_path
    stats = stage9_recipe(recipe)
    config = REPO / "conf" / "tuning" / "train_asr_tiny.yaml"
    port = 29500 + os.getpid() % 1000
    result = run(
        ["./avsr.sh", "--stage", "9", "--stop_stage", "9", "--train_set", "train",
         "--valid_set", "valid", "--test_sets", "test", "--modality", "audio",
         "--method", "dense", "--token_type", "char", "--asr_config", str(config),
         "--stats_dir", str(stats), "--ngpu", "0", "--dist_launcher", "torchrun",
         "--dist_nproc_per_node", "2", "--master_port", str(port), "--tag", "ddp"],
        cwd=recipe, timeout=600,
    )
    log = (recipe / "exp" / "ddp" / "train" / "train.log").read_text()
    assert result.returncode == 0, result.stdout[-2000:] + log[-4000:]
    assert "torch.distributed.run" in log and "--nproc_per_node 2" in log
    assert "--dist_backend gloo" in log
    train_dir = recipe / "exp" / "ddp" / "train"
    assert (train_dir / "checkpoint.pth").is_file() and (train_dir / "1epoch.pth").is_file()
    assert (train_dir / ".done").is_file()
    # both ranks ran (each prints its command line; the gloo group of size 2
    # set up by torch.distributed.run cannot initialise with one of them)
    assert log.count("espnet_msrs/bin/avsr_train.py") == 2
    config_out = yaml.safe_load((train_dir / "config.yaml").read_text())
    assert config_out["dist_backend"] == "gloo"
    assert config_out["multiprocessing_distributed"] is False
