#!/usr/bin/env python3
"""Average the n best epochs of a finished ESPnet training (recipe stage 10).

Example::

    python -m espnet_msrs.bin.average_checkpoints --exp_dir exp/x/train \\
        --criterion valid acc max --nbest 3 --out exp/x/train/valid.acc.ave.pth

The ranking comes from the reporter state saved in ``<exp_dir>/checkpoint.pth``
(the same statistics ESPnet's trainer used), and the averaging is ESPnet's
own :func:`espnet2.main_funcs.average_nbest_models.average_nbest_models`,
which writes ``<phase>.<key>.ave_<n>best.pth`` and the symlink
``<phase>.<key>.ave.pth``; ``--out`` (if another name) becomes a symlink to
the average. Only epochs whose ``<epoch>epoch.pth`` is still on disk (ESPnet
keeps ``keep_nbest_models`` of them) can be averaged: ``--nbest`` is reduced
to that number with a warning. ``--nbest`` defaults to ``keep_nbest_models``
of ``<exp_dir>/config.yaml``. For an MSRS sparse retraining the average keeps
the pruned weights exactly zero (every epoch has them at zero).
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)


def _default_nbest(exp_dir: Path) -> int:
    import yaml

    config = exp_dir / "config.yaml"
    if not config.is_file():
        return 1
    with config.open(encoding="utf-8") as f:
        value = (yaml.safe_load(f) or {}).get("keep_nbest_models", 1)
    return max(value) if isinstance(value, (list, tuple)) else int(value)


def average_checkpoints(
    exp_dir: str,
    criterion: Tuple[str, str, str] = ("valid", "acc", "max"),
    nbest: Optional[int] = None,
    out: Optional[str] = None,
) -> Path:
    """Average the ``nbest`` best epochs of ``exp_dir`` by ``criterion``.

    Args:
        exp_dir: ESPnet training output directory (with ``checkpoint.pth``).
        criterion: (phase, key, "max"|"min"), e.g. ("valid", "acc", "max").
        nbest: Epochs to average (default: ``keep_nbest_models``).
        out: Extra symlink name for the averaged model.

    Returns:
        Path of the averaged model file.

    Raises:
        ValueError: No checkpoint, an unknown criterion, or no epoch file.
    """
    import torch
    from espnet2.main_funcs.average_nbest_models import average_nbest_models
    from espnet2.train.reporter import Reporter

    exp = Path(exp_dir)
    phase, key, mode = criterion
    if mode not in ("max", "min"):
        raise ValueError(f"--criterion mode {mode!r}; allowed: max, min")
    ckpt = exp / "checkpoint.pth"
    if not ckpt.is_file():
        raise ValueError(f"{ckpt} not found: is {exp} a finished ESPnet training?")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    if not reporter.has(phase, key):
        raise ValueError(f"--criterion {phase} {key}: not reported in {ckpt}")
    nbest = _default_nbest(exp) if nbest is None else nbest
    if nbest < 1:
        raise ValueError(f"--nbest={nbest} must be >= 1")
    ranked = reporter.sort_epochs_and_values(phase, key, mode)
    available = 0
    for epoch, _ in ranked[:nbest]:
        if not (exp / f"{epoch}epoch.pth").is_file():
            break
        available += 1
    if available == 0:
        raise ValueError(
            f"the best epoch {ranked[0][0]} by {phase}.{key} has no "
            f"{exp}/{ranked[0][0]}epoch.pth"
        )
    if available < nbest:
        logger.warning(
            f"only the {available} best epoch file(s) are on disk; averaging "
            f"{available} instead of {nbest} (raise keep_nbest_models to keep more)"
        )
        nbest = available
    logger.info(
        f"averaging: exp_dir={exp} criterion={phase}.{key}.{mode} nbest={nbest} "
        f"epochs={[e for e, _ in ranked[:nbest]]} "
        f"values={[round(v, 4) for _, v in ranked[:nbest]]}"
    )
    average_nbest_models(exp, reporter, [(phase, key, mode)], nbest)
    name = f"{phase}.{key}.ave_{nbest}best.pth"
    target = exp / name
    if not (target.is_file() or target.is_symlink()):
        raise ValueError(f"averaging did not write {target}")
    # average_nbest_models links <phase>.<key>.ave.pth to the largest n it made.
    default_link = exp / f"{phase}.{key}.ave.pth"
    for link in {default_link, Path(out) if out else default_link}:
        if link.is_symlink() or link.exists():
            link.unlink()
        link.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(target, link.parent)
        link.symlink_to(rel)
    logger.info(f"averaged model: {target}" + (f" (linked as {out})" if out else ""))
    return target


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Average the n best checkpoints of an ESPnet training",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--exp_dir", required=True, help="ESPnet training output dir")
    parser.add_argument("--criterion", nargs=3, default=["valid", "acc", "max"],
                        metavar=("PHASE", "KEY", "MODE"), help="Ranking criterion")
    parser.add_argument("--nbest", type=int, default=None,
                        help="Epochs to average (default: keep_nbest_models)")
    parser.add_argument("--out", default=None, help="Symlink to the averaged model")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    setup_logging(logging.INFO)
    args = get_parser().parse_args(cmd)
    average_checkpoints(args.exp_dir, tuple(args.criterion), args.nbest, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
