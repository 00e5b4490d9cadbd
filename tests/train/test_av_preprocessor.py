"""Tests of espnet_msrs.train.av_preprocessor (AVPreprocessor, mix_at_snr)."""

import argparse

import numpy as np
import pytest
import soundfile

from espnet_msrs.train.av_preprocessor import AVPreprocessor, _time_mask, mix_at_snr

MEAN, STD = 0.421, 0.165
TOKENS = ["<blank>", "<unk>", "a", "b", "c", "<space>", "<sos/eos>"]


def make_data(seconds: float = 1.2, size: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    num_frames = int(round(seconds * 25))
    return dict(
        speech=(0.1 * rng.standard_normal(int(seconds * 16000)) + 0.05).astype(
            np.float32
        ),
        video=rng.integers(0, 256, (num_frames, size, size), dtype=np.uint8),
        text="ab ca",
    )


@pytest.fixture
def babble(tmp_path):
    path = tmp_path / "babble.wav"
    noise = 0.3 * np.random.default_rng(5).standard_normal(16000 * 3)
    soundfile.write(path, noise, 16000)
    return str(path)


def measured_snr(speech, mixed):
    noise = mixed.astype(np.float64) - speech.astype(np.float64)
    return 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))


# ---------------------------------------------------------------- mix_at_snr


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
@pytest.mark.parametrize("noise_len", [500, 3000])
def test_mix_at_snr_is_exact(snr, noise_len):
    rng = np.random.default_rng(0)
    speech = rng.standard_normal(2000).astype(np.float32)
    noise = 3.0 * rng.standard_normal(noise_len)
    mixed = mix_at_snr(speech, noise, snr, np.random.default_rng(1))
    assert mixed.shape == speech.shape and mixed.dtype == np.float32
    assert abs(measured_snr(speech, mixed) - snr) < 0.1


def test_mix_at_snr_uses_a_random_offset():
    speech = np.ones(100)
    noise = np.arange(1000, dtype=np.float64) - 500
    a = mix_at_snr(speech, noise, 0.0, np.random.default_rng(0))
    b = mix_at_snr(speech, noise, 0.0, np.random.default_rng(1))
    c = mix_at_snr(speech, noise, 0.0, np.random.default_rng(0))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)


def test_mix_at_snr_rejects_silent_noise():
    with pytest.raises(ValueError, match="silent"):
        mix_at_snr(np.ones(10), np.zeros(10), 0.0, np.random.default_rng(0))


def test_mix_at_snr_keeps_silent_speech():
    out = mix_at_snr(np.zeros(10), np.ones(10), 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out, np.zeros(10))


# --------------------------------------------------------------- time masks


class CountingRng:
    """Stands in for a Generator: counts draws, always returns the low end."""

    def __init__(self):
        self.calls = 0

    def integers(self, low, high):
        self.calls += 1
        return low


@pytest.mark.parametrize(
    "length, rate, expected_masks", [(100, 10, 10), (25, 25, 1), (26, 25, 2)]
)
def test_number_of_masks_is_proportional_to_length(length, rate, expected_masks):
    rng = CountingRng()
    _time_mask(np.zeros(length), rate, 1.0, 0.4, -1.0, rng)
    assert rng.calls == 2 * expected_masks


def test_masks_are_bounded_by_max_mask_sec():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = _time_mask(np.zeros(100), 10, 1.0, 0.4, -1.0, rng)
        assert (x == -1).sum() <= 10 * 4
    x = _time_mask(np.zeros(100), 10, 1.0, 0.0, -1.0, rng)
    assert (x == -1).sum() == 0


# ------------------------------------------------------------------ eval mode


def expected_eval(data, crop=88):
    top = (data["video"].shape[1] - crop) // 2
    video = data["video"][:, top : top + crop, top : top + crop].astype(np.float32)
    video = (video / 255.0 - MEAN) / STD
    speech = data["speech"].astype(np.float64)
    speech = (speech - speech.mean()) / speech.std()
    return speech, video


def test_eval_is_centre_crop_and_normalisation_only(babble):
    pre = AVPreprocessor(train=False, babble_path=babble)
    data = make_data()
    state = np.random.get_state()
    out = pre("utt1", dict(data))
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # no RNG use
    speech, video = expected_eval(data)
    assert out["speech"].dtype == np.float32 and out["speech"].shape == (19200,)
    assert out["video"].dtype == np.float32 and out["video"].shape == (30, 88, 88)
    np.testing.assert_allclose(out["video"], video, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["speech"], speech, rtol=1e-5, atol=1e-5)
    assert abs(out["speech"].mean()) < 1e-5 and abs(out["speech"].std() - 1) < 1e-4
    assert out["text"] == "ab ca"  # no tokenizer configured


def test_eval_snr_is_deterministic_and_noisy(babble):
    pre = AVPreprocessor(train=False, babble_path=babble, eval_snr=0)
    clean = AVPreprocessor(train=False)
    data = make_data()
    np.random.seed(0)
    a = pre("utt1", dict(data))["speech"]
    np.random.seed(1)
    b = pre("utt1", dict(data))["speech"]
    np.testing.assert_array_equal(a, b)
    c = clean("utt1", dict(data))["speech"]
    # At 0 dB the noise has the speech's power: correlation with clean ≈ 1/sqrt(2).
    assert 0.6 < np.corrcoef(a, c)[0, 1] < 0.8


# -------------------------------------------------------------- training mode


def test_train_shapes_dtypes_and_text(tmp_path, babble):
    pre = AVPreprocessor(
        train=True, token_type="char", token_list=TOKENS, babble_path=babble
    )
    np.random.seed(0)
    out = pre("utt1", make_data())
    assert out["speech"].shape == (19200,) and out["speech"].dtype == np.float32
    assert out["video"].shape == (30, 88, 88) and out["video"].dtype == np.float32
    np.testing.assert_array_equal(out["text"], [2, 3, 5, 4, 2])
    assert out["text"].dtype == np.int64


def test_one_seed_gives_identical_outputs(babble):
    pre = AVPreprocessor(train=True, babble_path=babble)
    data = make_data()
    outs = []
    for seed in (3, 3, 4):
        np.random.seed(seed)
        outs.append([pre("utt1", dict(data)), pre("utt2", dict(data))])
    for key in ("speech", "video"):
        for i in range(2):
            np.testing.assert_array_equal(outs[0][i][key], outs[1][i][key])
        assert not np.array_equal(outs[0][0][key], outs[2][0][key])


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_train_video_is_a_random_crop_and_flip(flip_prob):
    pre = AVPreprocessor(train=True, flip_prob=flip_prob, masks_per_second=0)
    data = make_data(size=92)
    norm = (data["video"].astype(np.float32) / 255.0 - MEAN) / STD
    seen = set()
    for seed in range(6):
        np.random.seed(seed)
        out = pre("utt1", dict(data))["video"]
        if flip_prob == 1.0:
            out = out[:, :, ::-1]
        matches = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if np.allclose(out, norm[:, top : top + 88, left : left + 88], atol=1e-6)
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1  # the crop position is random


def test_train_time_masking_fills_mean_frame_and_zero_audio():
    pre = AVPreprocessor(train=True, flip_prob=0.0, masks_per_second=5)
    data = make_data(seconds=2.0)
    np.random.seed(0)
    out = pre("utt1", dict(data))
    video = out["video"]
    # Masked frames all equal one frame: the mean of the unmasked utterance.
    frame_std = video.reshape(video.shape[0], -1).std(axis=1)
    masked = frame_std < 0.3  # a real random frame has std ≈ 4.5
    assert 0 < masked.sum() <= 10 * 10
    assert np.allclose(video[masked], video[masked][0], atol=1e-6)
    zeros = out["speech"] == 0.0
    assert 0 < zeros.sum() <= 10 * int(0.4 * 16000)


def test_train_babble_changes_speech_with_some_snrs(babble):
    pre = AVPreprocessor(
        train=True, babble_path=babble, masks_per_second=0, noise_snrs=[5]
    )
    clean = AVPreprocessor(train=False)
    data = make_data()
    np.random.seed(0)
    noisy = pre("utt1", dict(data))["speech"]
    ref = clean("utt1", dict(data))["speech"]
    # At 5 dB SNR the correlation with clean speech is 1 / sqrt(1 + 10**-0.5).
    assert np.corrcoef(noisy, ref)[0, 1] == pytest.approx(0.87, abs=0.03)
    pre_clean = AVPreprocessor(
        train=True, babble_path=babble, masks_per_second=0, noise_snrs=[None]
    )
    np.testing.assert_allclose(pre_clean("utt1", dict(data))["speech"], ref, atol=1e-5)


def test_espnet_noise_scp_still_works(tmp_path, babble):
    scp = tmp_path / "noise.scp"
    scp.write_text(f"n1 {babble}\n")
    pre = AVPreprocessor(train=True, noise_scp=str(scp), masks_per_second=0)
    data = make_data()
    np.random.seed(0)
    out = pre("utt1", dict(data))["speech"]
    ref = AVPreprocessor(train=False)("utt1", dict(data))["speech"]
    assert out.shape == (19200,) and out.dtype == np.float32
    assert not np.allclose(out, ref, atol=1e-3)


@pytest.mark.parametrize(
    "present", [("speech",), ("video",), ("text",), ("speech", "video")]
)
def test_missing_modalities_are_skipped(present):
    pre = AVPreprocessor(train=True, token_type="char", token_list=TOKENS)
    data = {k: v for k, v in make_data().items() if k in present}
    np.random.seed(0)
    out = pre("utt1", data)
    assert set(out) == set(present)
    if "speech" in out:
        assert out["speech"].shape == (19200,)
    if "video" in out:
        assert out["video"].shape == (30, 88, 88)


# ------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "kwargs, key",
    [
        (dict(crop_size=0), "crop_size"),
        (dict(flip_prob=1.5), "flip_prob"),
        (dict(video_std=0.0), "video_std"),
        (dict(masks_per_second=-1), "masks_per_second"),
        (dict(max_mask_sec=-0.1), "max_mask_sec"),
        (dict(noise_snrs=[]), "noise_snrs"),
        (dict(noise_snrs=[float("nan")]), "noise_snrs"),
        (dict(eval_snr=5), "eval_snr"),
        (dict(babble_path="/nonexistent/babble.wav"), "babble_path"),
        (dict(sample_rate=0), "sample_rate"),
    ],
)
def test_bad_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        AVPreprocessor(train=True, **kwargs)


def test_babble_with_wrong_sample_rate(tmp_path):
    path = tmp_path / "b8k.wav"
    soundfile.write(path, np.ones(800) * 0.1, 8000)
    with pytest.raises(ValueError, match="babble_path.*8000"):
        AVPreprocessor(train=True, babble_path=str(path))
    # Not needed (eval, clean): not read.
    assert AVPreprocessor(train=False, babble_path=str(path)).babble is None


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("video", np.zeros((4, 80, 96), np.uint8), "smaller than crop_size=88"),
        ("video", np.zeros((4, 96), np.uint8), r"\(T, H, W\)"),
        ("speech", np.zeros((100, 2), np.float32), "force_single_channel"),
    ],
)
def test_bad_input_names_the_utterance(name, value, expected):
    pre = AVPreprocessor(train=False)
    with pytest.raises(ValueError, match=expected) as info:
        pre("spk_utt9", {name: value})
    assert "spk_utt9" in str(info.value)


def test_built_by_asr_task_build_preprocess_fn(monkeypatch, tmp_path, babble):
    from espnet2.tasks import asr

    monkeypatch.setitem(asr.preprocessor_choices.classes, "av", AVPreprocessor)
    token_list = tmp_path / "tokens.txt"
    token_list.write_text("\n".join(TOKENS) + "\n")
    args = asr.ASRTask.get_parser().parse_args(
        ["--token_type", "char", "--token_list", str(token_list)]
    )
    args.token_list = TOKENS
    args.preprocessor = "av"
    args.preprocessor_conf = dict(babble_path=babble, crop_size=64, eval_snr=10)
    for train in (True, False):
        pre = asr.ASRTask.build_preprocess_fn(args, train=train)
        assert isinstance(pre, AVPreprocessor) and pre.train is train
        np.random.seed(0)
        out = pre("utt1", make_data())
        assert out["video"].shape == (30, 64, 64)
        np.testing.assert_array_equal(out["text"], [2, 3, 5, 4, 2])
    args.preprocessor_conf = dict(crop_sizes=64)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['crop_sizes'\]"):
        asr.ASRTask.build_preprocess_fn(args, train=True)
    args.preprocessor_conf = dict(fs=8000)
    with pytest.raises(ValueError, match="fs=8000.*sample_rate"):
        asr.ASRTask.build_preprocess_fn(args, train=True)


def test_composes_common_preprocessor_options():
    # Keys of CommonPreprocessor reach it; the sampling rate is its fs.
    pre = AVPreprocessor(
        train=False, sample_rate=8000, speech_name="audio", text_name="words",
        token_type="char", token_list=TOKENS, speech_volume_normalize=0.5,
    )
    assert pre.common.fs == 8000 and pre.common.speech_volume_normalize == 0.5
    data = make_data()
    out = pre("utt1", {"audio": data["speech"], "words": "ab ca"})
    np.testing.assert_array_equal(out["words"], [2, 3, 5, 4, 2])
    # z-normalised after CommonPreprocessor's volume normalisation: same result
    speech = data["speech"].astype(np.float64)
    expected = (speech - speech.mean()) / speech.std()
    np.testing.assert_allclose(out["audio"], expected, atol=1e-5)
