"""Tests of the gradient-norm monitor (MSRS Fig. 1)."""

import re

import pytest
import torch
from torch import nn

from espnet_msrs.sparsity.selection import apply_masks
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


def test_default_group_is_the_first_ffn_linear_without_mask_logits():
    torch.manual_seed(0)
    model = ToyASR()
    apply_masks(model)
    groups = default_grad_norm_params(model)
    assert list(groups) == ["grad_norm_enc0_ffn"]
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


def test_monitor_keeps_the_last_backward_norm_and_divides_the_loss_scale():
    torch.manual_seed(0)
    model = ToyASR()
    w1 = model.encoder.encoders[0].feed_forward_macaron.w_1
    monitor = GradNormMonitor(model, {"gn": r"feed_forward_macaron\.w_1\."})
    x = torch.randn(3, 4)
    assert monitor.norms() == {}  # nothing before the first backward
    model(x)[0].backward()
    expected = torch.cat([w1.weight.grad.flatten(), w1.bias.grad.flatten()]).norm()
    torch.testing.assert_close(monitor.norms()["gn"], expected)
    model.zero_grad()

    class Scaler:
        _scale = torch.tensor(1024.0)

        def is_enabled(self):
            return True

    monitor.set_scaler(Scaler())
    (model(x)[0] * 1024.0).backward()
    torch.testing.assert_close(monitor.norms()["gn"], expected)
    monitor.remove()
    model.zero_grad()
    model(x)[0].backward()  # removed: no longer updated
    torch.testing.assert_close(monitor.norms()["gn"], expected)


def test_monitor_bad_regex_raises():
    with pytest.raises(ValueError, match="matches no trainable parameter"):
        GradNormMonitor(ToyASR(), {"gn": "decoder"})
    with pytest.raises(ValueError, match="not a valid regex"):
        GradNormMonitor(ToyASR(), {"gn": "("})
