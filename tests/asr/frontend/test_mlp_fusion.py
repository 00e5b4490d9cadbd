"""Tests of the audio-visual MLP fusion and the stream length alignment."""

import pytest
import torch

from espnet_msrs.asr.frontend.mlp_fusion import MLPFusion, align_lengths

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


def test_align_within_tolerance_trims_and_pads_to_video():
    a = torch.arange(1.0, 11.0).view(1, 10, 1).repeat(2, 1, 2)  # (2, 10, 2)
    v = -torch.arange(1.0, 10.0).view(1, 9, 1).repeat(2, 1, 3)  # (2, 9, 3)
    a_lens, v_lens = torch.tensor([10, 7]), torch.tensor([8, 9])
    a2, v2, lens = MLPFusion.align_lengths(a, a_lens, v, v_lens, tolerance=2)
    assert lens.tolist() == [8, 9]
    assert a2.shape == (2, 9, 2) and v2.shape == (2, 9, 3)
    # utterance 0: audio trimmed from 10 to 8 frames
    assert a2[0, :, 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 0]
    # utterance 1: audio padded with zeros from 7 to 9 frames
    assert a2[1, :, 0].tolist() == [1, 2, 3, 4, 5, 6, 7, 0, 0]
    assert v2[0, :, 0].tolist() == [-1, -2, -3, -4, -5, -6, -7, -8, 0]
    assert torch.equal(v2[1], v[1])


def test_align_min_reference():
    a, v = torch.ones(2, 6, 2), torch.ones(2, 5, 2)
    a2, v2, lens = align_lengths(
        a, torch.tensor([6, 4]), v, torch.tensor([5, 5]), reference="min"
    )
    assert lens.tolist() == [5, 4]
    assert a2.shape == v2.shape == (2, 5, 2)
    assert a2[:, :, 0].sum(1).tolist() == v2[:, :, 0].sum(1).tolist() == [5, 4]


def test_align_beyond_tolerance_names_the_utterance():
    a, v = torch.zeros(2, 10, 2), torch.zeros(2, 10, 2)
    a_lens, v_lens = torch.tensor([10, 5]), torch.tensor([10, 9])
    with pytest.raises(ValueError, match=r"spk1-utt2.*audio has 5.*video has 9"):
        uids = ["spk1-utt1", "spk1-utt2"]
        align_lengths(a, a_lens, v, v_lens, tolerance=2, uids=uids)
    with pytest.raises(ValueError, match=r"batch index 1.*5.*9"):
        MLPFusion.align_lengths(a, a_lens, v, v_lens, tolerance=2)
    # Exactly at the tolerance passes.
    _, _, lens = align_lengths(a, a_lens, v, v_lens, tolerance=4)
    assert lens.tolist() == [10, 9]


def test_fused_aligned_streams():
    fusion = _tiny().eval()
    a, v = torch.randn(2, 8, 3), torch.randn(2, 7, 5)
    a2, v2, lens = fusion.align_lengths(
        a, torch.tensor([8, 6]), v, torch.tensor([7, 7]), uids=["u1", "u2"]
    )
    out = fusion(a2, v2, lens)
    assert out.shape == (2, 7, 6)
    assert torch.count_nonzero(out) == 2 * 7 * 6


def test_bad_config_and_input_raise():
    with pytest.raises(ValueError, match="hidden_units"):
        MLPFusion(**{**TINY, "hidden_units": 0})
    fusion = _tiny()
    with pytest.raises(ValueError, match="align_lengths"):
        fusion(torch.randn(2, 7, 3), torch.randn(2, 6, 5))
    with pytest.raises(ValueError, match="reference"):
        align_lengths(
            torch.zeros(1, 2, 1),
            torch.tensor([2]),
            torch.zeros(1, 2, 1),
            torch.tensor([2]),
            reference="longest",
        )


def test_msrs_masking_reaches_both_linears():
    from espnet_msrs.sparsity.selection import apply_masks

    fusion = _tiny().train()
    assert apply_masks(fusion) == ["fc1.weight", "fc2.weight"]
    out = fusion(torch.randn(2, 4, 3), torch.randn(2, 4, 5), torch.tensor([4, 2]))
    assert out.shape == (2, 4, 6)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.count_nonzero(fusion.fc1.mask_logits.grad) > 0
    assert torch.count_nonzero(fusion.fc2.mask_logits.grad) > 0
