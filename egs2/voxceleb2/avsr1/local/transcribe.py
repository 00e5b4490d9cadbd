#!/usr/bin/env python3
"""Automatic VoxCeleb2 transcripts from a pretrained ESPnet ASR model.

The MSRS / LR-SMS papers train on VoxCeleb2 with automatic transcripts (the
Auto-AVSR lineage labels it with a pretrained ASR model). This tool decodes
the 16 kHz audio of the clips listed in ``--clips`` (``<uid>\\t<rel_path>\\t
<wav>`` lines: ``unlabelled.tsv`` of ``prepare_voxceleb2.py``) and writes a
labels CSV in the format ``prepare_voxceleb2.py --labels`` reads::

    dataset,rel_path,length,text
    vox2,dev/mp4/id00012/21Uxsk56VDQ/00001.mp4,193,AND THEN WE WENT

(``length``: 25 fps frames of the audio, ``ceil(samples / 640)``).

The model (``--asr_model``) is a packed zip (stage 13 of this project's
recipes, or ``python -m espnet2.bin.pack asr``) or an ESPnet model-zoo name,
unpacked safely (:meth:`AVSpeech2Text.from_pretrained`, i.e.
:func:`espnet_msrs.utils.safe_load.unpack_packed_model`: no member may escape
the cache directory, ``meta.yaml`` entries outside the archive are refused,
model files are loaded weights-only, so a crafted model runs no code) and run through
``espnet_msrs.bin.avsr_inference.AVSpeech2Text`` — ESPnet's ``Speech2Text``
plus the model's own evaluation preprocessing, so both this project's audio
models (``preprocessor: av``, ``modality: audio``) and plain espnet2 ASR
models work. Models that need video cannot label audio and are refused.

Hypotheses are normalised by the recipes' one text normaliser
(:func:`espnet_msrs.data_prep.text.normalize_text`: upper case, punctuation
removed), exactly as labels files are. Clips whose hypothesis is empty
are written with an empty text: ``prepare_voxceleb2.py`` reports and skips
them. Work is split over ``--nj`` processes, each with its own model copy;
each writes ``<out>.<k>`` shards as it goes, and clips already in a shard
are not decoded again, so an interrupted run resumes. The shards are merged
into ``--out_csv`` at the end.
"""

import csv
import logging
import math
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_msrs.data_prep.audio import SAMPLE_RATE
from espnet_msrs.data_prep.text import normalize_text
from espnet_msrs.data_prep.video import FPS
from espnet_msrs.utils.data_dir import iter_lines, write_if_changed
from espnet_msrs.utils.parallel import parallel_map
from espnet_msrs.utils.cli import add_job_arguments, parse_tool_args, tool_parser

logger = logging.getLogger("transcribe")


def read_clips(path: str) -> List[Tuple[str, str, str]]:
    """(uid, rel_path, wav) rows of a clips TSV.

    Raises:
        ValueError: A row without three fields or with an empty wav path.
    """
    rows = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3 or not parts[2]:
            raise ValueError(
                f"{path}:{lineno}: expected '<uid>\\t<rel_path>\\t<wav>' with a "
                f"wav path (extract the audio first), got {line.strip()!r}"
            )
        rows.append((parts[0], parts[1], parts[2]))
    return rows


def load_model(
    asr_model: str,
    cache_dir: Optional[str] = None,
    device: str = "cpu",
    beam_size: int = 10,
    ctc_weight: float = 0.3,
    maxlenratio: float = 0.0,
):
    """Unpack a packed zip / zoo name safely and build :class:`AVSpeech2Text`.

    ``beam_size``, ``ctc_weight`` and ``maxlenratio`` (0: ESPnet's default,
    up to one token per encoder frame) are ``Speech2Text``'s options.

    Raises:
        ValueError: The model needs video input (it cannot label audio), or
            the archive is unsafe (:class:`espnet_msrs.utils.safe_load.UnsafeFileError`).
    """
    from espnet_msrs.bin.avsr_inference import AVSpeech2Text

    model = AVSpeech2Text.from_pretrained(
        asr_model,
        cachedir=cache_dir,
        device=device,
        beam_size=beam_size,
        ctc_weight=ctc_weight,
        maxlenratio=maxlenratio,
        nbest=1,
    )
    train_args = model.speech2text.asr_train_args
    modality = (getattr(train_args, "frontend_conf", None) or {}).get("modality")
    if modality in ("video", "av"):
        raise ValueError(
            f"--asr_model {asr_model}: the model is a {modality} model "
            f"(frontend_conf.modality={modality}); automatic labels need an "
            f"audio-only ASR model"
        )
    return model


def _read_shard(path: Path) -> Dict[str, List[str]]:
    done: Dict[str, List[str]] = {}
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if len(row) == 5:  # uid + the four label columns
                    done[row[0]] = row[1:]
    return done


def _worker(args) -> int:
    """Decode one shard; returns the number of clips decoded now."""
    rows, shard, opts = args
    import soundfile

    shard = Path(shard)
    done = _read_shard(shard)
    todo = [r for r in rows if r[0] not in done]
    if not todo:
        return 0
    model = load_model(**opts)
    start = last = time.monotonic()
    with open(shard, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for i, (uid, rel, wav) in enumerate(todo, 1):
            audio, rate = soundfile.read(wav, dtype="float32")
            if rate != SAMPLE_RATE:
                raise ValueError(f"{wav}: sample rate {rate}, expected {SAMPLE_RATE}")
            if audio.ndim > 1:
                audio = audio.mean(axis=1)
            nbest = model(speech=audio, uid=uid)
            text = normalize_text(nbest[0][0]) if nbest else ""
            length = math.ceil(len(audio) / (SAMPLE_RATE // FPS))
            writer.writerow([uid, "vox2", rel, str(length), text])
            f.flush()
            now = time.monotonic()
            if now - last > 10.0 or i == len(todo):
                rate_ = i / max(now - start, 1e-9)
                logger.info(
                    "progress shard=%s done=%d/%d rate=%.2f clips/s eta=%.0fs",
                    shard.name,
                    i,
                    len(todo),
                    rate_,
                    (len(todo) - i) / rate_,
                )
                last = now
    return len(todo)


def transcribe(
    clips: Sequence[Tuple[str, str, str]],
    out_csv: Path,
    opts: dict,
    nj: int = 1,
) -> Dict[str, str]:
    """Label ``clips`` into ``out_csv``; returns uid -> text.

    Args:
        clips: (uid, rel_path, wav) rows.
        out_csv: The labels CSV written (with header).
        opts: :func:`load_model` keyword arguments.
        nj: Processes (each loads the model).
    """
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    nj = max(1, min(nj, len(clips)))
    shards = [out_csv.with_name(f"{out_csv.name}.{k}") for k in range(nj)]
    jobs = [(list(clips[k::nj]), str(shards[k]), opts) for k in range(nj)]
    decoded = parallel_map(_worker, jobs, nj=nj, what="shards")
    logger.info("decoded now=%d (the rest was in the shards)", sum(decoded))
    rows: Dict[str, List[str]] = {}
    for shard in shards:
        rows.update(_read_shard(shard))
    wanted = {uid for uid, _, _ in clips}
    lines = ["dataset,rel_path,length,text\n"]
    for uid in sorted(rows):
        if uid in wanted:
            dataset, rel, length, text = rows[uid]
            lines.append(f"{dataset},{rel},{length},{text}\n")
    write_if_changed(out_csv, "".join(lines))
    return {uid: rows[uid][3] for uid in rows if uid in wanted}


def get_parser():
    """Command-line parser."""
    parser = tool_parser(__doc__)
    parser.add_argument("--clips", required=True, help="<uid>\\t<rel_path>\\t<wav> TSV")
    parser.add_argument("--out_csv", required=True, help="Labels CSV written")
    parser.add_argument(
        "--asr_model", required=True, help="Packed model zip or ESPnet model-zoo name"
    )
    parser.add_argument("--model_cache_dir", default=None, help="Unpack here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--beam_size", type=int, default=10)
    parser.add_argument("--ctc_weight", type=float, default=0.3)
    parser.add_argument("--maxlenratio", type=float, default=0.0)
    add_job_arguments(parser)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> int:
    """Run the transcription; returns the exit status."""
    args = parse_tool_args(get_parser(), cmd)
    clips = read_clips(args.clips)
    if not clips:
        logger.info("Nothing to transcribe in %s", args.clips)
        return 0
    opts = dict(
        asr_model=args.asr_model,
        cache_dir=args.model_cache_dir,
        device=args.device,
        beam_size=args.beam_size,
        ctc_weight=args.ctc_weight,
        maxlenratio=args.maxlenratio,
    )
    logger.info(
        "Transcribing clips=%d with asr_model=%s nj=%d -> %s",
        len(clips),
        args.asr_model,
        args.nj,
        args.out_csv,
    )
    texts = transcribe(clips, Path(args.out_csv), opts, nj=args.nj)
    empty = sum(1 for t in texts.values() if not t)
    logger.info("Wrote %s labels=%d empty=%d", args.out_csv, len(texts), empty)
    return 0


if __name__ == "__main__":
    sys.exit(main())
