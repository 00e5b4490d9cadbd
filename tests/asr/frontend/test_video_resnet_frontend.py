"""Tests of the 3D-conv + 2D ResNet video front end."""

import pytest
import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from espnet_msrs.asr.frontend.video_resnet_frontend import VideoResNetFrontend
from tests.helpers.resnet_frontends import TINY, randomise_batchnorm, tiny_frontend


def _tiny(**kwargs) -> VideoResNetFrontend:
    return tiny_frontend(VideoResNetFrontend, **kwargs)


@pytest.mark.parametrize("frames", [1, 5, 9])
def test_output_shape_and_lengths(frames):
    frontend = _tiny().eval()
    lengths = torch.tensor([frames, max(frames - 1, 0)])
    out, out_lengths = frontend(torch.randn(2, frames, 16, 16), lengths)
    assert isinstance(frontend, AbsFrontend)
    assert frontend.output_size() == 8
    assert out.shape == (2, frames, 8)
    assert torch.equal(out_lengths, lengths)


def test_five_dim_input_equals_four_dim():
    frontend = _tiny().eval()
    x = torch.randn(2, 4, 16, 16)
    lengths = torch.tensor([4, 3])
    out4, _ = frontend(x, lengths)
    out5, _ = frontend(x.unsqueeze(2), lengths)
    assert torch.equal(out4, out5)


def test_padding_does_not_change_valid_frames():
    frontend = _tiny(activation="prelu").eval()
    torch.manual_seed(1)
    randomise_batchnorm(frontend)
    long, short = torch.randn(7, 16, 16), torch.randn(4, 16, 16)
    batch = torch.randn(2, 7, 16, 16) * 5.0  # garbage in the padding
    batch[0], batch[1, :4] = long, short
    out, _ = frontend(batch, torch.tensor([7, 4]))
    alone_long, _ = frontend(long[None], torch.tensor([7]))
    alone_short, _ = frontend(short[None], torch.tensor([4]))
    torch.testing.assert_close(out[0], alone_long[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1, :4], alone_short[0], rtol=1e-5, atol=1e-5)
    assert torch.count_nonzero(out[1, 4:]) == 0
    # Neighbouring frames do interact (the stem is temporal): changing frame 0
    # changes frame 1 but not frame 5 (outside the 5-frame kernel).
    changed = long.clone()
    changed[0] += 1.0
    out_changed, _ = frontend(changed[None], torch.tensor([7]))
    assert not torch.allclose(out_changed[0, 1], alone_long[0, 1])
    torch.testing.assert_close(out_changed[0, 5], alone_long[0, 5])


@pytest.mark.parametrize("activation", ["swish", "prelu", "relu"])
def test_gradients_reach_every_parameter(activation):
    frontend = _tiny(activation=activation).train()
    out, _ = frontend(torch.randn(2, 5, 16, 16), torch.tensor([5, 3]))
    (out * torch.randn_like(out)).sum().backward()
    for name, param in frontend.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) > 0, name


def test_only_plain_torch_conv_and_linear_modules():
    frontend = _tiny()
    convs = [
        type(m)
        for m in frontend.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))
    ]
    # stem + 2 convs per block + 1 shortcut conv in the strided stage.
    assert convs.count(torch.nn.Conv3d) == 1
    assert convs.count(torch.nn.Conv2d) == 5


def test_default_size_is_resnet18():
    frontend = VideoResNetFrontend().eval()
    num_params = sum(p.numel() for p in frontend.parameters())
    assert frontend.stem_conv.weight.shape == (64, 1, 5, 7, 7)
    assert 11.1e6 < num_params < 11.3e6  # paper: ~11.2 M front end
    with torch.no_grad():
        out, _ = frontend(torch.randn(1, 2, 88, 88), torch.tensor([2]))
    assert out.shape == (1, 2, 512)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(blocks=(1, 1, 1)), "blocks"),
        (dict(strides=(1,)), "strides"),
        (dict(widths=(4, 0)), "widths"),
        (dict(activation="gelu"), "activation"),
        (dict(stem_channels=0), "stem_channels"),
    ],
)
def test_bad_config_raises(kwargs, key):
    with pytest.raises(ValueError, match=key):
        VideoResNetFrontend(**{**TINY, **kwargs})


def test_bad_input_raises():
    frontend = _tiny()
    with pytest.raises(ValueError, match="channels"):
        frontend(torch.randn(1, 3, 3, 16, 16), torch.tensor([3]))
    with pytest.raises(ValueError, match="input_lengths"):
        frontend(torch.randn(1, 3, 16, 16), torch.tensor([4]))


def test_msrs_masking_reaches_every_conv_weight():
    from espnet_msrs.sparsity.selection import apply_masks

    frontend = _tiny()
    conv_weights = [
        f"{name}.weight"
        for name, m in frontend.named_modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))
    ]
    assert apply_masks(frontend) == conv_weights
    out, _ = frontend(torch.randn(2, 5, 16, 16), torch.tensor([5, 3]))
    assert out.shape == (2, 5, 8)
    (out * torch.randn_like(out)).sum().backward()
    logits = {n: p for n, p in frontend.named_parameters() if "mask_logits" in n}
    expected = [w.replace("weight", "mask_logits") for w in conv_weights]
    assert sorted(logits) == sorted(expected)
    assert all(torch.count_nonzero(p.grad) > 0 for p in logits.values())
