"""Synthetic GRID-like audio-visual corpus (the embedded demo corpus).

Issue 5, item 3 and DESIGN §5 ("a tiny synthetic audio-visual corpus is the
embedded default"). Sentences follow the GRID grammar (Cooke et al., 2006)::

    command colour preposition letter digit adverb
    bin     blue   at          A..Z\\W digit adverb  ("bin blue at F two now")

Speech is synthesised by espeak-ng (:mod:`espnet_msrs.synth.tts`), one voice
(language variant + voice variant + rate/pitch) per speaker; the face video is
rendered from the synthesiser's phoneme timeline (:mod:`espnet_msrs.synth.face`)
with per-speaker appearance and small head motion. Everything is a pure
function of ``(seed, speaker index, utterance index)``.

Layout written under ``out_dir``::

    <spk>/<code>.wav              22.05 kHz mono int16 (as synthesised)
    <spk>/<code>.mp4              25 fps greyscale face video (libx264 yuv420p)
    <spk>/<code>.txt              transcript, upper-case words, one line
    <spk>/<code>.landmarks.npy    (T, 68, 2) float32 iBUG landmarks (x, y)
    manifest.tsv                  one row per utterance (see MANIFEST_COLUMNS)
    config.json                   the generation settings

``<spk>`` is ``s01``, ``s02``, …; ``<code>`` is the GRID code of the sentence
(``bbaf2n`` = bin blue at F two now); the utterance id is ``<spk>_<code>``.
The video has ``T = ceil(duration · fps)`` frames: frame ``k`` shows the
mouth at time ``(k + 0.5) / fps`` and the last frame covers the end of the
audio (``0 <= T / fps - duration < 1 / fps``).
"""

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from espnet_msrs.synth.face import (
    FaceAppearance,
    FaceRenderer,
    head_motion,
    mouth_trajectory,
)
from espnet_msrs.synth.tts import Voice, require_espeak, synthesize
from espnet_msrs.utils import atomic
from espnet_msrs.utils.parallel import parallel_map

logger = logging.getLogger(__name__)

COMMANDS = ("bin", "lay", "place", "set")
COLOURS = ("blue", "green", "red", "white")
PREPOSITIONS = ("at", "by", "in", "with")
LETTERS = tuple(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c != "W")
DIGITS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
ADVERBS = ("again", "now", "please", "soon")
SLOTS = (COMMANDS, COLOURS, PREPOSITIONS, LETTERS, DIGITS, ADVERBS)

#: How a letter is written for the synthesiser when the bare letter is not
#: read as its name ("A" would be read as the article).
LETTER_SPELLING = {"A": "eigh"}

#: Voices assigned to speakers in turn (language variant + voice variant).
SPEAKER_VOICES = (
    "en-us+m3",
    "en-gb-x-rp+f2",
    "en-us+f4",
    "en+m7",
    "en-us+m1",
    "en-gb-scotland+f1",
    "en-029+m5",
    "en-us-nyc+f3",
    "en+m2",
    "en-gb-x-rp+f5",
    "en-us+m6",
    "en+f1",
    "en-gb-x-gbclan+m4",
    "en-gb-x-gbcwmd+f4",
)

MANIFEST_COLUMNS = (
    "utt_id",
    "speaker",
    "wav",
    "video",
    "text_file",
    "landmarks",
    "duration",
    "num_frames",
    "sample_rate",
    "fps",
    "voice",
    "text",
)
#: Settings that change the content of every file; a directory generated
#: with other values is refused instead of being mixed.
_CONTENT_KEYS = (
    "seed",
    "frame_size",
    "fps",
    "noise_std",
    "head_motion",
    "lead_silence",
    "trail_silence",
    "crf",
    "version",
)
_VERSION = 1


@dataclass(frozen=True)
class Sentence:
    """One GRID sentence: six lower-case words (the letter is upper-case)."""

    words: Tuple[str, ...]

    @property
    def code(self) -> str:
        """GRID-style code: initials of each word, digit as a numeral."""
        cmd, colour, prep, letter, digit, adverb = self.words
        number = DIGITS.index(digit)
        return f"{cmd[0]}{colour[0]}{prep[0]}{letter.lower()}{number}{adverb[0]}"

    @property
    def text(self) -> str:
        """Transcript, upper-case words (``BIN BLUE AT F TWO NOW``)."""
        return " ".join(w.upper() for w in self.words)

    @property
    def tts_text(self) -> str:
        """What the synthesiser reads (letters spelled where needed)."""
        return " ".join(LETTER_SPELLING.get(w, w) for w in self.words)


def sample_sentences(rng: np.random.Generator, num: int) -> List[Sentence]:
    """Draw ``num`` distinct sentences uniformly from the GRID grammar.

    Sampling is sequential, so the first ``k`` sentences do not depend on
    ``num`` (a corpus can be grown without changing existing utterances).
    """
    total = math.prod(len(s) for s in SLOTS)
    if num > total:
        raise ValueError(f"utts_per_speaker={num} exceeds the {total} GRID sentences")
    seen, out = set(), []
    while len(out) < num:
        words = tuple(slot[int(rng.integers(len(slot)))] for slot in SLOTS)
        if words not in seen:
            seen.add(words)
            out.append(Sentence(words))
    return out


@dataclass(frozen=True)
class Speaker:
    """A synthetic speaker: id, voice and face."""

    spk_id: str
    voice: Voice
    appearance: FaceAppearance


def make_speakers(num_speakers: int, seed: int) -> List[Speaker]:
    """Speakers ``s01..`` with voices from :data:`SPEAKER_VOICES` in turn.

    Rate, pitch, pitch range and the face are drawn from a generator seeded
    by ``(seed, speaker index)``, so speaker ``i`` is the same whatever
    ``num_speakers`` is.
    """
    if num_speakers < 1:
        raise ValueError(f"num_speakers={num_speakers} must be >= 1")
    width = max(2, len(str(num_speakers)))
    speakers = []
    for i in range(num_speakers):
        rng = np.random.default_rng([seed, i, 2])
        voice = Voice(
            name=SPEAKER_VOICES[i % len(SPEAKER_VOICES)],
            rate=int(rng.integers(150, 191)),
            pitch=int(rng.integers(35, 66)),
            pitch_range=int(rng.integers(35, 76)),
            word_gap=int(rng.integers(0, 2)),
        )
        speakers.append(
            Speaker(f"s{i + 1:0{width}d}", voice, FaceAppearance.sample(rng))
        )
    return speakers


@dataclass
class Utterance:
    """A rendered utterance (everything that goes to disk).

    Attributes:
        audio: (S,) int16 at ``sample_rate``.
        frames: (T, H, W) uint8 face video.
        landmarks: (T, 68, 2) float32.
        phonemes / words: timelines in seconds (after the leading silence).
    """

    audio: np.ndarray
    sample_rate: int
    frames: np.ndarray
    landmarks: np.ndarray
    phonemes: List[Tuple[str, float, float]]
    words: List[Tuple[str, float, float]]
    fps: float

    @property
    def duration(self) -> float:
        """Audio duration in seconds."""
        return len(self.audio) / float(self.sample_rate)


@dataclass
class GenerationConfig:
    """Settings of :func:`generate_corpus` (stored in ``config.json``).

    Args:
        num_speakers: number of speakers.
        utts_per_speaker: utterances per speaker.
        seed: master seed.
        frame_size: face video frames are square, this many pixels (even).
        fps: video frame rate.
        noise_std: Gaussian pixel noise (grey levels) added to each frame.
        head_motion: small smooth head motion on/off.
        lead_silence: range (s) of silence added before the speech.
        trail_silence: range (s) of silence added after the speech.
        crf: libx264 constant rate factor of the face videos.
    """

    num_speakers: int = 4
    utts_per_speaker: int = 50
    seed: int = 0
    frame_size: int = 160
    fps: float = 25.0
    noise_std: float = 1.5
    head_motion: bool = True
    lead_silence: Tuple[float, float] = (0.15, 0.35)
    trail_silence: Tuple[float, float] = (0.10, 0.30)
    crf: int = 18
    version: int = field(default=_VERSION)

    def validate(self) -> None:
        """Raise ValueError naming the bad setting."""
        if self.utts_per_speaker < 1:
            raise ValueError(f"utts_per_speaker={self.utts_per_speaker} must be >= 1")
        if self.num_speakers < 1:
            raise ValueError(f"num_speakers={self.num_speakers} must be >= 1")
        if self.frame_size < 64 or self.frame_size % 2:
            raise ValueError(f"frame_size={self.frame_size} must be even and >= 64")
        if self.fps <= 0:
            raise ValueError(f"fps={self.fps} must be > 0")
        for key in ("lead_silence", "trail_silence"):
            lo, hi = getattr(self, key)
            if not 0 <= lo <= hi:
                raise ValueError(f"{key}={(lo, hi)} must satisfy 0 <= low <= high")


def render_utterance(
    sentence: Sentence,
    speaker: Speaker,
    rng: np.random.Generator,
    config: Optional[GenerationConfig] = None,
) -> Utterance:
    """Synthesise and render one utterance (no file I/O).

    Args:
        sentence: what is said.
        speaker: who says it.
        rng: generator for the silences, head motion and pixel noise.
        config: generation settings (default :class:`GenerationConfig`).

    Returns:
        The rendered :class:`Utterance`.
    """
    config = config or GenerationConfig()
    syn = synthesize(sentence.tts_text, speaker.voice)
    if len(syn.words) != len(sentence.words) or any(e <= s for _, s, e in syn.words):
        raise RuntimeError(
            f"espeak-ng word timing for {sentence.tts_text!r} "
            f"(voice {speaker.voice.name}) does not match the six words: {syn.words}"
        )
    sr = syn.sample_rate
    lead = int(round(rng.uniform(*config.lead_silence) * sr))
    trail = int(round(rng.uniform(*config.trail_silence) * sr))
    audio = np.concatenate(
        [np.zeros(lead, np.int16), syn.audio, np.zeros(trail, np.int16)]
    )
    shift = lead / sr
    phonemes = [(p, s + shift, e + shift) for p, s, e in syn.phonemes]
    words = [
        (w.upper(), s + shift, e + shift)
        for (_, s, e), w in zip(syn.words, sentence.words)
    ]
    num_frames = int(math.ceil(len(audio) / sr * config.fps - 1e-9))
    mouth = mouth_trajectory(phonemes, num_frames, fps=config.fps)
    pose = head_motion(num_frames, rng, fps=config.fps) if config.head_motion else None
    renderer = FaceRenderer(speaker.appearance, config.frame_size)
    frames, landmarks = renderer.render(
        mouth, pose, noise_std=config.noise_std, rng=rng
    )
    return Utterance(audio, sr, frames, landmarks, phonemes, words, config.fps)


# ------------------------------------------------------------------ file I/O
def _utt_paths(out_dir: Path, spk_id: str, code: str) -> Dict[str, Path]:
    base = out_dir / spk_id
    return {
        "wav": base / f"{code}.wav",
        "video": base / f"{code}.mp4",
        "text_file": base / f"{code}.txt",
        "landmarks": base / f"{code}.landmarks.npy",
    }


def _manifest_row(
    out_dir: Path, job: "_Job", duration: float, num_frames: int, sr: int
) -> Dict:
    paths = _utt_paths(out_dir, job.speaker.spk_id, job.sentence.code)
    row = {k: str(p.relative_to(out_dir)) for k, p in paths.items()}
    row.update(
        utt_id=f"{job.speaker.spk_id}_{job.sentence.code}",
        speaker=job.speaker.spk_id,
        duration=f"{duration:.4f}",
        num_frames=num_frames,
        sample_rate=sr,
        fps=job.config.fps,
        voice=job.speaker.voice.name,
        text=job.sentence.text,
    )
    return row


@dataclass(frozen=True)
class _Job:
    out_dir: str
    speaker: Speaker
    spk_index: int
    utt_index: int
    sentence: Sentence
    config: GenerationConfig


def _run_job(job: _Job) -> Tuple[Dict, bool]:
    """Generate one utterance unless complete; return (manifest row, generated)."""
    import soundfile as sf

    from espnet_msrs.video.io import write_video

    out_dir = Path(job.out_dir)
    paths = _utt_paths(out_dir, job.speaker.spk_id, job.sentence.code)
    if all(p.is_file() for p in paths.values()):
        info = sf.info(str(paths["wav"]))
        num_frames = np.load(paths["landmarks"], mmap_mode="r").shape[0]
        return (
            _manifest_row(
                out_dir, job, info.frames / info.samplerate, num_frames, info.samplerate
            ),
            False,
        )
    paths["wav"].parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([job.config.seed, job.spk_index, job.utt_index, 1])
    utt = render_utterance(job.sentence, job.speaker, rng, job.config)
    with atomic.atomic_path(paths["wav"]) as tmp:
        sf.write(str(tmp), utt.audio, utt.sample_rate, format="WAV", subtype="PCM_16")
    with atomic.atomic_open(paths["landmarks"], "wb") as f:  # np.save(path) appends .npy
        np.save(f, utt.landmarks)
    atomic.write_text(paths["text_file"], job.sentence.text + "\n")
    write_video(paths["video"], utt.frames, fps=job.config.fps, crf=job.config.crf)
    return (
        _manifest_row(out_dir, job, utt.duration, len(utt.frames), utt.sample_rate),
        True,
    )


def _check_config(out_dir: Path, config: GenerationConfig) -> None:
    path = out_dir / "config.json"
    current = json.loads(json.dumps(asdict(config)))
    if path.is_file():
        previous = json.loads(path.read_text())
        for key in _CONTENT_KEYS:
            if previous.get(key) != current.get(key):
                raise ValueError(
                    f"{out_dir} was generated with {key}={previous.get(key)!r}, "
                    f"now {key}={current.get(key)!r}; use another --out directory "
                    f"or remove the old one"
                )
        if previous == current:
            return
    atomic.write_json(path, current)


def generate_corpus(
    out_dir: Union[str, os.PathLike],
    config: Optional[GenerationConfig] = None,
    nj: int = 1,
) -> Path:
    """Generate (or complete) the corpus under ``out_dir``; return the manifest.

    Utterances whose four files all exist are skipped, every file is written
    atomically (temporary name + rename), so an interrupted run is resumed by
    running again. ``manifest.tsv`` is rewritten only when its content changes.

    Args:
        out_dir: corpus directory.
        config: settings (default :class:`GenerationConfig`).
        nj: parallel worker processes.

    Returns:
        Path of ``manifest.tsv``.

    Raises:
        ValueError: bad settings, or ``out_dir`` holds a corpus generated with
            different content settings (seed, frame size, …).
    """
    config = config or GenerationConfig()
    config.validate()
    require_espeak()  # a clear error here rather than in every worker
    if nj < 1:
        raise ValueError(f"nj={nj} must be >= 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, config)
    jobs = []
    for i, spk in enumerate(make_speakers(config.num_speakers, config.seed)):
        sentences = sample_sentences(
            np.random.default_rng([config.seed, i, 0]), config.utts_per_speaker
        )
        jobs += [_Job(str(out), spk, i, j, s, config) for j, s in enumerate(sentences)]
    logger.info(
        "Synthetic GRID corpus: out=%s speakers=%d utts_per_speaker=%d seed=%d nj=%d",
        out,
        config.num_speakers,
        config.utts_per_speaker,
        config.seed,
        nj,
    )
    start = time.monotonic()
    results = parallel_map(_run_job, jobs, nj=nj, what="utterances", log_every=5.0, chunksize=2)
    rows = sorted((row for row, _ in results), key=lambda r: r["utt_id"])
    generated = sum(made for _, made in results)
    manifest = out / "manifest.tsv"
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += ["\t".join(str(r[c]) for c in MANIFEST_COLUMNS) for r in rows]
    content = "\n".join(lines) + "\n"
    if not manifest.is_file() or manifest.read_text() != content:
        atomic.write_text(manifest, content)
    logger.info(
        "Synthetic GRID corpus done: utterances=%d generated=%d skipped=%d "
        "elapsed=%.1fs manifest=%s",
        len(rows),
        generated,
        len(rows) - generated,
        time.monotonic() - start,
        manifest,
    )
    return manifest


def read_manifest(path: Union[str, os.PathLike]) -> List[Dict[str, str]]:
    """Rows of a ``manifest.tsv`` as dicts keyed by :data:`MANIFEST_COLUMNS`."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))
