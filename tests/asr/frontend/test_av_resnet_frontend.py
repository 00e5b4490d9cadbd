"""Tests of AVResNetFrontend (``frontend: av_resnet``) on the packed 25 fps
stream written by ``preprocessor: av`` (audio, video or both)."""

import numpy as np
import pytest
import torch

from espnet_msrs.asr.frontend.av_resnet_frontend import AVResNetFrontend, packed_dim
from espnet_msrs.train.av_preprocessor import AVPreprocessor

CROP, HOP = 16, 640
AUDIO = dict(stem_channels=4, widths=[4, 8], blocks=[1, 1], strides=[2, 2])
VIDEO = dict(stem_channels=4, widths=[4, 8], blocks=[1, 1], strides=[2, 2])
FUSION = dict(hidden_units=12, output_size=6)
MODALITIES = ["audio", "video", "av"]


def make_frontend(modality: str, seed: int = 0) -> AVResNetFrontend:
    torch.manual_seed(seed)
    return AVResNetFrontend(
        modality=modality,
        crop_size=CROP,
        hop_length=HOP,
        audio_conf=AUDIO,
        video_conf=VIDEO,
        fusion_conf=FUSION if modality == "av" else None,
    )


def packed_utterance(modality: str, frames: int, seed: int = 0):
    """(T, D) packed by the real preprocessor, plus its audio and video."""
    rng = np.random.default_rng(seed)
    wav = rng.standard_normal(frames * HOP - 100).astype(np.float32)
    video = rng.integers(0, 256, (frames, 20, 20), dtype=np.uint8)
    pre = AVPreprocessor(train=False, modality=modality, crop_size=CROP)
    data = {}
    if modality in ("audio", "av"):
        data["speech"] = wav
    if modality in ("video", "av"):
        data["video"] = video
    out = pre("utt1", data)
    return out["speech"], pre


@pytest.mark.parametrize("modality", MODALITIES)
def test_output_lengths_equal_frames(modality):
    frontend = make_frontend(modality).eval()
    a, _ = packed_utterance(modality, 7, seed=0)
    b, _ = packed_utterance(modality, 5, seed=1)
    assert a.shape == (7, packed_dim(modality, CROP, HOP))
    speech = torch.zeros(2, 7, a.shape[1])
    speech[0] = torch.from_numpy(a)
    speech[1, :5] = torch.from_numpy(b)
    lengths = torch.tensor([7, 5])
    feats, out_lens = frontend(speech, lengths)
    expected_dim = {"audio": 8, "video": 8, "av": 6}[modality]
    assert frontend.output_size() == expected_dim
    assert feats.shape == (2, 7, expected_dim)
    assert torch.equal(out_lens, lengths)
    assert torch.count_nonzero(feats[1, 5:]) == 0
    # valid frames of the padded utterance equal the utterance alone
    alone, _ = frontend(speech[1:, :5], lengths[1:])
    torch.testing.assert_close(feats[1:, :5], alone, rtol=1e-5, atol=1e-5)


def test_unpack_inverts_the_preprocessor_packing():
    frontend = make_frontend("av")
    packed, pre = packed_utterance("av", 6)
    audio, video = frontend.unpack(torch.from_numpy(packed)[None])
    assert audio.shape == (1, 6 * HOP) and video.shape == (1, 6, CROP, CROP)
    rng = np.random.default_rng(0)
    wav = rng.standard_normal(6 * HOP - 100).astype(np.float32)
    raw = rng.integers(0, 256, (6, 20, 20), dtype=np.uint8)
    z = (wav - wav.mean()) / wav.std()
    np.testing.assert_allclose(audio[0, : wav.size].numpy(), z, rtol=1e-4, atol=1e-4)
    assert torch.count_nonzero(audio[0, wav.size:]) == 0  # zero-padded to 6 frames
    centre = (raw[:, 2:18, 2:18].astype(np.float32) / 255.0 - 0.421) / 0.165
    np.testing.assert_allclose(video[0].numpy(), centre, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("modality", MODALITIES)
def test_gradients_reach_every_parameter(modality):
    frontend = make_frontend(modality).train()
    dim = packed_dim(modality, CROP, HOP)
    speech = torch.randn(2, 4, dim)
    feats, _ = frontend(speech, torch.tensor([4, 3]))
    (feats * torch.randn_like(feats)).sum().backward()
    names = [n for n, _ in frontend.named_parameters()]
    prefixes = {"audio": ["audio_frontend."], "video": ["video_frontend."],
                "av": ["audio_frontend.", "video_frontend.", "fusion."]}[modality]
    assert {n.split(".")[0] + "." for n in names} == set(prefixes)
    for name, param in frontend.named_parameters():
        assert param.grad is not None and torch.count_nonzero(param.grad) > 0, name


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(modality="audiovisual"), r"modality='audiovisual'; allowed: \('audio', 'video', 'av'\)"),
        (dict(modality="video", fusion_conf={"hidden_units": 8}), r"fusion_conf is only used with modality=av"),
    ],
)
def test_bad_config_raises_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AVResNetFrontend(crop_size=CROP, video_conf=VIDEO, audio_conf=AUDIO, **kwargs)


def test_wrong_packed_width_names_the_expected_shape():
    frontend = make_frontend("video")
    with pytest.raises(ValueError, match=r"expects packed input \(B, T, 256\).*preprocessor: av"):
        frontend(torch.zeros(1, 3, 640 + 256), torch.tensor([3]))
