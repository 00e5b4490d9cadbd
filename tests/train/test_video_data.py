"""Tests of the ESPnet data type "video" (espnet_msrs.train.video_data)."""

import numpy as np
import pytest
import soundfile
from espnet2.train import dataset as espnet_dataset
from espnet2.train import iterable_dataset
from espnet2.train.dataset import ESPnetDataset
from espnet2.train.iterable_dataset import IterableESPnetDataset

from espnet_msrs.train.av_preprocessor import AVPreprocessor
from espnet_msrs.train.video_data import VideoScpReader, register_data_types
from espnet_msrs.video.io import VideoReadError, write_video

TOKENS = ["<blank>", "<unk>", "a", "b", "<space>", "<sos/eos>"]


@pytest.fixture
def corpus(tmp_path):
    """Two utterances: utt1 as mp4, utt2 as npy; with wav.scp and text."""
    rng = np.random.default_rng(0)
    videos = {
        "utt1": rng.integers(0, 256, (10, 96, 96), dtype=np.uint8),
        "utt2": rng.integers(0, 256, (5, 96, 96), dtype=np.uint8),
    }
    write_video(tmp_path / "utt1.mp4", videos["utt1"])
    np.save(tmp_path / "utt2.npy", videos["utt2"])
    (tmp_path / "video.scp").write_text(
        f"utt1 {tmp_path / 'utt1.mp4'}\nutt2 {tmp_path / 'utt2.npy'}\n"
    )
    wav_lines = []
    for uid, frames in videos.items():
        wav = tmp_path / f"{uid}.wav"
        soundfile.write(wav, 0.1 * rng.standard_normal(len(frames) * 640), 16000)
        wav_lines.append(f"{uid} {wav}\n")
    (tmp_path / "wav.scp").write_text("".join(wav_lines))
    (tmp_path / "text").write_text("utt1 ab\nutt2 ba a\n")
    return tmp_path, videos


def test_reader_is_a_lazy_mapping(tmp_path, corpus):
    root, videos = corpus
    scp = root / "lazy.scp"
    scp.write_text(f"utt2 {root / 'utt2.npy'}\nutt3 {root / 'missing.mp4'}\n\n")
    reader = VideoScpReader(scp)  # the missing file is not touched yet
    assert len(reader) == 2 and list(reader) == ["utt2", "utt3"]
    assert "utt3" in reader and "utt9" not in reader
    np.testing.assert_array_equal(reader["utt2"], videos["utt2"])
    assert reader.get_path("utt3") == str(root / "missing.mp4")
    with pytest.raises(VideoReadError) as info:
        reader["utt3"]
    assert "utt3" in str(info.value) and str(root / "missing.mp4") in str(info.value)
    with pytest.raises(KeyError):
        reader["utt9"]


def test_mp4_through_reader_has_exact_frames(corpus):
    root, videos = corpus
    reader = VideoScpReader(root / "video.scp")
    assert reader["utt1"].shape == (10, 96, 96) and reader["utt1"].dtype == np.uint8


@pytest.mark.parametrize(
    "content, expected",
    [
        ("utt1 a.mp4\nutt2\n", r"bad\.scp:2: malformed scp line 'utt2'"),
        ("utt1 a.mp4\n\nutt1 b.mp4\n", r"bad\.scp:3: duplicated utterance id 'utt1'"),
    ],
)
def test_malformed_scp_names_file_and_line(tmp_path, content, expected):
    scp = tmp_path / "bad.scp"
    scp.write_text(content)
    with pytest.raises(ValueError, match=expected):
        VideoScpReader(scp)


def test_register_is_idempotent():
    register_data_types()
    register_data_types()
    entry = espnet_dataset.DATA_TYPES["video"]
    assert entry["func"] is VideoScpReader and entry["kwargs"] == []
    assert "uint8" in entry["help"]
    assert "video" in iterable_dataset.DATA_TYPES


def test_register_refuses_a_different_entry(monkeypatch):
    monkeypatch.setitem(
        espnet_dataset.DATA_TYPES, "video", dict(func=np.load, kwargs=[], help="")
    )
    with pytest.raises(ValueError, match="already has a different 'video' entry"):
        register_data_types()


def test_register_refuses_a_shadowing_pattern(monkeypatch):
    monkeypatch.delitem(espnet_dataset.DATA_TYPES, "video", raising=False)
    monkeypatch.setitem(
        espnet_dataset.DATA_TYPES, "vid.*", dict(func=np.load, kwargs=[], help="")
    )
    with pytest.raises(ValueError, match="'vid.\\*' already matches 'video'"):
        register_data_types()


def _triples(root):
    return [
        (str(root / "video.scp"), "video", "video"),
        (str(root / "wav.scp"), "speech", "sound"),
        (str(root / "text"), "text", "text"),
    ]


def test_espnet_dataset_with_video_and_sound(corpus):
    register_data_types()
    root, videos = corpus
    pre = AVPreprocessor(train=False, token_type="char", token_list=TOKENS)
    ds = ESPnetDataset(_triples(root), preprocess=pre)
    assert ds.names() == ("video", "speech", "text")
    uid, data = ds["utt2"]
    assert uid == "utt2"
    assert data["video"].shape == (5, 88, 88) and data["video"].dtype == np.float32
    expected = (videos["utt2"][:, 4:92, 4:92] / 255.0 - 0.421) / 0.165
    np.testing.assert_allclose(data["video"], expected, atol=1e-5)
    assert data["speech"].shape == (3200,) and data["speech"].dtype == np.float32
    np.testing.assert_array_equal(data["text"], [3, 2, 4, 2])
    uid, data = ds["utt1"]
    assert data["video"].shape == (10, 88, 88)
    assert data["speech"].shape == (6400,)


def test_espnet_dataset_error_names_utterance_and_path(corpus):
    register_data_types()
    root, _ = corpus
    (root / "utt2.npy").unlink()
    ds = ESPnetDataset(_triples(root), preprocess=AVPreprocessor(train=False))
    with pytest.raises(VideoReadError, match="uid=utt2 path=.*utt2.npy"):
        ds["utt2"]


def test_streaming_dataset_preprocesses_video_once(corpus):
    register_data_types()
    root, _ = corpus
    pre = AVPreprocessor(train=False, token_type="char", token_list=TOKENS)
    by_key = ESPnetDataset(_triples(root), preprocess=pre)
    streamed = dict(IterableESPnetDataset(_triples(root), preprocess=pre))
    assert sorted(streamed) == ["utt1", "utt2"]
    for uid, data in streamed.items():
        for name, value in by_key[uid][1].items():
            np.testing.assert_allclose(data[name], value, atol=1e-6)
