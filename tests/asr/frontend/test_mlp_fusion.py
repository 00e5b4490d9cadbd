"""Tests of the audio-visual MLP fusion."""

import pytest
import torch

from espnet_msrs.asr.frontend.mlp_fusion import MLPFusion

TINY = dict(audio_input_size=3, video_input_size=5, hidden_units=16, output_size=6)


def _tiny() -> MLPFusion:
    torch.manual_seed(0)
    return MLPFusion(**TINY)


def test_fused_output_shape():
    fusion = _tiny()
    out = fusion(torch.randn(2, 7, 3), torch.randn(2, 7, 5))
    assert fusion.output_size() == 6
    assert out.shape == (2, 7, 6)
    assert [type(m) for m in fusion.children()] == [
        torch.nn.Linear,
        torch.nn.BatchNorm1d,
        torch.nn.ReLU,
        torch.nn.Linear,
    ]


def test_default_sizes():
    fusion = MLPFusion()
    assert fusion.fc1.weight.shape == (8192, 1024)
    assert fusion.fc2.weight.shape == (768, 8192)
    num_params = sum(p.numel() for p in fusion.parameters())
    assert num_params == 1024 * 8192 + 8192 + 2 * 8192 + 8192 * 768 + 768


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_padding_does_not_change_valid_frames(mode):
    fusion = _tiny().train(mode == "train")
    a, v = torch.randn(1, 4, 3), torch.randn(1, 4, 5)
    pad_a = torch.cat([a, 9.0 * torch.randn(1, 3, 3)], 1)
    pad_v = torch.cat([v, 9.0 * torch.randn(1, 3, 5)], 1)
    out = fusion(pad_a, pad_v, torch.tensor([4]))
    ref = fusion(a, v, torch.tensor([4]))
    # Padded frames are excluded even from the BatchNorm batch statistics.
    torch.testing.assert_close(out[:, :4], ref)
    assert torch.count_nonzero(out[:, 4:]) == 0


def test_gradients_reach_every_parameter():
    fusion = _tiny().train()
    out = fusion(torch.randn(2, 5, 3), torch.randn(2, 5, 5), torch.tensor([5, 3]))
    (out * torch.randn_like(out)).sum().backward()
    for name, param in fusion.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) > 0, name


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="hidden_units"):
        MLPFusion(**{**TINY, "hidden_units": 0})
    fusion = _tiny()
    with pytest.raises(ValueError, match=r"\(B, T, 3\) and \(B, T, 5\) with the same B and T"):
        fusion(torch.randn(2, 7, 3), torch.randn(2, 6, 5))


def test_msrs_masking_reaches_both_linears():
    from espnet_msrs.sparsity.selection import apply_masks

    fusion = _tiny().train()
    assert apply_masks(fusion) == ["fc1.weight", "fc2.weight"]
    out = fusion(torch.randn(2, 4, 3), torch.randn(2, 4, 5), torch.tensor([4, 2]))
    assert out.shape == (2, 4, 6)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.count_nonzero(fusion.fc1.mask_logits.grad) > 0
    assert torch.count_nonzero(fusion.fc2.mask_logits.grad) > 0
