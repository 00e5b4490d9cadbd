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
``<output_pattern>/1best_recog/text`` etc. with ``{set}`` replaced by the set
name; a set whose output already holds every key is skipped. Progress is
logged per set with an ETA.
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional, Tuple

from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def parse_set(spec: str) -> Tuple[str, List[Tuple[str, str, str]]]:
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


def _num_keys(path: Path) -> int:
    if not path.is_file():
        return -1
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Decode several sets with espnet2.bin.asr_inference in one process; "
        "options after -- go to asr_inference",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--set", dest="sets", action="append", required=True,
                        help="name|path,name,type[|path,name,type...] (repeatable)")
    parser.add_argument("--key_file_pattern", default=None,
                        help="Key file per set ({set} is replaced); default: all keys")
    parser.add_argument("--output_pattern", required=True,
                        help="Output dir per set ({set} is replaced)")
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

    base = espnet_parser().parse_args(
        espnet_argv
        + ["--output_dir", "unused", "--data_path_and_name_and_type", "unused,speech,sound"]
    )
    setup_logging(base.log_level)
    start = time.monotonic()
    total_keys = []
    for name, data in sets:
        key_file = args.key_file_pattern.replace("{set}", name) if args.key_file_pattern else None
        total_keys.append(_num_keys(Path(key_file) if key_file else Path(data[0][0])))
    done_keys = 0
    for i, (name, data) in enumerate(sets):
        key_file = args.key_file_pattern.replace("{set}", name) if args.key_file_pattern else None
        out_dir = Path(args.output_pattern.replace("{set}", name))
        n_keys = total_keys[i]
        if n_keys > 0 and _num_keys(out_dir / "1best_recog" / "text") == n_keys:
            logger.info(f"decode set={name}: done already ({out_dir})")
        else:
            kwargs = dict(vars(base))
            kwargs.pop("config", None)
            kwargs.update(
                output_dir=str(out_dir),
                data_path_and_name_and_type=data,
                key_file=key_file,
                allow_variable_data_keys=True,
            )
            logger.info(f"decode set={name} utterances={n_keys} -> {out_dir}")
            inference(**kwargs)
        done_keys += max(n_keys, 0)
        elapsed = time.monotonic() - start
        remaining = sum(max(k, 0) for k in total_keys[i + 1 :])
        rate = done_keys / max(elapsed, 1e-9)
        eta = remaining / rate if rate > 0 else 0.0
        logger.info(
            f"progress sets={i + 1}/{len(sets)} utterances={done_keys} "
            f"rate={rate:.2f} utt/s elapsed={elapsed:.0f}s eta={eta:.0f}s"
        )


if __name__ == "__main__":
    main()
