"""Speech synthesis with phoneme and word timings through espeak-ng's C API.

Part of the synthetic GRID-like audio-visual corpus (issue 5, item 3; DESIGN §5
"a tiny synthetic audio-visual corpus is the embedded default"). The
``espeakng-loader`` wheel ships ``libespeak-ng`` and its data; this module
drives the library with :mod:`ctypes` in ``AUDIO_OUTPUT_SYNCHRONOUS`` mode and
collects, from the synthesis callback, the int16 samples together with the
``espeakEVENT_WORD`` and ``espeakEVENT_PHONEME`` events (and their sample
positions). Those events give the phoneme timeline that drives the viseme
rendering of :mod:`espnet_msrs.synth.face`.

The library keeps global state (voice, parameters, callback, and
synthesis state that no API call resets), so every call goes through one
process-wide lock and, by default, runs in a ``fork()`` of the initialised
process: the output then depends only on (text, voice, seed), whatever was
synthesised before (see :func:`synthesize`). Use processes, not threads, for
parallelism.
"""

import ctypes
import logging
import os
import pickle
import threading
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

# espeak_EVENT_TYPE
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
# espeak_AUDIO_OUTPUT / options / flags / parameters (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7

RATE_RANGE = (80, 450)  # espeakRATE_MINIMUM .. espeakRATE_MAXIMUM (words/min)
# Stress and length marks that prefix eSpeak phoneme mnemonics.
_STRESS_MARKS = "',%="


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice setting; one per synthetic speaker.

    Args:
        name: espeak-ng voice name, optionally with a variant
            (``"en-us"``, ``"en-gb-x-rp+f3"``, ``"en+m7"``).
        rate: speaking rate in words per minute (80..450).
        pitch: base pitch 0..100 (50 = normal).
        pitch_range: pitch range 0..100 (50 = normal, 0 = monotone).
        word_gap: extra pause between words in units of 10 ms.
    """

    name: str = "en-us"
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the field when a value is out of range."""
        if not RATE_RANGE[0] <= self.rate <= RATE_RANGE[1]:
            raise ValueError(
                f"Voice {self.name!r}: rate={self.rate} is outside {RATE_RANGE}"
            )
        for key in ("pitch", "pitch_range"):
            value = getattr(self, key)
            if not 0 <= value <= 100:
                raise ValueError(
                    f"Voice {self.name!r}: {key}={value} is outside [0, 100]"
                )
        if not 0 <= self.word_gap <= 100:
            raise ValueError(
                f"Voice {self.name!r}: word_gap={self.word_gap} is outside [0, 100]"
            )


@dataclass
class Synthesis:
    """Result of :func:`synthesize`.

    Attributes:
        audio: (S,) int16 samples at ``sample_rate``.
        sample_rate: 22050 for espeak-ng's formant voices.
        phonemes: ``[(phoneme, start_s, end_s)]`` in time order, pauses
            omitted; ``phoneme`` is the eSpeak mnemonic without stress marks
            (``"b"``, ``"I"``, ``"u:"``, ``"aU"``, ``"t#"``).
        words: ``[(word, start_s, end_s)]``, one entry per input word (split
            on whitespace), spanning that word's phonemes.
    """

    audio: np.ndarray
    sample_rate: int
    phonemes: List[Tuple[str, float, float]]
    words: List[Tuple[str, float, float]]

    @property
    def duration(self) -> float:
        """Audio duration in seconds."""
        return len(self.audio) / float(self.sample_rate)


def require_espeak():
    """The ``espeakng_loader`` module (libespeak-ng and its data).

    Raises:
        ImportError: It is not installed; the message says how to get it
            (the synthetic corpus is demo-only: ``espnet_msrs[demo]``).
    """
    try:
        import espeakng_loader
    except ImportError as e:
        raise ImportError(
            "the synthetic demo corpus (espnet_msrs.synth) needs espeak-ng through the "
            "'espeakng-loader' package, which is not installed: pip install "
            "'espnet_msrs[demo]' (or 'make env', whose lock has it)"
        ) from e
    return espeakng_loader


class _Engine:
    """Process-wide handle of libespeak-ng (initialised lazily, once per pid)."""

    lock = threading.Lock()
    _lib: Optional[ctypes.CDLL] = None
    _pid: Optional[int] = None
    sample_rate: int = 0
    _callback = None
    _chunks: List[bytes] = []
    _events: List[Tuple[int, int, int, int, object]] = []

    @classmethod
    def ensure(cls) -> ctypes.CDLL:
        """Load and initialise the library in this process (caller holds lock)."""
        if cls._lib is not None and cls._pid == os.getpid():
            return cls._lib
        espeakng_loader = require_espeak()
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            lib.espeak_ng_SetRandSeed.restype = None
        # `path` is the directory that contains espeak-ng-data.
        data_parent = os.path.dirname(espeakng_loader.get_data_path())
        sample_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            data_parent.encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
        )
        if sample_rate <= 0:
            raise RuntimeError(
                f"espeak_Initialize failed (data directory {data_parent!r})"
            )
        cls._callback = _CALLBACK(cls._on_audio)
        lib.espeak_SetSynthCallback(cls._callback)
        cls._lib, cls._pid, cls.sample_rate = lib, os.getpid(), sample_rate
        logger.debug("espeak-ng initialised sample_rate=%d", sample_rate)
        return lib

    @classmethod
    def _on_audio(cls, wav, num_samples, events) -> int:
        if wav and num_samples > 0:
            cls._chunks.append(ctypes.string_at(wav, num_samples * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                payload: object = ev.id.string.decode("utf-8", "replace")
            elif ev.type == _EVENT_WORD:
                payload = ev.id.number
            else:
                payload = None
            cls._events.append(
                (ev.type, ev.text_position, ev.length, ev.sample, payload)
            )
            if ev.type == _EVENT_MSG_TERMINATED:
                break
            i += 1
        return 0


def _clean_phoneme(name: str) -> str:
    return name.lstrip(_STRESS_MARKS)


def synthesize(
    text: str, voice: Optional[Voice] = None, seed: int = 0, isolate: bool = True
) -> Synthesis:
    """Synthesise ``text`` and return audio with phoneme and word timelines.

    libespeak-ng keeps state across calls in static variables that neither
    ``espeak_Terminate`` nor re-initialisation reset (e.g. the pitch-flutter
    phase in ``wavegen.c``), so the same text synthesised twice in one process
    differs by a few samples. With ``isolate=True`` (default on POSIX) each
    call runs in a ``fork()`` of this process taken right after
    ``espeak_Initialize`` and before any synthesis, so every call starts from
    the same library state and the output depends only on (text, voice,
    seed). The fork costs ~10 ms.

    Args:
        text: plain text (UTF-8), words separated by whitespace; no SSML.
        voice: voice setting; default ``Voice()`` (en-us, 165 wpm).
        seed: seed of espeak-ng's internal random generator.
        isolate: synthesise in a forked child (deterministic); ``False``
            synthesises in this process (faster, order-dependent output).

    Returns:
        Synthesis with ``audio`` (S,) int16 at 22050 Hz, ``phonemes`` and
        ``words`` timelines in seconds, all within ``[0, duration]``.

    Raises:
        ValueError: empty text, a bad voice setting or an unknown voice name.
        RuntimeError: the library reported an error or produced no audio.
    """
    voice = voice or Voice()
    voice.validate()
    words_in = text.split()
    if not words_in:
        raise ValueError("synthesize: text is empty")
    data = " ".join(words_in).encode("utf-8")
    with _Engine.lock:
        _Engine.ensure()
        if isolate and hasattr(os, "fork"):
            chunks, events = _run_forked(data, voice, seed)
        else:
            if isolate:
                logger.warning("os.fork is unavailable: synthesis is order-dependent")
            chunks, events = _run(data, voice, seed)
        sample_rate = _Engine.sample_rate
    audio = np.frombuffer(chunks, dtype=np.int16).copy()
    if len(audio) == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {text!r}")
    phonemes, words = _timelines(data.decode("utf-8"), events, len(audio), sample_rate)
    return Synthesis(
        audio=audio, sample_rate=sample_rate, phonemes=phonemes, words=words
    )


def _run(data: bytes, voice: Voice, seed: int):
    """Synthesise in this process (caller holds the lock). Returns raw output."""
    lib = _Engine.ensure()
    if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
        raise ValueError(f"Voice name {voice.name!r} is unknown to espeak-ng")
    for param, value in (
        (_PARAM_RATE, voice.rate),
        (_PARAM_VOLUME, 100),
        (_PARAM_PITCH, voice.pitch),
        (_PARAM_RANGE, voice.pitch_range),
        (_PARAM_WORDGAP, voice.word_gap),
    ):
        lib.espeak_SetParameter(param, int(value), 0)
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed(int(seed))
    _Engine._chunks, _Engine._events = [], []
    try:
        err = lib.espeak_Synth(
            data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with code {err} for {data!r}")
        lib.espeak_Synchronize()
        return b"".join(_Engine._chunks), list(_Engine._events)
    finally:
        _Engine._chunks, _Engine._events = [], []


def _run_forked(data: bytes, voice: Voice, seed: int):
    """Run :func:`_run` in a forked child; return its output or re-raise."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no logging, no locks; always leave through _exit
        status = 0
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps(("ok", _run(data, voice, seed)))
            except BaseException as e:  # noqa: BLE001 - shipped to the parent
                payload = pickle.dumps(("error", (type(e).__name__, str(e))))
            with os.fdopen(write_fd, "wb") as f:
                f.write(payload)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        payload = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not payload:
        raise RuntimeError(
            f"espeak-ng synthesis child exited with status {status} for {data!r}"
        )
    kind, value = pickle.loads(payload)
    if kind == "error":
        name, message = value
        raise (ValueError if name == "ValueError" else RuntimeError)(message)
    return value


def _timelines(text, events, num_samples, sample_rate):
    """Turn raw callback events into phoneme and word timelines (seconds)."""
    duration = num_samples / float(sample_rate)
    # Phoneme events, pauses included (they end the preceding phoneme).
    raw = [
        (_clean_phoneme(p), min(s, num_samples), pos)
        for (t, pos, _, s, p) in events
        if t == _EVENT_PHONEME
    ]
    raw.sort(key=lambda x: x[1])  # stable; events already arrive in order
    phonemes: List[Tuple[str, float, float]] = []
    owners: List[int] = []
    for i, (name, start, pos) in enumerate(raw):
        end = raw[i + 1][1] if i + 1 < len(raw) else num_samples
        if not name or name.startswith("_") or end <= start:
            continue
        phonemes.append((name, start / sample_rate, end / sample_rate))
        owners.append(pos)
    # Word spans in the (1-based) character positions of the input.
    spans = []
    offset = 0
    for w in text.split(" "):
        spans.append((w, offset + 1, offset + 1 + len(w)))
        offset += len(w) + 1
    word_starts = {}
    for t, pos, _, s, _ in events:
        if t == _EVENT_WORD:
            word_starts.setdefault(pos, min(s, num_samples) / sample_rate)
    words: List[Tuple[str, float, float]] = []
    for w, lo, hi in spans:
        mine = [(s, e) for (_, s, e), p in zip(phonemes, owners) if lo <= p < hi]
        if mine:
            words.append((w, min(s for s, _ in mine), max(e for _, e in mine)))
        else:
            start = word_starts.get(lo, words[-1][2] if words else 0.0)
            words.append((w, start, start))
    # Clamp into [0, duration] (event positions are already sample indices).
    words = [(w, max(0.0, s), min(duration, e)) for w, s, e in words]
    return phonemes, words
