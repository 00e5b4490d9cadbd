"""Unit tests of the MSRS trainer's hooks."""

import dataclasses
import json

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def trainer_module():
    from espnet_msrs.train import msrs_trainer

    return msrs_trainer


def _options(**overrides):
    from espnet2.train.trainer import TrainerOptions

    fields = dataclasses.fields(TrainerOptions)
    options = TrainerOptions(**{f.name: None for f in fields})
    values = dict(use_amp=False, ngpu=0, no_forward_run=False, **overrides)
    for key, value in values.items():
        setattr(options, key, value)
    return options


class Method:
    """A sparse-training method that stops before epoch ``stop_at``."""

    def __init__(self, stop_at):
        self.stop_at = stop_at
        self.started = []

    def epoch_start(self, epoch):
        self.started.append(epoch)
        return "converged" if epoch >= self.stop_at else None


class Owner(nn.Module):
    def __init__(self, method):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.sparse_method = method


class Wrapper(nn.Module):  # like DDP: .module
    def __init__(self, module):
        super().__init__()
        self.module = module


def test_train_one_epoch_stops_where_the_method_says(trainer_module):
    from espnet2.train.reporter import SubReporter

    method = Method(stop_at=3)
    model = Wrapper(Owner(method))
    assert trainer_module.sparse_method_of(model) is method
    with pytest.raises(trainer_module.StopTraining, match="before epoch 3: converged"):
        trainer_module.MSRSTrainer.train_one_epoch(
            model=model, optimizers=[], schedulers=[], iterator=[],
            reporter=SubReporter("train", 3, 0), scaler=None, summary_writer=None,
            options=_options(), distributed_option=None,
        )
    assert method.started == [3]
    assert trainer_module.sparse_method_of(nn.Linear(2, 2)) is None


def test_build_options_adds_the_writer_list(trainer_module):
    from espnet2.tasks.asr import ASRTask

    import espnet_msrs  # noqa: F401
    from espnet_msrs.tasks.asr import MSRSASRTask

    args = MSRSASRTask.get_parser().parse_args(["--output_dir", "x"])
    options = trainer_module.MSRSTrainer.build_options(args)
    assert isinstance(options, trainer_module.MSRSTrainerOptions)
    assert options.train_summary_writers == []
    assert options.max_epoch == args.max_epoch
    assert issubclass(MSRSASRTask, ASRTask)


def test_write_environment(trainer_module, tmp_path):
    trainer_module.write_environment(tmp_path / "exp")
    env = json.loads((tmp_path / "exp" / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["espnet"]
    assert set(env) >= {"espnet_msrs", "espnet_msrs_git", "host", "argv"}
