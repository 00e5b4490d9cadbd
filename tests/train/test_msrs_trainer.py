"""Unit tests of the MSRS trainer hooks and the gradient-norm monitor."""

import dataclasses

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.controller import MaskSearchController, MaskSearchConverged
from espnet_msrs.sparsity.policy import apply_masks
from espnet_msrs.train.grad_norm import GradNormMonitor, default_grad_norm_params


class ToyASR(nn.Module):
    """``(loss, stats, weight)`` like ESPnet's ASR model."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        block = nn.Module()
        block.feed_forward_macaron = nn.Module()
        block.feed_forward_macaron.w_1 = nn.Linear(4, 8)
        block.feed_forward = nn.Module()
        block.feed_forward.w_1 = nn.Linear(8, 4)
        self.encoder.encoders = nn.ModuleList([block])

    def forward(self, x):
        block = self.encoder.encoders[0]
        y = block.feed_forward.w_1(torch.tanh(block.feed_forward_macaron.w_1(x)))
        loss = y.square().mean()
        return loss, {"loss": loss.detach()}, torch.tensor(x.shape[0])


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


def _search_model():
    torch.manual_seed(0)
    model = ToyASR()
    apply_masks(model)
    controller = MaskSearchController(mask_penalty=1e-3).attach(model)
    return model, controller


def test_training_view_hides_mask_logits_and_autocasts(trainer_module):
    model, _ = _search_model()
    view = trainer_module.TrainingView(model)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [names[id(p)] for p in view.parameters()]
    assert seen == [n for n in names.values() if not n.endswith("mask_logits")]
    assert len(seen) == 4
    x = torch.randn(2, 4)
    assert torch.equal(view(x)[0], model(x)[0])
    bf16 = trainer_module.TrainingView(model, torch.bfloat16)
    captured = {}

    def hook(module, inputs, output):
        captured["dtype"] = output.dtype

    model.encoder.encoders[0].feed_forward.w_1.register_forward_hook(hook)
    bf16(x)
    assert captured["dtype"] == torch.bfloat16
    view.train(False)
    assert not model.training


def test_train_one_epoch_stops_a_converged_search(trainer_module):
    model, controller = _search_model()
    controller.start()
    controller.end_epoch(1)
    controller.end_epoch(2)  # unchanged mask: converged
    assert controller.converged
    wrapped = trainer_module.TrainingView(model)  # like DDP: .module
    with pytest.raises(MaskSearchConverged, match="epoch=2 sparsity="):
        trainer_module.MSRSTrainer.train_one_epoch(
            model=wrapped, optimizers=[], schedulers=[], iterator=[],
            reporter=None, scaler=None, summary_writer=None,
            options=_options(), distributed_option=None,
        )


def test_validate_one_epoch_records_the_sparsity(trainer_module):
    from espnet2.train.distributed_utils import DistributedOption
    from espnet2.train.reporter import SubReporter

    model, controller = _search_model()
    controller.start()
    with torch.no_grad():
        model.encoder.encoders[0].feed_forward.w_1.mask_logits.fill_(-1.0)
    trainer_module.MSRSTrainer.validate_one_epoch(
        model=model, iterator=[], reporter=SubReporter("valid", 3, 0),
        options=_options(), distributed_option=DistributedOption(),
    )
    assert controller.epochs == [0, 3]
    assert controller.history[1] == pytest.approx(32 / 64)


def test_write_environment(trainer_module, tmp_path):
    import json

    trainer_module.write_environment(tmp_path / "exp")
    env = json.loads((tmp_path / "exp" / "environment.json").read_text())
    assert env["torch"] == torch.__version__ and env["espnet"]
    assert set(env) >= {"espnet_msrs", "espnet_msrs_git", "host", "argv"}


# ---------------------------------------------------------------- grad norms
def test_default_group_is_the_first_ffn_linear_without_mask_logits():
    model, _ = _search_model()
    groups = default_grad_norm_params(model)
    assert list(groups) == ["grad_norm_enc0_ffn"]
    import re

    regex = groups["grad_norm_enc0_ffn"]
    names = [n for n, _ in model.named_parameters() if re.search(regex, n)]
    assert names == ["encoder.encoders.0.feed_forward_macaron.w_1.weight",
                     "encoder.encoders.0.feed_forward_macaron.w_1.bias"]
    del model.encoder.encoders[0].feed_forward_macaron
    names = [n for n, _ in model.named_parameters()
             if re.search(default_grad_norm_params(model)["grad_norm_enc0_ffn"], n)]
    assert names == ["encoder.encoders.0.feed_forward.w_1.weight",
                     "encoder.encoders.0.feed_forward.w_1.bias"]
    assert default_grad_norm_params(nn.Linear(2, 2)) == {}


def test_monitor_reports_previous_step_norm_and_divides_the_loss_scale():
    torch.manual_seed(0)
    model = ToyASR()
    w1 = model.encoder.encoders[0].feed_forward_macaron.w_1
    monitor = GradNormMonitor(model, {"gn": r"feed_forward_macaron\.w_1\."})
    x = torch.randn(3, 4)
    loss, stats, _ = model(x)
    assert "gn" not in stats  # nothing before the first backward
    loss.backward()
    expected = torch.cat([w1.weight.grad.flatten(), w1.bias.grad.flatten()]).norm()
    stats = model(x)[1]
    torch.testing.assert_close(stats["gn"], expected)
    model.eval()
    assert "gn" not in model(x)[1]  # validation: no gradient norms
    model.train()
    model.zero_grad()

    class Scaler:
        _scale = torch.tensor(1024.0)

        def is_enabled(self):
            return True

    monitor.set_scaler(Scaler())
    (model(x)[0] * 1024.0).backward()
    torch.testing.assert_close(model(x)[1]["gn"], expected)
    monitor.remove()


def test_monitor_bad_regex_raises():
    with pytest.raises(ValueError, match="matches no trainable parameter"):
        GradNormMonitor(ToyASR(), {"gn": "decoder"})
    with pytest.raises(ValueError, match="not a valid regex"):
        GradNormMonitor(ToyASR(), {"gn": "("})
