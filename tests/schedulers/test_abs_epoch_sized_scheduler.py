"""Epoch -> optimizer-step conversion of schedules (LR-SMS/MSRS state epochs).

The end-to-end tests run the real ``MSRSASRTask.main`` (ESPnet's parser,
iterator factory, trainer and checkpoints) on a tiny generated corpus with two
batch sizes and with ``--accum_grad 2``.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from espnet2.iterators.sequence_iter_factory import SequenceIterFactory

from espnet_msrs.schedulers.abs_epoch_sized_scheduler import (
    optimizer_steps_per_epoch,
    resolve_epoch_schedules,
)
from espnet_msrs.schedulers.warmup_constant_sqrt_cooldown import (
    WarmupConstantSqrtCooldownLR,
)
from tests.helpers.tiny_corpus import make_tiny_corpus

NUM_TRAIN = 8
RESOLVER_LOGGER = "espnet_msrs.schedulers.abs_epoch_sized_scheduler"


def _factory(num_batches, num_iters_per_epoch=None):
    batches = [[f"utt{i}"] for i in range(num_batches)]
    return SequenceIterFactory(
        dataset=None, batches=batches, num_iters_per_epoch=num_iters_per_epoch
    )


@dataclass
class _Options:
    accum_grad: int = 1
    max_epoch: int = 10


def test_steps_per_epoch_from_espnet_iter_factory():
    assert optimizer_steps_per_epoch(_factory(7), accum_grad=1) == (7, 7)
    assert optimizer_steps_per_epoch(_factory(7), accum_grad=2) == (7, 3)
    # --num_iters_per_epoch fixes the epoch length
    assert optimizer_steps_per_epoch(_factory(7, num_iters_per_epoch=4), 1) == (4, 4)
    with pytest.raises(ValueError, match="fewer than --accum_grad=8"):
        optimizer_steps_per_epoch(_factory(7), accum_grad=8)


class _NoLengthFactory:
    built = 0

    def build_iter(self, epoch, shuffle=None):
        self.built += 1
        return iter(())


def test_iterator_without_length_raises_and_steps_only_need_no_iterator():
    optim = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sized = WarmupConstantSqrtCooldownLR(optim, warmup_epochs=1, cooldown_epochs=1)
    with pytest.raises(ValueError, match="has no length; give --num_iters_per_epoch"):
        resolve_epoch_schedules([sized], _NoLengthFactory(), _Options())

    in_steps = WarmupConstantSqrtCooldownLR(
        optim, warmup_steps=1, cooldown_steps=1, total_steps=4
    )
    factory = _NoLengthFactory()
    resolve_epoch_schedules([in_steps, None], factory, _Options())
    assert factory.built == 0 and in_steps.total_steps == 4


def test_resolve_sizes_every_epoch_scheduler():
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    first = WarmupConstantSqrtCooldownLR(
        torch.optim.SGD([params[0]], lr=0.1), warmup_epochs=1, cooldown_epochs=2
    )
    second = WarmupConstantSqrtCooldownLR(
        torch.optim.SGD([params[1]], lr=0.1), warmup_steps=3, cooldown_epochs=1,
        total_epochs=4,
    )
    resolve_epoch_schedules([first, second], _factory(12), _Options(accum_grad=3))
    assert (first.warmup_steps, first.cooldown_steps, first.total_steps) == (4, 8, 40)
    assert (second.warmup_steps, second.cooldown_steps, second.total_steps) == (3, 4, 16)


# ---------------------------------------------------------------- end to end

CONFIG = {
    "frontend": "default",
    "frontend_conf": {"n_fft": 256, "win_length": 256, "hop_length": 128, "n_mels": 16},
    "normalize": "utterance_mvn",
    "encoder": "msrs_conformer",
    "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32,
                     "num_blocks": 1, "input_layer": "conv2d"},
    "decoder": "msrs_transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
    "optim": "adamw",
    "optim_conf": {"lr": 0.002},
    "scheduler": "warmup_constant_sqrt_cooldown",
    "scheduler_conf": {"warmup_epochs": 0.5, "cooldown_epochs": 1},
    "max_epoch": 2,
    "batch_type": "unsorted",
    "num_workers": 0,
    "use_matplotlib": False,
    "num_att_plot": 0,
    "keep_nbest_models": 1,
    "seed": 0,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("sched_corpus")
    paths = make_tiny_corpus(root, sets={"train": NUM_TRAIN, "valid": 2})
    config = root / "train.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    paths["config"] = config
    return paths


def _train(corpus, out: Path, *extra, config=None):
    import espnet_msrs  # noqa: F401  (registers our classes)
    from espnet_msrs.tasks.asr import MSRSASRTask

    data = []
    for name in ("train", "valid"):
        d = corpus[name]
        data += [
            f"--{name}_data_path_and_name_and_type", f"{d}/wav.scp,speech,sound",
            f"--{name}_data_path_and_name_and_type", f"{d}/text,text,text",
            f"--{name}_shape_file", f"{d}/text",
        ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        MSRSASRTask.main(cmd=[
            "--config", str(config or corpus["config"]), "--output_dir", str(out),
            "--token_list", str(corpus["token_list"]), "--token_type", "char",
            "--ngpu", "0", *data, *extra,
        ])
    finally:
        torch.set_num_threads(threads)
    return torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)


@pytest.mark.parametrize(
    "batch_size, accum_grad, steps_per_epoch",
    [(2, 1, 4), (4, 1, 2), (2, 2, 2)],
)
def test_epochs_become_steps_of_this_run(corpus, tmp_path, caplog, batch_size,
                                         accum_grad, steps_per_epoch):
    with caplog.at_level(logging.INFO, logger=RESOLVER_LOGGER):
        ckpt = _train(corpus, tmp_path / "exp", "--batch_size", str(batch_size),
                      "--accum_grad", str(accum_grad))
    state = ckpt["schedulers"][0]
    assert state["steps_per_epoch"] == steps_per_epoch == NUM_TRAIN // batch_size // accum_grad
    assert state["warmup_steps"] == round(0.5 * steps_per_epoch)
    assert state["cooldown_steps"] == steps_per_epoch  # 1 epoch
    assert state["total_steps"] == 2 * steps_per_epoch  # --max_epoch 2
    assert state["last_epoch"] == 2 * steps_per_epoch  # every update was counted
    # after the last update of the run the learning rate is exactly 0
    assert ckpt["optimizers"][0]["param_groups"][0]["lr"] == 0.0
    config = yaml.safe_load((tmp_path / "exp" / "config.yaml").read_text())
    assert config["scheduler"] == "warmup_constant_sqrt_cooldown"
    assert config["scheduler_conf"]["warmup_epochs"] == 0.5
    iterations = NUM_TRAIN // batch_size
    assert (
        f"scheduler sized in epochs: iterations_per_epoch={iterations} "
        f"accum_grad={accum_grad} steps_per_epoch={steps_per_epoch}" in caplog.text
    )


def test_both_optimizers_of_a_mask_search_are_sized(corpus, tmp_path):
    """An MSRS search (θ and φ optimizers) with the MSRS cosine in epochs."""
    config = dict(
        CONFIG,
        scheduler="warmup_cosine",
        scheduler_conf={"warmup_epochs": 1},
        optim2="adamw",
        optim2_conf={"lr": 0.001},
        scheduler2="warmup_cosine",
        scheduler2_conf={"warmup_epochs": 0.5},
    )
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    ckpt = _train(
        corpus, tmp_path / "exp", "--batch_size", "2",
        "--msrs_conf", "mode=search", "--msrs_conf", "mask_penalty=1.0e-5",
        config=path,
    )
    theta, phi = ckpt["schedulers"]
    assert (theta["warmup_steps"], theta["total_steps"]) == (4, 8)
    assert (phi["warmup_steps"], phi["total_steps"]) == (2, 8)
    assert theta["last_epoch"] == phi["last_epoch"] == 8
    assert [o["param_groups"][0]["lr"] for o in ckpt["optimizers"]] == [0.0, 0.0]
