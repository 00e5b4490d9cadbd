"""Helpers shared by the real-corpus data preparation scripts (stage 1).

Used by ``egs2/lrs3/avsr1``, ``egs2/voxceleb2/avsr1`` (symlink) and
``egs2/librispeech/asr1`` (symlink); imports numpy, soundfile, PyAV and
:mod:`espnet_msrs.utils.data_dir` / :mod:`espnet_msrs.video.roi` only (no
espnet2), so it is cheap to import.

* :func:`check_corpus_dir` — the corpus path of ``db.sh`` exists and holds
  the expected sub-directories, else a :class:`CorpusPathError` naming the
  ``db.sh`` variable to set.
* :func:`extract_audio` — the first audio stream of a media file (mp4/AAC,
  m4a, …) decoded with PyAV, mixed to mono and resampled to 16 kHz.
* :func:`read_rgb_video` / :func:`write_rgb_video` — colour frames of an mp4
  and a frame-exact libx264 writer (segments of long utterances).
* :func:`write_wav` — atomic 16-bit PCM wav.
* :func:`parallel_map` — a ``multiprocessing`` map over jobs with progress
  (done/total, rate, ETA) in the log.
* :class:`Utterance` / :func:`write_data_dir` — Kaldi-style data directories
  (``wav.scp``, ``video.scp``, ``landmark.scp``, ``text``, ``utt2spk``,
  ``spk2utt``), rewritten only when their content changes.
* :func:`normalize_text` — upper case, ``{NS}``-style markers removed,
  whitespace collapsed.
"""

import logging
import multiprocessing
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, os.PathLike]
logger = logging.getLogger("prep_utils")

#: Audio sample rate of every wav written by the recipes (DESIGN §3).
SAMPLE_RATE = 16000
#: Video frame rate of LRS3 and VoxCeleb2 (and of the mouth crops).
FPS = 25


def setup_repo_path() -> None:
    """Make ``espnet_msrs`` importable when run from a recipe without install."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "espnet_msrs" / "__init__.py").is_file():
            if str(parent) not in sys.path:
                sys.path.append(str(parent))
            return


setup_repo_path()

from espnet_msrs.utils.data_dir import (  # noqa: E402
    read_kv,
    spk2utt_from_utt2spk,
    str2bool,
    write_if_changed,
    write_kv,
)


class CorpusPathError(ValueError):
    """A corpus path of ``db.sh`` is unset, missing or of the wrong layout."""


def check_corpus_dir(
    path: Optional[str],
    variable: str,
    expected: Sequence[str] = (),
    what: str = "",
) -> Path:
    """Check a corpus root given in ``db.sh``.

    Args:
        path: The value of the ``db.sh`` variable (may be empty/None).
        variable: Its name (``LRS3``, ``VOXCELEB2``, ``LIBRISPEECH``).
        expected: Sub-directories that must exist under ``path``.
        what: Short description of the expected layout for the message.

    Returns:
        The resolved path.

    Raises:
        CorpusPathError: The message says which variable of ``db.sh`` to set.
    """
    hint = f" ({what})" if what else ""
    if not path:
        raise CorpusPathError(
            f"{variable} is not set: set {variable} in db.sh (or the environment) "
            f"to the corpus directory{hint}"
        )
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CorpusPathError(
            f"{variable}={path} is not a directory: fix {variable} in db.sh{hint}"
        )
    missing = [sub for sub in expected if not (root / sub).is_dir()]
    if missing:
        raise CorpusPathError(
            f"{variable}={path} lacks {', '.join(missing)}: fix {variable} in db.sh "
            f"to the corpus directory{hint}"
        )
    return root.resolve()


# ----------------------------------------------------------------------- text
_MARKER = re.compile(r"\{[^}]*\}")


def normalize_text(text: str) -> str:
    """Upper-case, drop ``{LG}``/``{NS}``-style markers, collapse whitespace."""
    return " ".join(_MARKER.sub(" ", text).upper().split())


# ---------------------------------------------------------------------- audio
def _atomic_target(path: Path) -> Tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
    )


def write_wav(path: PathLike, audio: np.ndarray, rate: int = SAMPLE_RATE) -> Path:
    """Write mono float audio in [-1, 1] as 16-bit PCM, atomically."""
    import soundfile

    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        soundfile.write(
            tmp,
            np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0),
            rate,
            subtype="PCM_16",
            format="WAV",
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def extract_audio(path: PathLike, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream of a media file to mono float32 at ``rate``.

    Args:
        path: mp4 / m4a / wav / flac … (anything FFmpeg decodes).
        rate: Output sample rate.

    Returns:
        (N,) float32 in [-1, 1].

    Raises:
        ValueError: No audio stream, undecodable or empty audio (names the file).
    """
    import av

    chunks: List[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except ValueError:
        raise
    except (av.FFmpegError, OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot decode audio ({e})") from e
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError(f"{path}: empty audio stream")
    return np.concatenate(chunks).astype(np.float32)


# ---------------------------------------------------------------------- video
def video_meta(path: PathLike) -> Tuple[int, float]:
    """(number of frames, frame rate) of a video from its container header."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate or stream.guessed_rate
            frames = stream.frames
            if frames <= 0:  # header without a frame count: decode to count
                frames = sum(1 for _ in container.decode(stream))
    except ValueError:
        raise
    except (av.FFmpegError, OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read video ({e})") from e
    return int(frames), float(rate) if rate else float(FPS)


def read_rgb_video(path: PathLike) -> Tuple[np.ndarray, float]:
    """Decode all frames of a video as RGB.

    Returns:
        frames: (T, H, W, 3) uint8; fps: the stream's frame rate.

    Raises:
        ValueError: No video stream, undecodable or empty (names the file).
    """
    import av

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.base_rate or FPS
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
    except ValueError:
        raise
    except (av.FFmpegError, OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot decode video ({e})") from e
    if not frames:
        raise ValueError(f"{path}: no frame could be decoded")
    return np.stack(frames), float(rate)


def write_rgb_video(
    path: PathLike, frames: np.ndarray, fps: float = FPS, crf: int = 18
) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264/yuv420p mp4, atomically.

    Odd heights/widths are cropped by one pixel (yuv420p needs even sizes).
    The written frame count is read back and checked.
    """
    import av

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"write_rgb_video({path}): frames must be uint8 (T, H, W, 3), "
            f"got {frames.dtype} {frames.shape}"
        )
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]
    fd, tmp = _atomic_target(path)
    os.close(fd)
    rate = Fraction(fps).limit_denominator(1001000)
    try:
        with av.open(
            tmp, mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.options = {"crf": str(crf)}
            for i, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), "rgb24")
                frame = frame.reformat(format="yuv420p")
                frame.pts = i
                frame.time_base = 1 / rate
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        written, _ = video_meta(tmp)
        if written != len(frames):
            raise RuntimeError(
                f"write_rgb_video({path}): wrote {written} frames instead of "
                f"{len(frames)}"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ------------------------------------------------------------------ landmarks
#: Suffixes tried, in order, for a landmark file mirroring a video path.
LANDMARK_SUFFIXES = (".pkl", ".npy", ".npz", ".pickle")


def find_landmark_file(landmark_root: Optional[Path], rel: Path) -> Optional[Path]:
    """``<landmark_root>/<rel without suffix>{.pkl,.npy,.npz,.pickle}`` if any."""
    if landmark_root is None:
        return None
    stem = landmark_root / rel.with_suffix("")
    for suffix in LANDMARK_SUFFIXES:
        candidate = stem.parent / (stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def save_landmarks(path: PathLike, landmarks: np.ndarray) -> Path:
    """Write (T, 68, 2) landmarks (NaN = no face) as float32 ``.npy``, atomically."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(landmarks, dtype=np.float32))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ------------------------------------------------------------------- data dir
@dataclass
class Utterance:
    """One line of every file of a Kaldi-style data directory.

    ``wav``/``video``/``landmark`` are absolute paths or None (not written).
    """

    uid: str
    spk: str
    text: str
    wav: Optional[str] = None
    video: Optional[str] = None
    landmark: Optional[str] = None


def write_data_dir(
    out_dir: PathLike, utts: Iterable[Utterance], always: Sequence[str] = ()
) -> int:
    """Write ``wav.scp``, ``video.scp``, ``landmark.scp``, ``text``,
    ``utt2spk``, ``spk2utt`` (each only if some utterance has the field, or
    if it is named in ``always``, e.g. an empty ``landmark.scp`` that makes
    the mouth-ROI stage report every video instead of skipping the crop).

    Files whose content is unchanged are not rewritten; a stale scp of a
    field that no utterance has any more is removed.

    Returns:
        Number of utterances.

    Raises:
        ValueError: Duplicate utterance ids, or an id that does not start
            with its speaker id (Kaldi sort order).
    """
    out_dir = Path(out_dir)
    table: Dict[str, Utterance] = {}
    for utt in utts:
        if utt.uid in table:
            raise ValueError(f"{out_dir}: duplicate utterance id {utt.uid!r}")
        if not utt.uid.startswith(utt.spk):
            raise ValueError(
                f"{out_dir}: utterance id {utt.uid!r} must start with its "
                f"speaker id {utt.spk!r}"
            )
        if any(c.isspace() for c in utt.uid + utt.spk):
            raise ValueError(f"{out_dir}: whitespace in id {utt.uid!r}/{utt.spk!r}")
        table[utt.uid] = utt
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, field in (
        ("wav.scp", "wav"),
        ("video.scp", "video"),
        ("landmark.scp", "landmark"),
    ):
        values = {u: getattr(x, field) for u, x in table.items() if getattr(x, field)}
        if values or name in always:
            write_kv(out_dir / name, values)
        elif (out_dir / name).exists():
            (out_dir / name).unlink()
    write_kv(out_dir / "text", {u: x.text for u, x in table.items()})
    utt2spk = {u: x.spk for u, x in table.items()}
    write_kv(out_dir / "utt2spk", utt2spk)
    write_kv(out_dir / "spk2utt", spk2utt_from_utt2spk(utt2spk))
    return len(table)


def write_report(path: PathLike, problems: Sequence[Tuple[str, str]]) -> None:
    """Write ``<id>\\t<reason>`` lines (sorted); an empty file when none."""
    lines = sorted(f"{key}\t{' '.join(reason.split())}\n" for key, reason in problems)
    write_if_changed(path, "".join(lines))


def read_id_list(path: PathLike) -> List[str]:
    """Non-empty, non-comment lines of a list file (first field of each)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(line.split()[0])
    return out


# ------------------------------------------------------------------- parallel
def parallel_map(
    fn: Callable, jobs: Sequence, nj: int = 1, what: str = "jobs"
) -> List:
    """``[fn(job) for job in jobs]`` over ``nj`` processes, in input order.

    Logs ``progress done=…/… rate=… eta=…`` at most every 10 s.
    """
    if nj < 1:
        raise ValueError(f"--nj={nj} must be >= 1")
    results: List = [None] * len(jobs)
    start = last = time.monotonic()
    if nj == 1 or len(jobs) <= 1:
        pool, iterator = None, ((i, fn(j)) for i, j in enumerate(jobs))
    else:
        ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        pool = ctx.Pool(nj)
        tasks = [(fn, i, j) for i, j in enumerate(jobs)]
        iterator = pool.imap_unordered(_indexed, tasks)
    try:
        for done, (index, result) in enumerate(iterator, 1):
            results[index] = result
            now = time.monotonic()
            if now - last > 10.0 or done == len(jobs):
                rate = done / max(now - start, 1e-9)
                logger.info(
                    "progress %s done=%d/%d rate=%.1f/s eta=%.0fs",
                    what,
                    done,
                    len(jobs),
                    rate,
                    (len(jobs) - done) / rate,
                )
                last = now
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


def _indexed(args):
    fn, index, job = args
    return index, fn(job)


def read_scp(path: PathLike) -> Dict[str, str]:
    """``<key> <value>`` lines of a Kaldi file (see ``data_dir.read_kv``)."""
    return dict(read_kv(path, allow_empty_value=True))


def setup_logging(level: str = "INFO") -> None:
    """ESPnet's log format."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
