#!/usr/bin/env python3
"""LRS3 data preparation (stage 1): Kaldi-style ``data/{train,valid,test}``.

Reads the official LRS3 layout (``$LRS3`` in ``db.sh``)::

    $LRS3/{pretrain,trainval,test}/<spk>/<id>.mp4   224×224 face video, 25 fps,
                                                    AAC audio
    $LRS3/{pretrain,trainval,test}/<spk>/<id>.txt   "Text:  <TRANSCRIPT>" first,
                                                    then "Conf:", optionally
                                                    "Ref:", and a word table
                                                    "WORD START END ASDSCORE"
                                                    (times in seconds from the
                                                    clip start)

and writes, for ``train`` (``--train_subsets``, default pretrain + trainval
minus the validation utterances), ``valid`` and ``test``::

    data/<set>/wav.scp       <spk>_<id>[_<kk>] <wav_dir>/<subset>/<spk>/<id>[_<kk>].wav
    data/<set>/video.scp     <uid> <mp4>      (original clip, or its segment)
    data/<set>/landmark.scp  <uid> <landmark file>   (when known)
    data/<set>/text, utt2spk, spk2utt                (speaker = <spk> folder)

* **Audio** is decoded from the mp4 with PyAV, mixed to mono and resampled
  to 16 kHz (``--extract_audio``; off for ``--modality video``).
* **Transcripts**: the ``Text:`` line, upper case, ``{LG}``/``{NS}``-style
  markers removed. Utterances whose text is empty are reported and skipped.
* **Segmentation** of long ``pretrain`` clips (``--pretrain_max_sec``, 0 =
  off): a clip whose last word ends after ``max_sec`` is cut at word
  boundaries into segments that each span at most ``max_sec`` seconds (a
  single longer word is kept whole), greedily: a segment starts at its first
  word's START and ends at its last word's END; its text is its words. Each
  segment gets its own files — video frames ``[floor(start·25),
  ceil(end·25))`` re-encoded as colour H.264 mp4 under ``--seg_dir``, the
  same span of the 16 kHz audio (640 samples per frame) and of the
  landmarks (``.npy``) — so every later stage sees ordinary utterances.
* **Validation split**: ``--valid_list`` (lines ``trainval/<spk>/<id>``,
  ``<spk>/<id>`` or ``<spk>_<id>``, e.g. the 1,200-utterance list of the
  AV-HuBERT LRS3 recipe) or else ``--num_valid`` trainval utterances drawn
  with ``--seed``. ``test`` is the official test set.
* **Landmarks** (``--landmark_dir``): a tree mirroring the corpus,
  ``<landmark_dir>/<subset>/<spk>/<id>.{pkl,npy,npz}`` — the layout of the
  public LRS3 landmark release of the Auto-AVSR lineage
  (``LRS3_landmarks.zip``: one pickle per video holding a list with one
  entry per frame, a (68, 2) array of iBUG 68-point ``(x, y)`` pixel
  coordinates from RetinaFace + FAN, or None when no face was found). The
  formats accepted are those of ``espnet_msrs.video.roi.load_landmarks``.
  Landmarks written by the detector of ``local/data.sh`` are found in
  ``--detected_landmark_dir/<uid>.npy``. Utterances without landmarks are
  listed in ``<report_dir>/landmark_todo.scp`` (``<uid> <mp4>``).

Problems (missing ``.txt``, undecodable audio, empty text, …) are written to
``<report_dir>/skipped.txt`` as ``<key>\\t<reason>`` and logged; the
utterance is left out. Outputs are written atomically and existing ones are
kept, and data files are only rewritten when their content changes, so a
re-run does nothing.
"""

import logging
import math
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from espnet_msrs.data_prep.audio import SAMPLE_RATE, extract_audio, rate_summary, write_wav
from espnet_msrs.data_prep.corpus import (
    CorpusPathError,
    add_av_corpus_arguments,
    check_corpus_dir,
    media_to_prepare,
    read_id_list,
)
from espnet_msrs.data_prep.text import normalize_text
from espnet_msrs.data_prep.video import (
    FPS,
    find_landmark_file,
    read_rgb_video,
    save_landmarks,
    write_rgb_video,
)
from espnet_msrs.utils.data_dir import (
    Utterance,
    iter_lines,
    write_data_dir,
    write_kv,
    write_report,
)
from espnet_msrs.utils.parallel import parallel_map
from espnet_msrs.utils.cli import parse_tool_args, tool_parser

logger = logging.getLogger("prepare_lrs3")

SUBSETS = ("pretrain", "trainval", "test")
WORD_HEADER = "WORD START END ASDSCORE"


@dataclass
class Transcript:
    """Contents of an LRS3 ``.txt`` file."""

    text: str
    words: List[Tuple[str, float, float]] = field(default_factory=list)


def parse_lrs3_txt(path: Path) -> Transcript:
    """Parse an LRS3 transcript file.

    Args:
        path: ``<id>.txt``; the first line is ``Text:  <TRANSCRIPT>``; an
            optional table after a ``WORD START END ASDSCORE`` line holds one
            ``<word> <start> <end> <score>`` line per word.

    Returns:
        The normalised text and the ``(word, start, end)`` list (may be empty).

    Raises:
        ValueError: No ``Text:`` first line, a malformed table line or a
            byte that is not UTF-8 (names the file and line).
    """
    lines = [line for _, line in iter_lines(path)]
    if not lines or not lines[0].startswith("Text:"):
        raise ValueError(f"{path}: the first line must start with 'Text:'")
    text = normalize_text(lines[0][len("Text:") :])
    words: List[Tuple[str, float, float]] = []
    in_table = False
    for lineno, line in enumerate(lines[1:], 2):
        if line.strip() == WORD_HEADER:
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        parts = line.split()
        try:
            if len(parts) != 4:
                raise ValueError
            start, end = float(parts[1]), float(parts[2])
        except ValueError:
            raise ValueError(
                f"{path}:{lineno}: expected '<WORD> <START> <END> <ASDSCORE>', "
                f"got {line!r}"
            ) from None
        words.append((parts[0], start, end))
    return Transcript(text=text, words=words)


def segment_words(
    words: Sequence[Tuple[str, float, float]], max_sec: float
) -> List[Tuple[float, float, str]]:
    """Greedy split of a word timeline into spans of at most ``max_sec``.

    Args:
        words: ``(word, start, end)`` in order.
        max_sec: Longest span (seconds) from a segment's first START to its
            last END; a single word longer than this forms its own segment.

    Returns:
        ``(start, end, text)`` per segment; texts are normalised and may be
        empty when a segment only holds markers such as ``{LG}``.
    """
    if max_sec <= 0:
        raise ValueError(f"max_sec={max_sec} must be > 0")
    segments: List[Tuple[float, float, str]] = []
    current: List[str] = []
    seg_start = seg_end = 0.0
    for word, start, end in words:
        if current and end - seg_start > max_sec:
            segments.append((seg_start, seg_end, normalize_text(" ".join(current))))
            current = []
        if not current:
            seg_start = start
        current.append(word)
        seg_end = max(seg_end, end) if len(current) > 1 else end
    if current:
        segments.append((seg_start, seg_end, normalize_text(" ".join(current))))
    return segments


@dataclass(frozen=True)
class ClipJob:
    """One LRS3 clip to prepare (runs in a worker process)."""

    uid: str
    spk: str
    subset: str
    mp4: str
    text: str
    segments: Optional[Tuple[Tuple[float, float, str], ...]]  # None: whole clip
    landmark: Optional[str]
    wav_dir: Optional[str]
    seg_dir: Optional[str]
    with_video: bool


#: What :func:`prepare_clip` returns: utterances, (key, reason) problems and
#: the sample rate of the clip's audio stream (None when no audio was decoded).
ClipResult = Tuple[List[Utterance], List[Tuple[str, str]], Optional[int]]


def _prepare_whole(job: ClipJob) -> ClipResult:
    wav = None
    rate = None
    if job.wav_dir is not None:
        wav = Path(job.wav_dir) / job.subset / job.spk / f"{Path(job.mp4).stem}.wav"
        if not wav.is_file():
            try:
                audio, rate = extract_audio(job.mp4)
                write_wav(wav, audio)
            except ValueError as e:
                return [], [(job.uid, str(e))], None
    utt = Utterance(
        uid=job.uid,
        spk=job.spk,
        text=job.text,
        wav=str(wav) if wav else None,
        video=job.mp4 if job.with_video else None,
        landmark=job.landmark if job.with_video else None,
    )
    return [utt], [], rate


def _prepare_segments(job: ClipJob) -> ClipResult:
    from espnet_msrs.video.roi import load_landmarks

    stem = Path(job.mp4).stem
    plan = []
    problems: List[Tuple[str, str]] = []
    for k, (start, end, text) in enumerate(job.segments):
        uid = f"{job.uid}_{k:02d}"
        if not text:
            problems.append((uid, f"{job.mp4} segment {k}: empty text"))
            continue
        name = f"{stem}_{k:02d}"
        wav = (
            Path(job.wav_dir) / job.subset / job.spk / f"{name}.wav"
            if job.wav_dir is not None
            else None
        )
        mp4 = Path(job.seg_dir) / job.spk / f"{name}.mp4" if job.with_video else None
        lm = (
            Path(job.seg_dir) / job.spk / f"{name}.npy"
            if job.with_video and job.landmark
            else None
        )
        plan.append((uid, start, end, text, wav, mp4, lm))
    pending = [p for p in plan if any(x and not x.is_file() for x in p[4:])]
    rate = None
    if pending:
        try:
            audio = None
            if job.wav_dir is not None:
                audio, rate = extract_audio(job.mp4)
            frames = fps = None
            if job.with_video:
                frames, fps = read_rgb_video(job.mp4)
            landmarks = load_landmarks(job.landmark) if job.landmark else None
        except ValueError as e:
            return [], problems + [(job.uid, f"segmentation: {e}")], None
        num_frames = len(frames) if frames is not None else None
        for uid, start, end, text, wav, mp4, lm in pending:
            f0 = max(0, int(math.floor(start * FPS)))
            f1 = int(math.ceil(end * FPS))
            if num_frames is not None:
                f1 = min(f1, num_frames)
            if audio is not None:
                f1 = min(f1, -(-len(audio) // (SAMPLE_RATE // FPS)))
            if f1 - f0 < 1:
                reason = f"{job.mp4}: segment [{start}, {end}] s is empty"
                problems.append((uid, reason))
                continue
            if wav is not None and not wav.is_file():
                hop = SAMPLE_RATE // FPS
                write_wav(wav, audio[f0 * hop : f1 * hop])
            if mp4 is not None and not mp4.is_file():
                write_rgb_video(mp4, frames[f0:f1], fps=fps or FPS)
            if lm is not None and not lm.is_file():
                cut = np.full((f1 - f0, 68, 2), np.nan, dtype=np.float32)
                part = landmarks[f0:f1]
                cut[: len(part)] = part
                save_landmarks(lm, cut)
    bad = {uid for uid, _ in problems}
    utts = [
        Utterance(
            uid=uid,
            spk=job.spk,
            text=text,
            wav=str(wav) if wav else None,
            video=str(mp4) if mp4 else None,
            landmark=str(lm) if lm else None,
        )
        for uid, start, end, text, wav, mp4, lm in plan
        if uid not in bad
    ]
    return utts, problems, rate


def prepare_clip(job: ClipJob) -> ClipResult:
    """Audio extraction / segmentation of one clip (see the module docstring).

    Returns:
        The utterances written, ``(key, reason)`` problems, and the sample
        rate of the audio stream when audio was decoded now.
    """
    if job.segments is None:
        return _prepare_whole(job)
    return _prepare_segments(job)


def list_clips(
    root: Path, subset: str
) -> List[Tuple[str, str, Path]]:  # (spk, id, mp4)
    """All ``<subset>/<spk>/<id>.mp4`` of the corpus, sorted."""
    clips = []
    for mp4 in sorted((root / subset).glob("*/*.mp4")):
        clips.append((mp4.parent.name, mp4.stem, mp4))
    return clips


def _set_of(subset: str) -> str:
    """The data directory a subset's problems are reported in (test or train)."""
    return "test" if subset == "test" else "train"


def _valid_keys(entries: Sequence[str]) -> List[str]:
    """Valid-list entries -> utterance ids ``<spk>_<id>``."""
    out = []
    for entry in entries:
        entry = entry.strip().strip("/")
        if entry.endswith(".mp4"):
            entry = entry[:-4]
        parts = entry.split("/")
        if len(parts) >= 2:
            out.append(f"{parts[-2]}_{parts[-1]}")
        else:
            out.append(entry)
    return out


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--lrs3", default=None, help="LRS3 root (db.sh: LRS3)")
    parser.add_argument("--train_subsets", nargs="+", default=["pretrain", "trainval"],
                        choices=["pretrain", "trainval"], help="Subsets of the training set")
    parser.add_argument("--seg_dir", default="data/local/lrs3/segments")
    parser.add_argument("--pretrain_max_sec", type=float, default=24.0,
                        help="Segment pretrain clips longer than this (seconds); 0 = no "
                        "segmentation")
    parser.add_argument("--valid_list", default=None, help="Validation utterances")
    add_av_corpus_arguments(parser, "data/local/lrs3", "LRS3_LANDMARKS", num_valid=1200)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the preparation; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    try:
        root = check_corpus_dir(
            args.lrs3,
            "LRS3",
            expected=sorted(set(args.train_subsets) | {"trainval", "test"}),
            what="the folder holding pretrain/, trainval/ and test/",
        )
    except CorpusPathError as e:
        logger.error("%s", e)
        return 2
    with_video, extract = media_to_prepare(args.modality, args.extract_audio)
    landmark_root = None
    if with_video and args.landmark_dir:
        try:
            landmark_root = check_corpus_dir(
                args.landmark_dir,
                "LRS3_LANDMARKS",
                what="the landmark tree <dir>/<subset>/<spk>/<id>.pkl",
            )
        except CorpusPathError as e:
            logger.error("%s", e)
            return 2
    data_dir = Path(args.data_dir)
    report_dir = Path(args.report_dir)
    detected = Path(args.detected_landmark_dir).resolve()
    wav_dir = str(Path(args.wav_dir).resolve()) if extract else None
    seg_dir = str(Path(args.seg_dir).resolve())

    dropped: Dict[str, List[Tuple[str, str]]] = {"train": [], "test": []}  # per data set
    jobs: List[ClipJob] = []
    subsets = [s for s in SUBSETS if s in args.train_subsets or s != "pretrain"]
    for subset in subsets:
        clips = list_clips(root, subset)
        if not clips:
            logger.error(
                "No <spk>/<id>.mp4 under %s: fix LRS3 in db.sh", root / subset
            )
            return 2
        logger.info("subset=%s clips=%d", subset, len(clips))
        for spk, cid, mp4 in clips:
            uid = f"{spk}_{cid}"
            txt = mp4.with_suffix(".txt")
            if not txt.is_file():
                dropped[_set_of(subset)].append((uid, f"{mp4}: no transcript {txt.name}"))
                continue
            try:
                tr = parse_lrs3_txt(txt)
            except ValueError as e:
                dropped[_set_of(subset)].append((uid, str(e)))
                continue
            segments = None
            if (
                subset == "pretrain"
                and args.pretrain_max_sec > 0
                and tr.words
                and tr.words[-1][2] > args.pretrain_max_sec
            ):
                segs = segment_words(tr.words, args.pretrain_max_sec)
                if len(segs) > 1:
                    segments = tuple(segs)
            if segments is None and not tr.text:
                dropped[_set_of(subset)].append((uid, f"{txt}: empty transcript"))
                continue
            landmark = None
            if with_video:
                found = find_landmark_file(
                    landmark_root, Path(subset) / spk / mp4.name
                )
                landmark = str(found) if found else None
            jobs.append(
                ClipJob(
                    uid=uid,
                    spk=spk,
                    subset=subset,
                    mp4=str(mp4.resolve()),
                    text=tr.text,
                    segments=segments,
                    landmark=landmark,
                    wav_dir=wav_dir,
                    seg_dir=seg_dir,
                    with_video=with_video,
                )
            )
    n_seg = sum(j.segments is not None for j in jobs)
    logger.info(
        "clips=%d segmented=%d (pretrain_max_sec=%g) extract_audio=%s video=%s "
        "landmark_dir=%s nj=%d",
        len(jobs),
        n_seg,
        args.pretrain_max_sec,
        extract,
        with_video,
        landmark_root,
        args.nj,
    )
    results = parallel_map(prepare_clip, jobs, nj=args.nj, what="clips")

    by_subset: Dict[str, List[Utterance]] = {s: [] for s in subsets}
    rates: Counter = Counter()
    resampled: Dict[str, str] = {}
    for job, (utts, probs, rate) in zip(jobs, results):
        dropped[_set_of(job.subset)].extend(probs)
        if rate is not None:
            rates[rate] += 1
            if rate != SAMPLE_RATE:
                resampled[job.uid] = f"{rate} Hz: {job.mp4}"
        for utt in utts:
            if with_video and utt.landmark is None:
                auto = detected / f"{utt.uid}.npy"
                if auto.is_file():
                    utt.landmark = str(auto)
            by_subset[job.subset].append(utt)

    # Validation split from trainval.
    trainval = by_subset.get("trainval", [])
    ids = [u.uid for u in trainval]
    if args.valid_list:
        wanted = set(_valid_keys(read_id_list(args.valid_list)))
        valid_ids = wanted & set(ids)
        if len(valid_ids) < len(wanted):
            logger.warning(
                "valid_list=%s: %d of %d entries are not in trainval",
                args.valid_list,
                len(wanted) - len(valid_ids),
                len(wanted),
            )
    else:
        if args.num_valid >= len(ids) and "trainval" in args.train_subsets:
            logger.error(
                "num_valid=%d but trainval has only %d utterances",
                args.num_valid,
                len(ids),
            )
            return 2
        rng = random.Random(args.seed)
        valid_ids = set(rng.sample(sorted(ids), min(args.num_valid, len(ids))))
    if not valid_ids:
        logger.error("The validation set is empty (valid_list=%s)", args.valid_list)
        return 2
    valid = [u for u in trainval if u.uid in valid_ids]
    train = list(by_subset.get("pretrain", []))  # listed only if a train subset
    if "trainval" in args.train_subsets:
        train += [u for u in trainval if u.uid not in valid_ids]
    sets = {"train": train, "valid": valid, "test": by_subset["test"]}
    for name, utts in sets.items():
        n = write_data_dir(
            data_dir / name, utts, always=("landmark.scp",) if with_video else ()
        )
        logger.info("Wrote %s utterances=%d", data_dir / name, n)

    problems = dropped["train"] + dropped["test"]
    write_report(report_dir / "skipped.txt", problems)
    # Per data directory (the split of trainval into train and valid is made
    # from the clips that could be prepared, so its problems count as train's).
    write_report(data_dir / "test" / "dropped.txt", dropped["test"])
    write_report(data_dir / "train" / "dropped.txt", dropped["train"])
    write_report(report_dir / "resampled.txt", resampled.items())
    if rates:
        logger.info("audio decoded now: %s", rate_summary(rates, SAMPLE_RATE))
    if resampled:
        logger.warning(
            "%d clip(s) have audio at another rate than %d Hz and were resampled "
            "(listed in %s)", len(resampled), SAMPLE_RATE, report_dir / "resampled.txt",
        )
    todo = {
        u.uid: u.video
        for utts in sets.values()
        for u in utts
        if with_video and not u.landmark
    }
    write_kv(report_dir / "landmark_todo.scp", todo)
    if problems:
        logger.warning(
            "%d clip(s)/segment(s) skipped, reasons in %s (e.g. %s: %s)",
            len(problems),
            report_dir / "skipped.txt",
            *sorted(problems)[0],
        )
    if todo:  # stage 2 warns once, with the fix (avsr.sh)
        logger.info(
            "%d utterance(s) have no landmarks (listed in %s): LRS3_LANDMARKS in db.sh "
            "or --detector mediapipe gives them",
            len(todo),
            report_dir / "landmark_todo.scp",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
