"""Tests of the 1D ResNet raw-waveform front end."""

import math

import pytest
import torch
import torch.nn.functional as F
from espnet2.asr.frontend.abs_frontend import AbsFrontend

from espnet_msrs.asr.frontend.audio_resnet_frontend import AudioResNetFrontend
from tests.helpers.resnet_frontends import TINY, randomise_batchnorm, tiny_frontend


def _tiny(**kwargs) -> AudioResNetFrontend:
    return tiny_frontend(AudioResNetFrontend, **kwargs)


@pytest.mark.parametrize("samples", [1, 639, 640, 641, 1280, 2000, 3333])
def test_output_length_is_ceil_of_samples_over_640(samples):
    frontend = _tiny().eval()
    out, lengths = frontend(torch.randn(1, samples), torch.tensor([samples]))
    assert isinstance(frontend, AbsFrontend)
    assert out.shape == (1, math.ceil(samples / 640), 8)
    assert lengths.tolist() == [math.ceil(samples / 640)]


def test_batch_with_different_lengths():
    frontend = _tiny().eval()
    lengths = torch.tensor([2000, 641, 1280, 5])
    out, out_lengths = frontend(torch.randn(4, 2000), lengths)
    assert out.shape == (4, 4, 8)
    assert out_lengths.tolist() == [4, 2, 2, 1]
    for b, n in enumerate(out_lengths.tolist()):
        assert torch.count_nonzero(out[b, n:]) == 0
        assert torch.count_nonzero(out[b, :n]) > 0


@pytest.mark.parametrize("kwargs", [{}, dict(first_kernel=7, strides=(2, 2))])
def test_padding_does_not_change_valid_frames(kwargs):
    frontend = _tiny(activation="prelu", **kwargs).eval()
    torch.manual_seed(1)
    randomise_batchnorm(frontend)
    lengths = [3000, 1000, 641]
    waves = [torch.randn(n) for n in lengths]
    batch = torch.randn(3, 3000) * 10.0  # garbage in the padding
    for b, w in enumerate(waves):
        batch[b, : w.numel()] = w
    out, out_lengths = frontend(batch, torch.tensor(lengths))
    for b, w in enumerate(waves):
        alone, alone_len = frontend(w[None], torch.tensor([w.numel()]))
        frames = int(alone_len[0])
        assert frames == int(out_lengths[b]) == math.ceil(w.numel() / 640)
        torch.testing.assert_close(out[b, :frames], alone[0], rtol=1e-5, atol=1e-5)
        # ... which is the utterance zero-padded to whole frames.
        padded = F.pad(w, (0, frames * 640 - w.numel()))[None]
        whole, _ = frontend(padded, torch.tensor([frames * 640]))
        torch.testing.assert_close(whole[0], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["swish", "prelu", "relu"])
def test_gradients_reach_every_parameter(activation):
    frontend = _tiny(activation=activation).train()
    out, _ = frontend(torch.randn(2, 1500), torch.tensor([1500, 900]))
    (out * torch.randn_like(out)).sum().backward()
    for name, param in frontend.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) > 0, name


def test_accepts_trailing_channel_axis():
    frontend = _tiny().eval()
    x = torch.randn(2, 1000)
    lengths = torch.tensor([1000, 700])
    assert torch.equal(frontend(x, lengths)[0], frontend(x[..., None], lengths)[0])


def test_default_size_is_resnet18_at_25_fps():
    frontend = AudioResNetFrontend().eval()
    num_params = sum(p.numel() for p in frontend.parameters())
    assert frontend.stem_conv.weight.shape == (64, 1, 80)
    assert frontend.stem_padding == (38, 38)
    assert frontend.pool_size == 20  # 4 · 2·2·2 · 20 = 640 samples per frame
    assert 3.8e6 < num_params < 3.9e6
    with torch.no_grad():
        out, lengths = frontend(torch.randn(2, 1700), torch.tensor([1700, 1280]))
    assert out.shape == (2, 3, 512)
    assert lengths.tolist() == [3, 2]


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(blocks=(1,)), "blocks"),
        (dict(widths=(4, 8, 16)), "blocks"),
        (dict(activation="tanh"), "activation"),
        (dict(hop_length=100), "hop_length"),
        (dict(first_kernel=2), "first_kernel"),
        (dict(first_stride=0), "first_stride"),
    ],
)
def test_bad_config_raises(kwargs, key):
    with pytest.raises(ValueError, match=key):
        AudioResNetFrontend(**{**TINY, **kwargs})


def test_bad_input_raises():
    frontend = _tiny()
    with pytest.raises(ValueError, match="mono"):
        frontend(torch.randn(1, 100, 2), torch.tensor([100]))
    with pytest.raises(ValueError, match="input_lengths"):
        frontend(torch.randn(1, 100), torch.tensor([101]))


def test_msrs_masking_reaches_every_conv_weight():
    from espnet_msrs.sparsity.selection import apply_masks

    frontend = _tiny()
    conv_weights = [
        f"{name}.weight"
        for name, m in frontend.named_modules()
        if isinstance(m, torch.nn.Conv1d)
    ]
    assert len(conv_weights) == 6
    assert apply_masks(frontend) == conv_weights
    out, lengths = frontend(torch.randn(2, 1500), torch.tensor([1500, 900]))
    assert out.shape == (2, 3, 8) and lengths.tolist() == [3, 2]
    (out * torch.randn_like(out)).sum().backward()
    logits = {n: p for n, p in frontend.named_parameters() if "mask_logits" in n}
    expected = [w.replace("weight", "mask_logits") for w in conv_weights]
    assert sorted(logits) == sorted(expected)
    assert all(torch.count_nonzero(p.grad) > 0 for p in logits.values())
