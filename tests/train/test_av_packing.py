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


# ------------------------------------- build_model's front end / preprocessor check
def _config(frontend="av_resnet", frontend_conf=None, preprocessor="av",
            preprocessor_conf=None, use_preprocessor=True):
    import argparse

    import espnet_msrs

    espnet_msrs.register()
    return argparse.Namespace(
        frontend=frontend, frontend_conf=frontend_conf or {},
        preprocessor=preprocessor, preprocessor_conf=preprocessor_conf or {},
        use_preprocessor=use_preprocessor,
    )


@pytest.mark.parametrize(
    "frontend_conf, preprocessor_conf",
    [
        ({}, {"modality": "av"}),  # both defaults: av, 88, 640 = 16000/25
        ({"modality": "video", "crop_size": 64}, {"modality": "video", "crop_size": 64}),
        # an audio-only model does not read the crop size
        ({"modality": "audio"}, {"modality": "audio", "crop_size": 64}),
        ({"hop_length": 320}, {"modality": "av", "sample_rate": 8000}),
    ],
)
def test_agreeing_frontend_and_preprocessor_pass(frontend_conf, preprocessor_conf):
    from espnet_msrs.train.av_preprocessor import check_av_packing

    check_av_packing(_config(frontend_conf=frontend_conf,
                             preprocessor_conf=preprocessor_conf))
    # neither packs nor unpacks: nothing to check
    check_av_packing(_config(frontend="default", preprocessor="default"))
    check_av_packing(_config(frontend=None, preprocessor="av"))


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(frontend_conf={"modality": "av"}, preprocessor_conf={"modality": "video"}),
         "frontend_conf modality=av disagrees with preprocessor_conf modality=video"),
        (dict(preprocessor_conf={"modality": "av", "crop_size": 64}),
         "frontend_conf crop_size=88 disagrees with preprocessor_conf crop_size=64"),
        (dict(preprocessor_conf={"modality": "av", "video_fps": 50}),
         "frontend_conf hop_length=640 disagrees with preprocessor_conf "
         "sample_rate/video_fps=320"),
        (dict(preprocessor_conf={}), "preprocessor_conf modality: null"),
        (dict(preprocessor="default", preprocessor_conf={"modality": "av"}),
         "preprocessor: 'default'"),
        (dict(use_preprocessor=False, preprocessor_conf={"modality": "av"}),
         "use_preprocessor=False"),
        (dict(frontend="default", preprocessor_conf={"modality": "av"}),
         "but frontend is 'default'"),
    ],
)
def test_disagreeing_frontend_and_preprocessor_name_the_keys(config, message):
    from espnet_msrs.train.av_preprocessor import check_av_packing

    with pytest.raises(ValueError, match=message):
        check_av_packing(_config(**config))


def test_task_build_model_refuses_a_disagreeing_preprocessor(tmp_path):
    from pathlib import Path

    from espnet_msrs.tasks.asr import MSRSASRTask

    conf = Path(__file__).resolve().parents[2] / "conf" / "tuning" / "train_avsr_tiny.yaml"
    args = MSRSASRTask.get_parser().parse_args(["--config", str(conf)])
    args.token_list = ["<blank>", "<unk>", "A", "<sos/eos>"]
    args.preprocessor_conf = dict(args.preprocessor_conf, crop_size=24)
    with pytest.raises(ValueError, match="crop_size=32 disagrees with "
                       "preprocessor_conf crop_size=24"):
        MSRSASRTask.build_model(args)
