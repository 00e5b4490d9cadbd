"""Tests of the one compatibility module: each reliance on internals, checked
against the installed versions (rerun these first after an upgrade)."""

import collections
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch import nn

from espnet_msrs import compat
from espnet_msrs.sparsity.masked_layers import is_mask_logits
from espnet_msrs.sparsity.selection import apply_masks

REPO = Path(__file__).resolve().parents[1]


def test_call_after_import_runs_right_after_the_module_in_a_fresh_process():
    code = textwrap.dedent(
        """
        import sys
        from espnet_msrs import compat
        calls = []
        compat.call_after_import("os", lambda: calls.append("now"))  # loaded
        compat.call_after_import(
            "colorsys",
            lambda: calls.append(("colorsys", "colorsys" in sys.modules)),
        )
        print("BEFORE", calls)
        import colorsys
        print("AFTER", calls, "colorsys" in compat._finder.callbacks)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, cwd=REPO, check=True).stdout
    assert "BEFORE ['now']" in out
    assert "AFTER ['now', ('colorsys', True)] False" in out


def test_clipped_parameters_view_leaves_out_phi_and_autocasts():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    apply_masks(model)
    view = compat.clipped_parameters_view(model, is_mask_logits)
    assert isinstance(view, nn.Module) and view.module is model
    names = {id(p): n for n, p in model.named_parameters()}
    seen = [names[id(p)] for p in view.parameters()]
    assert seen == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = torch.randn(2, 4)
    assert torch.equal(view(x), model(x))
    bf16 = compat.clipped_parameters_view(model, is_mask_logits, torch.bfloat16)
    assert bf16(x).dtype == torch.bfloat16
    view.train(False)
    assert not model.training
    # ESPnet 202511 clips exactly what parameters() yields
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    torch.nn.utils.clip_grad_norm_(view.parameters(), max_norm=1e-3)
    assert torch.equal(model[0].mask_logits.grad, torch.ones_like(model[0].mask_logits))
    assert float(model[0].weight.grad.max()) < 1e-3


def test_loss_scale_is_the_scaler_tensor():
    assert compat.loss_scale(None) is None
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    loss = torch.ones((), requires_grad=True)
    scaler.scale(loss)
    scale = compat.loss_scale(scaler)
    assert isinstance(scale, torch.Tensor) and float(scale) == 256.0
    assert compat.loss_scale(torch.amp.GradScaler("cpu", enabled=False)) is None


def test_conv_forward_uses_the_given_weight_and_padding_mode():
    torch.manual_seed(0)
    conv = nn.Conv1d(2, 3, 3, padding=1, padding_mode="reflect")
    x = torch.randn(1, 2, 7)
    assert torch.equal(compat.conv_forward(conv, x, conv.weight, conv.bias), conv(x))
    zero = compat.conv_forward(conv, x, torch.zeros_like(conv.weight), None)
    assert torch.equal(zero, torch.zeros_like(zero))


def test_copy_state_dict_metadata_keeps_batchnorm_versions():
    bn = nn.BatchNorm1d(3)
    state = bn.state_dict()
    copy = collections.OrderedDict(state)
    compat.copy_state_dict_metadata(state, copy)
    assert copy._metadata[""]["version"] == state._metadata[""]["version"]
