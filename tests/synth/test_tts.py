"""Tests of espnet_msrs.synth.tts: espeak-ng audio, phoneme and word timings."""

import numpy as np
import pytest

from espnet_msrs.synth.tts import Voice, synthesize

TEXT = "bin blue at F two now"


@pytest.fixture(scope="module")
def result():
    return synthesize(TEXT, Voice("en-us+m3", rate=170))


def test_audio_is_non_silent_22khz_int16(result):
    assert result.sample_rate == 22050
    assert result.audio.dtype == np.int16 and result.audio.ndim == 1
    assert 0.8 < result.duration < 3.0
    rms = np.sqrt(np.mean(result.audio.astype(np.float64) ** 2))
    assert rms > 500  # clearly speech, not silence
    assert np.abs(result.audio).max() > 5000


def test_phoneme_timeline_is_ordered_and_inside_audio(result):
    phonemes = result.phonemes
    assert len(phonemes) >= 12
    starts = np.array([s for _, s, _ in phonemes])
    ends = np.array([e for _, _, e in phonemes])
    assert np.all(starts >= 0) and np.all(ends <= result.duration + 1e-9)
    assert np.all(ends > starts)
    assert np.all(np.diff(starts) > 0)
    assert np.all(ends[:-1] <= starts[1:] + 1e-9)  # no overlap
    names = [p for p, _, _ in phonemes]
    assert names[:3] == ["b", "I", "n"]  # stress marks are stripped
    assert all(not n.startswith("_") for n in names)  # pauses are omitted


def test_word_timeline_matches_input_words(result):
    words = result.words
    assert [w for w, _, _ in words] == TEXT.split()
    for (_, s0, e0), (_, s1, _) in zip(words[:-1], words[1:]):
        assert 0 <= s0 < e0 <= s1 + 1e-9
    assert words[-1][2] <= result.duration
    # every phoneme falls inside some word
    for _, s, e in result.phonemes:
        assert any(ws - 1e-9 <= s and e <= we + 1e-9 for _, ws, we in words)


def test_synthesis_is_deterministic_whatever_came_before():
    voice = Voice("en-gb-x-rp+f2", rate=160, pitch=60)
    first = synthesize("set red by Q seven please", voice)
    synthesize("lay green with Z nine soon", Voice("en-us+m1"))  # changes lib state
    second = synthesize("set red by Q seven please", voice)
    assert np.array_equal(first.audio, second.audio)
    assert first.phonemes == second.phonemes


def test_rate_and_voice_change_the_audio():
    slow = synthesize(TEXT, Voice("en-us+m3", rate=120))
    fast = synthesize(TEXT, Voice("en-us+m3", rate=220))
    assert slow.duration > 1.3 * fast.duration
    other = synthesize(TEXT, Voice("en-us+f2", rate=120))
    assert not np.array_equal(slow.audio[:20000], other.audio[:20000])


@pytest.mark.parametrize(
    "text, voice, match",
    [
        ("", Voice(), "empty"),
        ("hello", Voice("no-such-voice"), "no-such-voice"),
        ("hello", Voice(rate=10), "rate"),
        ("hello", Voice(pitch=150), "pitch"),
    ],
)
def test_bad_input_raises_value_error(text, voice, match):
    with pytest.raises(ValueError, match=match):
        synthesize(text, voice)
