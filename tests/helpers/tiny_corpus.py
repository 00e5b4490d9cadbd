"""A tiny generated audio-visual corpus in Kaldi/ESPnet layout, for tests.

Each utterance: a 16 kHz wav (tones + noise), a uint8 video (T, 96, 96) as
.npy at 25 fps with T = ceil(samples / 640), and a short text.  Nothing is
learnable in particular; it exercises the data pipeline, collect-stats,
training, decoding and packing quickly on a CPU.
"""

from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile as sf

WORDS = ["bin", "blue", "at", "a", "one", "now", "lay", "red", "by", "b", "two", "soon"]


def make_tiny_corpus(
    root: Path,
    sets: Dict[str, int] = None,
    seed: int = 0,
    sample_rate: int = 16000,
    min_sec: float = 0.6,
    max_sec: float = 1.2,
    video_size: int = 96,
) -> Dict[str, Path]:
    """Write ``root/data/<set>/{wav.scp,video.scp,text,utt2spk,spk2utt}``.

    Args:
        root: Output directory.
        sets: Set name -> number of utterances (default train 8, valid 4, test 3).
        seed: Random seed (the corpus is deterministic given it).

    Returns:
        Set name -> its data directory; also ``"token_list"`` (a char token
        list file valid for ``token_type: char``).
    """
    sets = sets or {"train": 8, "valid": 4, "test": 3}
    rng = np.random.default_rng(seed)
    root = Path(root)
    out: Dict[str, Path] = {}
    chars = set()
    for name, count in sets.items():
        ddir = root / "data" / name
        media = root / "media" / name
        ddir.mkdir(parents=True, exist_ok=True)
        media.mkdir(parents=True, exist_ok=True)
        wav_lines: List[str] = []
        vid_lines: List[str] = []
        txt_lines: List[str] = []
        u2s: List[str] = []
        for i in range(count):
            spk = f"spk{i % 2}"
            uid = f"{spk}-{name}{i:03d}"
            n = int(rng.uniform(min_sec, max_sec) * sample_rate)
            t = np.arange(n) / sample_rate
            wav = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)
            wav += 0.05 * rng.standard_normal(n)
            sf.write(media / f"{uid}.wav", wav.astype(np.float32), sample_rate,
                     subtype="PCM_16")
            frames = -(-n // 640)
            video = rng.integers(0, 256, (frames, video_size, video_size), np.uint8)
            np.save(media / f"{uid}.npy", video)
            words = " ".join(rng.choice(WORDS, size=rng.integers(2, 4)))
            chars.update(words.replace(" ", ""))
            wav_lines.append(f"{uid} {media / f'{uid}.wav'}")
            vid_lines.append(f"{uid} {media / f'{uid}.npy'}")
            txt_lines.append(f"{uid} {words.upper()}")
            u2s.append(f"{uid} {spk}")
        for fname, lines in (
            ("wav.scp", wav_lines),
            ("video.scp", vid_lines),
            ("text", txt_lines),
            ("utt2spk", u2s),
        ):
            (ddir / fname).write_text("\n".join(sorted(lines)) + "\n")
        spk2utt: Dict[str, List[str]] = {}
        for line in sorted(u2s):
            u, s = line.split()
            spk2utt.setdefault(s, []).append(u)
        (ddir / "spk2utt").write_text(
            "".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items()))
        )
        out[name] = ddir
    token_list = root / "tokens.txt"
    letters = sorted(c.upper() for c in chars)
    token_list.write_text(
        "\n".join(["<blank>", "<unk>", "<space>"] + sorted(set(letters)) + ["<sos/eos>"])
        + "\n"
    )
    out["token_list"] = token_list
    return out
