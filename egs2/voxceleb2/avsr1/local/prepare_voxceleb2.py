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

import argparse
import csv
import logging
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import prep_utils as pu  # noqa: E402

logger = logging.getLogger("prepare_voxceleb2")


def clip_key(rel_path: str) -> str:
    """``.../<id>/<video>/<n>[.mp4]`` -> ``<id>/<video>/<n>``."""
    parts = [p for p in rel_path.strip().replace("\\", "/").split("/") if p]
    if parts and "." in parts[-1]:
        parts[-1] = parts[-1].rsplit(".", 1)[0]
    return "/".join(parts[-3:])


def read_labels(paths: Sequence[str]) -> Dict[str, str]:
    """Clip key -> normalised text from ``dataset,rel_path,length,text`` CSVs.

    Raises:
        ValueError: A row without four fields (names the file and line).
    """
    labels: Dict[str, str] = {}
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            for lineno, row in enumerate(csv.reader(f), 1):
                if not row or (lineno == 1 and row[0].strip().lower() == "dataset"):
                    continue
                if len(row) < 4:
                    raise ValueError(
                        f"{path}:{lineno}: expected 'dataset,rel_path,length,text', "
                        f"got {row}"
                    )
                text = ",".join(row[3:])  # an unquoted comma in the text
                labels.setdefault(clip_key(row[1]), pu.normalize_text(text))
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
    for entry in pu.read_id_list(id_list):
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


def extract_job(job: VoxJob) -> Optional[str]:
    """Write the clip's 16 kHz wav; returns an error message or None."""
    if job.wav is None or Path(job.wav).is_file():
        return None
    try:
        try:
            audio = pu.extract_audio(job.mp4)
        except ValueError as e:
            if "no audio stream" not in str(e) or not Path(job.aac).is_file():
                raise
            audio = pu.extract_audio(job.aac)
        pu.write_wav(job.wav, audio)
    except ValueError as e:
        return str(e)
    return None


def get_parser() -> argparse.ArgumentParser:
    """Command-line parser."""
    parser = argparse.ArgumentParser(
        description="VoxCeleb2 -> Kaldi-style data directories",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
    parser.add_argument("--data_dir", default="data")
    parser.add_argument("--modality", default="av", choices=["audio", "video", "av"])
    parser.add_argument("--extract_audio", type=pu.str2bool, default=None)
    parser.add_argument("--wav_dir", default="data/local/vox2/wav")
    parser.add_argument("--num_valid", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--landmark_dir", default=None)
    parser.add_argument("--detected_landmark_dir", default="data/local/vox2/landmarks")
    parser.add_argument("--report_dir", default="data/local/vox2")
    parser.add_argument("--nj", type=int, default=1)
    parser.add_argument("--log_level", default="INFO")
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the preparation; returns the exit status."""
    args = get_parser().parse_args(cmd)
    pu.setup_logging(args.log_level)
    try:
        root = pu.check_corpus_dir(
            args.vox2,
            "VOXCELEB2",
            expected=[f"{s}/mp4" for s in args.subsets],
            what="the folder holding dev/mp4/<id>/<video>/<n>.mp4",
        )
        landmark_root = None
        if args.modality != "audio" and args.landmark_dir:
            landmark_root = pu.check_corpus_dir(
                args.landmark_dir,
                "VOXCELEB2_LANDMARKS",
                what="a landmark tree <dir>/<id>/<video>/<n>.pkl",
            )
        if args.id_list and not Path(args.id_list).is_file():
            raise pu.CorpusPathError(
                f"VOXCELEB2_EN_IDS={args.id_list} is not a file: fix "
                f"VOXCELEB2_EN_IDS in db.sh (or --id_list)"
            )
        for path in args.labels:
            if not Path(path).is_file():
                raise pu.CorpusPathError(
                    f"labels file {path} does not exist: fix VOXCELEB2_LABELS in "
                    f"db.sh (or --labels)"
                )
    except pu.CorpusPathError as e:
        logger.error("%s", e)
        return 2
    if args.id_list is None:
        logger.warning(
            "No --id_list: using every clip of %s; VoxCeleb2 is multilingual, "
            "give an English id list (VOXCELEB2_EN_IDS in db.sh)",
            args.subsets,
        )
    with_video = args.modality != "audio"
    extract = args.extract_audio
    if extract is None:
        extract = args.modality != "video"
    labels = read_labels(args.labels)
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
    errors = pu.parallel_map(extract_job, jobs, nj=args.nj, what="clips")

    utts: List[pu.Utterance] = []
    unlabelled: List[str] = []
    for job, error in zip(jobs, errors):
        spk, video, name = job.key.split("/")
        uid = f"{spk}_{video}_{name}"
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
                found = found or pu.find_landmark_file(
                    landmark_root, prefix / f"{job.key}.mp4"
                )
            if found is None and (detected / f"{uid}.npy").is_file():
                found = detected / f"{uid}.npy"
            landmark = str(found) if found else None
        utts.append(
            pu.Utterance(
                uid=uid,
                spk=spk,
                text=labels[job.key],
                wav=job.wav,
                video=job.mp4 if with_video else None,
                landmark=landmark,
            )
        )

    report_dir = Path(args.report_dir)
    pu.write_if_changed(report_dir / "unlabelled.tsv", "".join(sorted(unlabelled)))
    pu.write_report(report_dir / "skipped.txt", problems)
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
            n = pu.write_data_dir(
                Path(args.data_dir) / name,
                members,
                always=("landmark.scp",) if with_video else (),
            )
            logger.info("Wrote %s utterances=%d", Path(args.data_dir) / name, n)
    todo = {u.uid: u.video for u in utts if with_video and not u.landmark}
    pu.write_kv(report_dir / "landmark_todo.scp", todo)
    if todo:
        logger.warning(
            "%d utterance(s) have no landmarks (listed in %s): give --landmark_dir "
            "(VOXCELEB2_LANDMARKS in db.sh) or --detector mediapipe to "
            "local/data.sh; otherwise stage 2 reports them",
            len(todo),
            report_dir / "landmark_todo.scp",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
