#!/usr/bin/env python3
"""VoxCeleb2 data preparation (stage 1): Kaldi-style ``data/{train,valid}``.

Reads the VoxCeleb2 layout (``$VOXCELEB2`` in ``db.sh``)::

    $VOXCELEB2/dev/mp4/<id>/<video>/<n>.mp4     224×224 face video, 25 fps
    $VOXCELEB2/dev/aac/<id>/<video>/<n>.m4a     (used only if the mp4 has no
                                                 audio stream)

VoxCeleb2 has no transcripts and is multilingual, so:

* **English selection** (``--id_list``): one clip per line as
  ``<id>/<video>/<n>`` (the form of AV-HuBERT's ``vox-en.id``; a leading
  ``dev/mp4/`` and a trailing ``.mp4`` are accepted), a whole video as
  ``<id>/<video>`` or a whole speaker as ``<id>``. Without a list every clip
  of ``--subsets`` is used. Entries that match nothing are reported.
* **Transcripts** come from labels files (``--labels``, several allowed; the
  first that names a clip wins): CSV rows ``dataset,rel_path,length,text``
  (an optional header row starting with ``dataset``), where ``rel_path``
  names the clip relative to the VoxCeleb2 root
  (``dev/mp4/id00012/21Uxsk56VDQ/00001.mp4``; only the last three path
  components ``<id>/<video>/<n>`` are used to match), ``length`` is the
  number of 25 fps video frames (informational) and ``text`` the transcript
  (normalised to upper case, ``{..}`` markers removed). Automatic labels
  written by ``local/transcribe.py`` use the same format, so they can be
  kept, inspected and shared. Clips without a label are listed in
  ``<report_dir>/unlabelled.tsv`` (``<uid>\\t<rel_path>\\t<wav>``) for
  ``local/transcribe.py`` and left out of the data directories.
* **Validation**: ``--num_valid`` labelled utterances drawn with ``--seed``
  go to ``data/valid`` (for training VoxCeleb2 with LRS3, the LRS3
  validation set is used instead; see README.md).

Utterance ids are ``<id>_<video>_<n>`` with speaker ``<id>``. Audio is
decoded with PyAV to 16 kHz mono wavs under ``--wav_dir`` (``--modality
video`` skips it unless ``--extract_audio true``, which transcription
needs). Landmarks (``--landmark_dir``): a tree mirroring ``dev/mp4`` —
``<landmark_dir>/<id>/<video>/<n>.{pkl,npy,npz}`` or
``<landmark_dir>/dev/mp4/<id>/<video>/<n>.*`` (the VoxCeleb2 landmark release
of the Auto-AVSR preparation: a pickled per-frame list of (68, 2) arrays or
None); detected ones are found in ``--detected_landmark_dir/<uid>.npy``.
Problems are reported in ``<report_dir>/skipped.txt``; re-runs do nothing
new (see ``egs2/lrs3/avsr1/local/prepare_lrs3.py``).
"""

import csv
import logging
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple


from espnet_msrs.data_prep.audio import SAMPLE_RATE, extract_audio, rate_summary, write_wav
from espnet_msrs.data_prep.corpus import (
    CorpusPathError,
    add_av_corpus_arguments,
    check_corpus_dir,
    media_to_prepare,
    read_id_list,
)
from espnet_msrs.data_prep.text import (
    ids_to_text,
    looks_like_token_ids,
    normalize_text,
    read_token_units,
)
from espnet_msrs.data_prep.video import find_landmark_file
from espnet_msrs.utils.data_dir import (
    Utterance,
    iter_lines,
    write_data_dir,
    write_if_changed,
    write_kv,
    write_report,
)
from espnet_msrs.utils.parallel import parallel_map
from espnet_msrs.utils.cli import parse_tool_args, tool_parser

logger = logging.getLogger("prepare_voxceleb2")


def clip_key(rel_path: str) -> str:
    """``.../<id>/<video>/<n>[.mp4]`` -> ``<id>/<video>/<n>``."""
    parts = [p for p in rel_path.strip().replace("\\", "/").split("/") if p]
    if parts and "." in parts[-1]:
        parts[-1] = parts[-1].rsplit(".", 1)[0]
    return "/".join(parts[-3:])


def _label_rows(path: str) -> List[Tuple[int, List[str]]]:
    """``(line number, fields)`` of a labels CSV (header and empty rows skipped).

    Raises:
        ValueError: A byte that is not UTF-8, or a row without four fields
            (naming the file and line).
    """
    rows = []
    reader = csv.reader(line for _, line in iter_lines(path))
    for row in reader:
        lineno = reader.line_num
        if not row or (lineno == 1 and row[0].strip().lower() == "dataset"):
            continue
        if len(row) < 4:
            raise ValueError(
                f"{path}:{lineno}: expected 'dataset,rel_path,length,text', got {row}"
            )
        rows.append((lineno, row))
    return rows


def read_labels(
    paths: Sequence[str], token_units: Optional[str] = None
) -> Dict[str, str]:
    """Clip key -> normalised text from ``dataset,rel_path,length,text`` CSVs.

    A file whose text column holds only token ids (the Auto-AVSR label
    format) is converted with ``token_units`` (its ``<piece> <id>`` unit
    list) or refused.

    Raises:
        ValueError: A malformed row or byte (naming the file and line), or
            token ids without ``token_units`` (naming the file and the fix).
    """
    units = read_token_units(token_units) if token_units else None
    labels: Dict[str, str] = {}
    for path in paths:
        rows = _label_rows(path)
        texts = [",".join(row[3:]) for _, row in rows]  # an unquoted comma in the text
        token_ids = looks_like_token_ids(texts)
        if token_ids and units is None:
            lineno, row = rows[0]
            raise ValueError(
                f"{path}:{lineno}: the text column holds token ids ({','.join(row[3:])!r}), "
                f"the Auto-AVSR label format, not transcripts. Give labels with words, or "
                f"the unit list the ids come from (Auto-AVSR's unigram5000_units.txt) as "
                f"--local_data_opts \"--labels_token_list <file>\" to convert them"
            )
        for (lineno, row), text in zip(rows, texts):
            if token_ids:
                text = ids_to_text(text, units, where=f"{path}:{lineno}")
            labels.setdefault(clip_key(row[1]), normalize_text(text))
        if token_ids:
            logger.info("labels=%s: converted %d token-id rows to words with %s",
                        path, len(rows), token_units)
    return labels


def list_clips(
    root: Path, subsets: Sequence[str], id_list: Optional[str]
) -> Tuple[List[Tuple[str, Path]], List[Tuple[str, str]]]:
    """(key, mp4) of the selected clips, and (entry, reason) for missing ones."""
    clips: Dict[str, Path] = {}
    missing: List[Tuple[str, str]] = []
    if id_list is None:
        for subset in subsets:
            for mp4 in sorted((root / subset / "mp4").glob("*/*/*.mp4")):
                clips.setdefault(clip_key(str(mp4)), mp4)
        return sorted(clips.items()), missing
    for entry in read_id_list(id_list):
        rel = clip_key(entry)
        depth = len(rel.split("/"))
        pattern = {1: "*/*.mp4", 2: "*.mp4", 3: None}[min(depth, 3)]
        found = []
        for subset in subsets:
            base = root / subset / "mp4"
            if pattern is None:
                found += [p for p in [base / f"{rel}.mp4"] if p.is_file()]
            else:
                found += sorted((base / rel).glob(pattern))
        if not found:
            missing.append(
                (entry, f"no clip {rel} under {root}/{{{','.join(subsets)}}}/mp4")
            )
        for mp4 in found:
            clips.setdefault(clip_key(str(mp4)), mp4)
    return sorted(clips.items()), missing


@dataclass(frozen=True)
class VoxJob:
    """One VoxCeleb2 clip (runs in a worker process)."""

    key: str
    subset: str
    mp4: str
    aac: str
    wav: Optional[str]


def extract_job(job: VoxJob) -> Tuple[Optional[str], Optional[int], str]:
    """Write the clip's 16 kHz wav.

    Returns:
        (error message or None, source sample rate when decoded now, where
        the audio came from: ``mp4``, ``aac`` (the mp4 has no audio stream),
        or ``kept`` (the wav exists)).
    """
    if job.wav is None or Path(job.wav).is_file():
        return None, None, "kept"
    source = "mp4"
    try:
        try:
            audio, rate = extract_audio(job.mp4)
        except ValueError as e:
            if "no audio stream" not in str(e) or not Path(job.aac).is_file():
                raise
            audio, rate = extract_audio(job.aac)
            source = "aac"
        write_wav(job.wav, audio)
    except ValueError as e:
        return str(e), None, source
    return None, rate, source


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument(
        "--vox2", default=None, help="VoxCeleb2 root (db.sh: VOXCELEB2)"
    )
    parser.add_argument(
        "--subsets", nargs="+", default=["dev"], choices=["dev", "test"]
    )
    parser.add_argument("--id_list", default=None, help="English clips/speakers")
    parser.add_argument(
        "--labels", nargs="*", default=[], help="dataset,rel_path,length,text CSVs"
    )
    parser.add_argument(
        "--labels_token_list",
        default=None,
        help="<piece> <id> unit list converting token-id labels (Auto-AVSR format)",
    )
    add_av_corpus_arguments(parser, "data/local/vox2", "VOXCELEB2_LANDMARKS", num_valid=1000)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the preparation; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    try:
        root = check_corpus_dir(
            args.vox2,
            "VOXCELEB2",
            expected=[f"{s}/mp4" for s in args.subsets],
            what="the folder holding dev/mp4/<id>/<video>/<n>.mp4",
        )
        landmark_root = None
        if args.modality != "audio" and args.landmark_dir:
            landmark_root = check_corpus_dir(
                args.landmark_dir,
                "VOXCELEB2_LANDMARKS",
                what="a landmark tree <dir>/<id>/<video>/<n>.pkl",
            )
        if args.id_list and not Path(args.id_list).is_file():
            raise CorpusPathError(
                f"VOXCELEB2_EN_IDS={args.id_list} is not a file: fix "
                f"VOXCELEB2_EN_IDS in db.sh (or --id_list)"
            )
        for path in args.labels:
            if not Path(path).is_file():
                raise CorpusPathError(
                    f"labels file {path} does not exist: fix VOXCELEB2_LABELS in "
                    f"db.sh (or --labels)"
                )
        if args.labels_token_list and not Path(args.labels_token_list).is_file():
            raise CorpusPathError(
                f"--labels_token_list {args.labels_token_list}: no such file"
            )
        labels = read_labels(args.labels, args.labels_token_list)
    except ValueError as e:
        logger.error("%s", e)
        return 2
    if args.id_list is None:
        logger.warning(
            "No --id_list: using every clip of %s; VoxCeleb2 is multilingual, "
            "give an English id list (VOXCELEB2_EN_IDS in db.sh)",
            args.subsets,
        )
    with_video, extract = media_to_prepare(args.modality, args.extract_audio)
    clips, problems = list_clips(root, args.subsets, args.id_list)
    if not clips:
        logger.error("No clip selected under %s (id_list=%s)", root, args.id_list)
        return 2
    wav_dir = Path(args.wav_dir).resolve()
    detected = Path(args.detected_landmark_dir).resolve()
    jobs = []
    for key, mp4 in clips:
        subset = mp4.parents[3].name
        aac = root / subset / "aac" / f"{key}.m4a"
        wav = str(wav_dir / f"{key}.wav") if extract else None
        jobs.append(VoxJob(key, subset, str(mp4.resolve()), str(aac), wav))
    logger.info(
        "clips=%d labelled=%d extract_audio=%s video=%s landmark_dir=%s nj=%d",
        len(jobs),
        sum(j.key in labels for j in jobs),
        extract,
        with_video,
        landmark_root,
        args.nj,
    )
    results = parallel_map(extract_job, jobs, nj=args.nj, what="clips")

    utts: List[Utterance] = []
    unlabelled: List[str] = []
    rates: Counter = Counter()
    resampled: Dict[str, str] = {}
    from_aac: Dict[str, str] = {}
    for job, (error, rate, source) in zip(jobs, results):
        spk, video, name = job.key.split("/")
        uid = f"{spk}_{video}_{name}"
        if source == "aac":
            from_aac[uid] = job.aac
        if rate is not None:
            rates[rate] += 1
            if rate != SAMPLE_RATE:
                resampled[uid] = f"{rate} Hz: {job.aac if source == 'aac' else job.mp4}"
        if error is not None:
            problems.append((uid, error))
            continue
        if job.key not in labels:
            rel = f"{job.subset}/mp4/{job.key}.mp4"
            unlabelled.append(f"{uid}\t{rel}\t{job.wav or ''}\n")
            continue
        if not labels[job.key]:
            problems.append((uid, f"{job.key}: empty transcript in the labels"))
            continue
        landmark = None
        if with_video:
            found = None
            for prefix in (Path(), Path(job.subset) / "mp4"):
                found = found or find_landmark_file(
                    landmark_root, prefix / f"{job.key}.mp4"
                )
            if found is None and (detected / f"{uid}.npy").is_file():
                found = detected / f"{uid}.npy"
            landmark = str(found) if found else None
        utts.append(
            Utterance(
                uid=uid,
                spk=spk,
                text=labels[job.key],
                wav=job.wav,
                video=job.mp4 if with_video else None,
                landmark=landmark,
            )
        )

    report_dir = Path(args.report_dir)
    write_if_changed(report_dir / "unlabelled.tsv", "".join(sorted(unlabelled)))
    write_report(report_dir / "skipped.txt", problems)
    write_report(report_dir / "audio_from_aac.txt", from_aac.items())
    write_report(report_dir / "resampled.txt", resampled.items())
    if rates:
        logger.info("audio decoded now: %s", rate_summary(rates, SAMPLE_RATE))
    if from_aac:
        logger.warning(
            "%d clip(s) have no audio stream in the mp4: audio taken from dev/aac "
            "(listed in %s)", len(from_aac), report_dir / "audio_from_aac.txt",
        )
    if resampled:
        logger.warning(
            "%d clip(s) have audio at another rate than %d Hz and were resampled "
            "(listed in %s)", len(resampled), SAMPLE_RATE, report_dir / "resampled.txt",
        )
    if problems:
        logger.warning(
            "%d clip(s) skipped, reasons in %s (e.g. %s: %s)",
            len(problems),
            report_dir / "skipped.txt",
            *sorted(problems)[0],
        )
    if unlabelled:
        logger.warning(
            "%d clip(s) have no transcript (listed in %s): give --labels "
            "(VOXCELEB2_LABELS in db.sh) or --asr_model to local/data.sh",
            len(unlabelled),
            report_dir / "unlabelled.tsv",
        )
    if not utts:
        logger.warning("No labelled clip yet: data directories not written")
        return 0
    ids = sorted(u.uid for u in utts)
    num_valid = min(args.num_valid, max(len(ids) - 1, 0))
    valid_ids = set(random.Random(args.seed).sample(ids, num_valid))
    sets = {
        "train": [u for u in utts if u.uid not in valid_ids],
        "valid": [u for u in utts if u.uid in valid_ids],
    }
    for name, members in sets.items():
        if members:
            n = write_data_dir(
                Path(args.data_dir) / name,
                members,
                always=("landmark.scp",) if with_video else (),
            )
            logger.info("Wrote %s utterances=%d", Path(args.data_dir) / name, n)
    todo = {u.uid: u.video for u in utts if with_video and not u.landmark}
    write_kv(report_dir / "landmark_todo.scp", todo)
    if todo:  # stage 2 warns once, with the fix (avsr.sh)
        logger.info(
            "%d utterance(s) have no landmarks (listed in %s): VOXCELEB2_LANDMARKS in "
            "db.sh or --detector mediapipe gives them",
            len(todo),
            report_dir / "landmark_todo.scp",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
