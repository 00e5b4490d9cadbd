"""The paper configurations in conf/tuning state the papers' training recipe.

* schedules in epochs, sized by the run: LR-SMS ASR = warm-up 5, constant,
  1-sqrt cool-down 15 of 75 epochs at peak 6e-4 (LR-SMS §III); MSRS and
  LR-SMS AVSR = cosine, warm-up 5 of 75 epochs (MSRS §3, LR-SMS §III), peak
  6e-4 on one data set (LRS3, "S") and 1e-3 on several ("L", AVSR);
* mask searches run the retraining's 75-epoch schedule, cut off by the search;
* the 703 M AVSR MSRS route (search + dense retraining) in FP16 (MSRS Table 3 †);
* low-rank configs state their initialisation (SVD; Kaiming for Fig. 4).

Each config is parsed by ESPnet's own parser (our task's) and its scheduler is
built from ``scheduler_classes`` exactly as ``AbsTask.main_worker`` does, then
sized as the trainer sizes it.
"""

from pathlib import Path

import pytest
import torch
import yaml

import espnet_msrs  # noqa: F401  (registers our names)

REPO = Path(__file__).resolve().parents[1]
PAPER = sorted(p for p in (REPO / "conf" / "tuning").glob("train_*.yaml") if not p.stem.endswith(("_demo", "_tiny")))
STEPS_PER_EPOCH = 100


@pytest.fixture
def parser():
    """A fresh parser per config: ESPnet's ``--config`` sets the parser's own
    defaults, so a shared parser would carry one config's keys into the next."""
    from espnet_msrs.tasks.asr import MSRSASRTask

    return MSRSASRTask.get_parser()


def peak_lr(stem: str) -> float:
    """MSRS §3: 6e-4 on one data set, 1e-3 on several; LR-SMS §III: 6e-4 ASR,
    1e-3 AVSR."""
    if stem.startswith("train_asr") or stem.startswith("train_vsr_small"):
        return 6.0e-4
    if stem.startswith("train_vsr_large_L"):
        return 1.0e-3
    if stem.startswith("train_vsr_large"):
        return 6.0e-4  # LRS3 ("S")
    return 1.0e-3  # AVSR: LRS3 + VoxCeleb2 + AVSpeech


def built_schedulers(args, optimizers):
    from espnet2.tasks.abs_task import scheduler_classes

    out = []
    for i, optim in enumerate(optimizers, 1):
        suf = "" if i == 1 else str(i)
        name = getattr(args, f"scheduler{suf}")
        out.append(scheduler_classes[name](optim, **getattr(args, f"scheduler{suf}_conf")))
    return out


@pytest.mark.parametrize("config", PAPER, ids=[p.stem for p in PAPER])
def test_schedule_peak_and_precision(config, parser):
    from espnet_msrs.schedulers.abs_epoch_sized_scheduler import resolve_epoch_schedules
    from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

    stem = config.stem
    args = parser.parse_args(["--config", str(config)])
    search = stem.endswith("_search")
    assert args.max_epoch == (10 if search else 75)
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizers = [torch.optim.AdamW([params[0]], **args.optim_conf)]
    if search:
        assert args.optim2 == "adamw" and args.optim2_conf["weight_decay"] == 0.0
        optimizers.append(torch.optim.AdamW([params[1]], **args.optim2_conf))
    schedulers = built_schedulers(args, optimizers)

    class Options:
        accum_grad = args.accum_grad
        max_epoch = args.max_epoch

    factory = SequenceIterFactory(None, [[str(i)] for i in range(STEPS_PER_EPOCH)])
    resolve_epoch_schedules(schedulers, factory, Options)
    for optim, sched in zip(optimizers, schedulers):
        assert optim.defaults["lr"] == pytest.approx(peak_lr(stem))
        assert sched.warmup_steps == 5 * STEPS_PER_EPOCH
        assert sched.total_steps == 75 * STEPS_PER_EPOCH  # search: cut off at max_epoch
        if stem.startswith("train_asr"):
            assert type(sched).__name__ == "WarmupConstantSqrtCooldownLR"
            assert sched.cooldown_steps == 15 * STEPS_PER_EPOCH
        else:
            assert type(sched).__name__ == "WarmupCosineLR"
        # the peak is reached at the end of the warm-up
        assert sched.lr_factor(sched.warmup_steps) == 1.0
    fp16 = stem in ("train_avsr_vlarge_msrs_search", "train_avsr_vlarge_msrs_dense")
    assert args.use_amp is fp16
    assert args.init is None


@pytest.mark.parametrize("config", PAPER, ids=[p.stem for p in PAPER])
def test_header_states_data_batch_and_lowrank_init(config):
    text = config.read_text()
    header = " ".join(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
    conf = yaml.safe_load(text)
    assert "Data and batch:" in header and f"batch_bins {conf['batch_bins']}" in header
    assert "stated in epochs" in header
    for sub in ("encoder_conf", "decoder_conf"):
        lowrank = "lowrank" in (conf[sub]["mhsa_linear"], conf[sub]["ffn_linear"])
        expected = ("kaiming" if config.stem.endswith("_kaiming") else "svd") if lowrank else None
        assert conf[sub].get("lowrank_init") == expected, sub


def test_the_703m_search_says_how_to_use_a_data_fraction():
    text = (REPO / "conf/tuning/train_avsr_vlarge_msrs_search.yaml").read_text()
    assert "--search_data_fraction 0.3" in text


def test_readme_table_names_existing_configs_and_every_paper_config():
    import re

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Every table row"):readme.index("## Recipes")]
    named = set(re.findall(r"`(train_[\w-]+)`", section))
    existing = {p.stem for p in PAPER}
    assert named <= existing, sorted(named - existing)
    # every paper config is in the table or in the list of configs beyond it
    assert existing <= named, sorted(existing - named)
