"""Packing audio/video into one 25 fps stream and unpacking it in the front end."""

import numpy as np
import pytest
import torch

from espnet_msrs.asr.frontend.av_resnet_frontend import AVResNetFrontend, packed_dim
from espnet_msrs.train.av_preprocessor import AVPreprocessor

TINY = {"stem_channels": 4, "widths": [4, 8], "blocks": [1, 1], "strides": [1, 2]}


def _pre(modality, **kw):
    return AVPreprocessor(train=False, modality=modality, crop_size=8, **kw)


def _utt(frames=5, samples=None, seed=0):
    rng = np.random.default_rng(seed)
    samples = frames * 640 if samples is None else samples
    return {
        "speech": rng.standard_normal(samples).astype(np.float32),
        "video": rng.integers(0, 256, (frames, 12, 12), dtype=np.uint8),
    }


@pytest.mark.parametrize("modality", ["audio", "video", "av"])
def test_pack_shapes_and_unpack_round_trip(modality):
    pre = _pre(modality)
    data = _utt(frames=5, samples=5 * 640 - 100)
    alone = {
        "audio": _pre(None)("u", {"speech": data["speech"]})["speech"],
        "video": _pre(None)("u", {"video": data["video"]})["video"],
    }
    out = pre("u", dict(data))
    assert set(out) == {"speech"}
    packed = out["speech"]
    assert packed.shape == (5, packed_dim(modality, 8, 640))
    front = AVResNetFrontend(
        modality=modality,
        crop_size=8,
        audio_conf=TINY,
        video_conf=TINY,
        fusion_conf={"hidden_units": 16, "output_size": 6} if modality == "av" else None,
    )
    audio, video = front.unpack(torch.from_numpy(packed)[None])
    if modality in ("audio", "av"):
        # zero-padded to whole frames, samples unchanged
        np.testing.assert_array_equal(audio[0, : 5 * 640 - 100].numpy(), alone["audio"])
        assert float(audio[0, 5 * 640 - 100 :].abs().sum()) == 0.0
    else:
        assert audio is None
    if modality in ("video", "av"):
        np.testing.assert_array_equal(video[0].numpy(), alone["video"])
    else:
        assert video is None
    feats, lens = front.eval()(torch.from_numpy(packed)[None], torch.tensor([5]))
    assert feats.shape[:2] == (1, 5) and lens.tolist() == [5]
    assert feats.shape[-1] == front.output_size()


def test_av_length_mismatch_within_tolerance_is_aligned_to_video():
    out = _pre("av")("u", _utt(frames=5, samples=7 * 640))  # 2 frames longer
    assert out["speech"].shape[0] == 5


def test_av_length_mismatch_beyond_tolerance_names_utterance():
    with pytest.raises(ValueError, match=r"utt42.*8 frames.*5 frames"):
        _pre("av")("utt42", _utt(frames=5, samples=7 * 640 + 1))


def test_missing_stream_names_utterance():
    with pytest.raises(ValueError, match="utt7.*needs video"):
        _pre("av")("utt7", {"speech": np.zeros(640, np.float32)})


def test_vsr_video_given_as_speech_is_accepted():
    data = _utt(frames=4)
    out = _pre("video")("u", {"speech": data["video"]})
    assert out["speech"].shape == (4, 64)


def test_bad_modality_and_packed_width_raise():
    with pytest.raises(ValueError, match="modality"):
        _pre("both")
    front = AVResNetFrontend(modality="video", crop_size=8, video_conf=TINY)
    with pytest.raises(ValueError, match=r"expects packed input \(B, T, 64\)"):
        front(torch.zeros(1, 3, 65), torch.tensor([3]))
