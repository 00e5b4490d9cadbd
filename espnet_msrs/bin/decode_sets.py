#!/usr/bin/env python3
"""Decode several data sets in one process with ESPnet's ``asr_inference``.

Recipe stage 11 decodes every test set and each of its noisy copies (one
per SNR). Starting ``python -m espnet2.bin.asr_inference`` once per set and
job pays the ESPnet import (~10 s of CPU) each time; this command runs
ESPnet's own :func:`espnet2.bin.asr_inference.inference` (beam search, joint
CTC/attention, the same options and the same output layout) for several
sets in one process, after registering espnet_msrs::

    python -m espnet_msrs.bin.decode_sets \\
        --set "test|dump/raw/test/wav.scp,speech,sound|dump/raw/test/video.scp,video,video" \\
        --set "test_snr-7.5|dump/raw/test_snr-7.5/wav.scp,speech,sound|..." \\
        --key_file_pattern "exp/x/logdir/{set}/keys.1.scp" \\
        --output_pattern "exp/x/logdir/{set}/output.1" \\
        -- --asr_train_config exp/x/train/config.yaml \\
           --asr_model_file exp/x/train/valid.acc.ave.pth --config conf/decode.yaml

Everything after ``--`` is an option of ``espnet2.bin.asr_inference``
(``--config`` included); ``--data_path_and_name_and_type``, ``--key_file``
and ``--output_dir`` are set per ``--set``. ``--allow_variable_data_keys``
is on (the ``video`` data name). Each set's results go to
``<output_pattern>/1best_recog/text`` etc. with ``{set}`` replaced by the
set name. Every set given is decoded: whether an earlier decoding is still
valid is the recipe's call (stage 11's marker covers the model and the
decoding options), never inferred from old outputs.

Robustness (issue 11): the model file is checked with
``torch.load(weights_only=True)`` before ESPnet loads it. Before a set is
decoded, each utterance is loaded and preprocessed as the decoder will
(``--screen true``, the default): one that fails, or whose audio is not at
the model's sampling rate (a 16 kHz model would silently see 8 kHz audio
as half as many frames), is left out and listed with the reason in
``<output_dir>/bad_utts.txt``; its hypothesis is missing, which scoring
counts as deletions. A set whose decoding fails does not stop the others;
the command exits non-zero at the end, naming it. Progress is logged per
set with an ETA.
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from espnet2.utils.types import str2bool

from espnet_msrs.utils import atomic
from espnet_msrs.utils.cli import tool_parser
from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)

DataSpec = List[Tuple[str, str, str]]


def parse_set(spec: str) -> Tuple[str, DataSpec]:
    """``name|path,name,type|...`` -> (name, [(path, name, type), ...]).

    Raises:
        ValueError: A malformed specification.
    """
    parts = spec.split("|")
    if len(parts) < 2 or not parts[0]:
        raise ValueError(f"--set {spec!r}: expected 'name|path,name,type[|...]'")
    triples = []
    for item in parts[1:]:
        fields = item.split(",")
        if len(fields) != 3:
            raise ValueError(f"--set {spec!r}: {item!r} is not 'path,name,type'")
        triples.append((fields[0], fields[1], fields[2]))
    return parts[0], triples


def _read_keys(path: Path) -> List[str]:
    with path.open(encoding="utf-8") as f:
        return [line.split(maxsplit=1)[0] for line in f if line.strip()]


def screen_utterances(
    data: DataSpec,
    keys: Sequence[str],
    train_args: Any,
    sample_rate: Optional[int],
) -> Dict[str, str]:
    """Load and preprocess each utterance as the decoder will.

    Args:
        data: The set's (path, name, type) triples.
        keys: Utterances to check.
        train_args: The model's training arguments (for its evaluation
            preprocessing, as ``asr_inference`` builds it).
        sample_rate: The model's audio rate (Hz); audio at another rate is
            bad. None: not checked.

    Returns:
        Bad utterance -> reason (empty when all are fine).
    """
    from espnet2.tasks.asr import ASRTask
    from espnet2.train.dataset import ESPnetDataset

    preprocess = ASRTask.build_preprocess_fn(train_args, False)
    dataset = ESPnetDataset(data, preprocess=preprocess, allow_multi_rates=True)
    sound_loaders = {
        name: dataset.loader_dict[name] for _, name, kind in data if kind == "sound"
    }
    bad: Dict[str, str] = {}
    for uid in keys:
        try:
            dataset[uid]
        except Exception as e:  # any failure the decoder would hit
            text = str(e).strip()
            bad[uid] = f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
            continue
        for name, loader in sound_loaders.items():
            rate = getattr(loader, "rate", None)
            if sample_rate is not None and rate is not None and int(rate) != sample_rate:
                bad[uid] = (
                    f"audio at {rate} Hz, the model expects {sample_rate} Hz ({name}; "
                    "resample it, e.g. python -m espnet_msrs.bin.resample_audio)"
                )
    return bad


def _train_args(config: Optional[str]) -> Optional[argparse.Namespace]:
    if not config:
        return None
    import yaml

    with open(config, encoding="utf-8") as f:
        return argparse.Namespace(**(yaml.safe_load(f) or {}))


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser(
        "Decode several sets with espnet2.bin.asr_inference in one process; "
        "options after -- go to asr_inference"
    )
    parser.add_argument("--set", dest="sets", action="append", required=True,
                        help="name|path,name,type[|path,name,type...] (repeatable)")
    parser.add_argument("--key_file_pattern", default=None,
                        help="Key file per set ({set} is replaced); default: all keys")
    parser.add_argument("--output_pattern", required=True,
                        help="Output dir per set ({set} is replaced)")
    parser.add_argument("--screen", type=str2bool, default=True,
                        help="Load every utterance first; leave out (and list in "
                        "<output_dir>/bad_utts.txt) those that fail or have "
                        "another audio rate than the model")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if cmd is None else cmd)
    if "--" in argv:
        split = argv.index("--")
        own, espnet_argv = argv[:split], argv[split + 1 :]
    else:
        own, espnet_argv = argv, []
    args = get_parser().parse_args(own)
    sets = [parse_set(s) for s in args.sets]
    if "{set}" not in args.output_pattern:
        raise ValueError(f"--output_pattern {args.output_pattern!r} must contain {{set}}")

    from espnet_msrs.register import register

    register()
    from espnet2.bin.asr_inference import get_parser as espnet_parser
    from espnet2.bin.asr_inference import inference

    from espnet_msrs.bin.avsr_inference import check_model_files, model_sample_rate

    base = espnet_parser().parse_args(
        espnet_argv
        + ["--output_dir", "unused", "--data_path_and_name_and_type", "unused,speech,sound"]
    )
    setup_logging(base.log_level)
    check_model_files(vars(base))
    train_args = _train_args(base.asr_train_config)
    sample_rate = model_sample_rate(train_args) if train_args is not None else None
    start = time.monotonic()
    keys_per_set = []
    for name, data in sets:
        key_file = args.key_file_pattern.replace("{set}", name) if args.key_file_pattern else None
        keys_per_set.append(_read_keys(Path(key_file) if key_file else Path(data[0][0])))
    total_keys = [len(k) for k in keys_per_set]
    done_keys = 0
    failed: List[str] = []
    for i, (name, data) in enumerate(sets):
        out_dir = Path(args.output_pattern.replace("{set}", name))
        out_dir.mkdir(parents=True, exist_ok=True)
        keys = keys_per_set[i]
        bad: Dict[str, str] = {}
        if args.screen and train_args is not None:
            bad = screen_utterances(data, keys, train_args, sample_rate)
        atomic.write_text(out_dir / "bad_utts.txt",
                          "".join(f"{u}\t{why}\n" for u, why in bad.items()))
        for uid, why in bad.items():
            logger.error(f"decode set={name} utterance={uid}: left out: {why}")
        good = [k for k in keys if k not in bad]
        key_file = out_dir / "keys.scp"
        atomic.write_text(key_file, "".join(f"{k}\n" for k in good))
        logger.info(
            f"decode set={name} utterances={len(good)}"
            + (f" (left out {len(bad)}: {out_dir / 'bad_utts.txt'})" if bad else "")
            + f" -> {out_dir}"
        )
        if good:
            kwargs = dict(vars(base))
            kwargs.pop("config", None)
            kwargs.update(
                output_dir=str(out_dir),
                data_path_and_name_and_type=data,
                key_file=str(key_file),
                allow_variable_data_keys=True,
            )
            try:
                inference(**kwargs)
            except Exception as e:  # report, go on with the other sets
                logger.exception(f"decode set={name}: failed: {type(e).__name__}: {e}")
                failed.append(name)
        else:  # nothing to decode: an empty result, as ESPnet would write it
            (out_dir / "1best_recog").mkdir(exist_ok=True)
            atomic.write_text(out_dir / "1best_recog" / "text", "")
        done_keys += total_keys[i]
        elapsed = time.monotonic() - start
        remaining = sum(total_keys[i + 1 :])
        rate = done_keys / max(elapsed, 1e-9)
        eta = remaining / rate if rate > 0 else 0.0
        logger.info(
            f"progress sets={i + 1}/{len(sets)} utterances={done_keys} "
            f"rate={rate:.2f} utt/s elapsed={elapsed:.0f}s eta={eta:.0f}s"
        )
    if failed:
        sys.exit(f"decode_sets: decoding failed for set(s) {', '.join(failed)} (see the log)")


if __name__ == "__main__":
    main()
