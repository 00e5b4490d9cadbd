"""Each recipe's run.sh: --help shows the recipe's own effective defaults, how
--modality/--method choose configs, and where the data options are."""

import subprocess

import pytest

from tests.recipe.fixtures import recipe_dir


def _help(corpus, task, *args):
    proc = subprocess.run([str(recipe_dir(corpus, task) / "run.sh"), *args, "--help"],
                          cwd="/", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("corpus, task, first_line", [
    ("synthgrid", "avsr1", "The embedded demo"),
    ("lrs3", "avsr1", "LRS3 (TED talks"),
    ("voxceleb2", "avsr1", "VoxCeleb2 (English part"),
    ("librispeech", "asr1", "LibriSpeech (960 h"),
])
def test_help_has_the_recipe_the_configs_the_data_options_and_every_stage_option(
        corpus, task, first_line):
    out = _help(corpus, task)
    assert out.startswith(first_line)
    assert "Configs: " in out and "This run:" in out
    assert "Data preparation (stage 1, local/data.sh)" in out
    assert "  Usage: local/data.sh [" in out  # the data options themselves
    for option in ("--stage --stop_stage", "--ngpu", "--asr_config", "--search_data_fraction",
                   "--official_test_sizes", "NOISEX_BABBLE"):
        assert option in out, option


def test_help_shows_the_recipes_own_values():
    lrs3 = _help("lrs3", "avsr1")
    assert "--min_dur --max_dur       stage 4 duration limits in seconds (0.3, 24)" in lrs3
    assert "official sizes of the test sets (\"test=1321\")" in lrs3
    assert "GPUs per node, 0 = CPU (1)" in lrs3
    demo = _help("synthgrid", "avsr1")
    assert "GPUs per node, 0 = CPU (0)" in demo
    assert "(conf/tuning/train_avsr_demo.yaml)" in demo and "(av_msrs_sparse)" in demo
    assert "--max_dur       stage 4 duration limits in seconds (0.3, 20.0)" in demo


@pytest.mark.parametrize("args, expected", [
    ((), ["--asr_config conf/tuning/train_avsr_msrs_sparse.yaml",
          "--search_config conf/tuning/train_avsr_msrs_search.yaml"]),
    (("--modality", "video", "--retrain_mode", "dense"),
     ["--asr_config conf/tuning/train_vsr_large_msrs_dense.yaml", "(video_msrs_dense)"]),
    (("--modality", "audio"), ["--asr_config conf/tuning/train_asr_lr_sms_m010-020_f020-040.yaml",
                               "--search_config (none)", "(audio_lr_sms)"]),
    (("--max_dur", "30"), ["limits in seconds (0.3, 30)"]),
    (("--local_data_opts", "--detector mediapipe"),
     ['"--modality av --nj 4 --pretrain_max_sec 24 --detector mediapipe"']),
])
def test_lrs3_options_change_what_help_shows(args, expected):
    out = _help("lrs3", "avsr1", *args)
    for text in expected:
        assert text in out, text


def test_librispeech_subsets_become_the_test_sets():
    out = _help("librispeech", "asr1", "--train_subsets", "train-clean-100",
                "--test_subsets", "test-clean")
    assert 'data set names under data/ (train_clean_100, dev, "test_clean")' in out
    assert "--train_subsets 'train-clean-100'" in out
