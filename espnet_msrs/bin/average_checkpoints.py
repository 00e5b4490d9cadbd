#!/usr/bin/env python3
"""Stage 10: the averaged model of a finished ESPnet training, checked and linked.

Example::

    python -m espnet_msrs.bin.average_checkpoints --exp_dir exp/x/train \\
        --criterion valid acc max --nbest 3 --out exp/x/train/valid.acc.ave.pth

ESPnet's trainer already averages: at the end of training it writes
``<phase>.<key>.ave_<n>best.pth`` for every criterion of
``best_model_criterion`` and every ``n`` of ``keep_nbest_models`` (with
:func:`espnet2.main_funcs.average_nbest_models.average_nbest_models`). This
stage does not average again when that file is exact: it checks it with
``torch.load(weights_only=True)`` (complete, no code) and links ``--out`` to
it. Only the first average ESPnet computes in that call is exact: its
``average_nbest_models`` (espnet 202511) keeps the loaded epoch state dicts
in a cache and accumulates the sum *into* the first one, so every later
average of the same call (the other criteria, the other ``n``) starts from
an already averaged state (measured on the micro training of the tests: with
ESPnet's default four criteria, ``valid.acc.ave_2best.pth`` differs from the
mean of its two epochs by up to 2.3e-3 per weight; ``train.loss``, the
first, by 0). So ESPnet's file is used when the criterion is the first one
ESPnet averaged and ``n`` the first ``n > 1`` of ``keep_nbest_models`` (or
``n = 1``, a link to the best epoch), and it was written after the last
``checkpoint.pth``. Otherwise (the default criteria list, another
``--nbest``, a training resumed and stopped before its end, a truncated
file) this stage calls ESPnet's ``average_nbest_models`` for that one
criterion and ``n`` — exact, once — after checking every epoch file the
same way. The paper configs set ``best_model_criterion: [[valid, acc,
max]]`` and one ``keep_nbest_models``, so their stage 10 averages nothing.

The ranking is the reporter state of ``<exp_dir>/checkpoint.pth`` (the
statistics ESPnet's trainer used). Only epochs whose ``<epoch>epoch.pth`` is
still on disk (ESPnet keeps ``keep_nbest_models`` of them) can be averaged:
``--nbest`` is reduced to that number with a warning. ``--nbest`` defaults
to the largest ``keep_nbest_models`` of ``<exp_dir>/config.yaml``. For an
MSRS sparse retraining the average keeps the pruned weights exactly zero
(every epoch has them at zero). With ``--mask <train>/mask.pth`` (the
recipe gives it for SET/RigL/GMP/CHASE, whose masks change during training)
the sparsity the model really has over the masked weights is logged next to
the mask's, with a warning when weights outside the final masks are nonzero:
an average of epochs with different masks holds the union of their supports.
``--last_epoch true`` takes the last epoch's model instead of an average
(the recipe's default for those methods: it holds the final masks).
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from espnet2.utils.types import str2bool

from espnet_msrs.utils.cli import parse_tool_args, tool_parser

logger = logging.getLogger(__name__)


#: ESPnet's default ``--best_model_criterion``.
ESPNET_BEST_MODEL_CRITERION = [
    ["train", "loss", "min"], ["valid", "loss", "min"],
    ["train", "acc", "max"], ["valid", "acc", "max"],
]


def _training_options(exp_dir: Path) -> Tuple[List[int], List[List[str]]]:
    """``keep_nbest_models`` (as a list) and ``best_model_criterion`` of the
    training's ``config.yaml`` (ESPnet's defaults when absent)."""
    import yaml

    config = exp_dir / "config.yaml"
    conf = {}
    if config.is_file():
        with config.open(encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
    keep = conf.get("keep_nbest_models", 10)
    keep = [int(k) for k in keep] if isinstance(keep, (list, tuple)) else [int(keep)]
    criteria = [list(c) for c in conf.get("best_model_criterion") or ESPNET_BEST_MODEL_CRITERION]
    return keep or [1], criteria


def _trainer_average_is_exact(
    reporter, criteria: List[List[str]], keep: List[int], criterion: Tuple[str, str, str],
    n: int,
) -> bool:
    """Did ESPnet's end-of-training ``average_nbest_models`` write an exact
    ``ave_<n>best`` for ``criterion`` (see the module docstring)?"""
    reported = [tuple(c) for c in criteria if reporter.has(c[0], c[1])]
    if not reported or tuple(criterion) not in reported:
        return False
    ranked = reporter.sort_epochs(criterion[0], criterion[1], criterion[2])[: max(keep)]
    written = [i for i in keep if i <= len(ranked)] or [1]
    if n not in written:
        return False
    if n == 1:
        return True
    return reported[0] == tuple(criterion) and n == next(i for i in written if i > 1)


def _link(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` (relative), replacing it atomically."""
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp-link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def _is_current(average: Path, checkpoint: Path, best_epoch: int, n: int) -> bool:
    """Was ``average`` written at the end of the training that wrote
    ``checkpoint``? (n = 1: ESPnet links it to the best epoch.)"""
    if not (average.is_file() or average.is_symlink()):
        return False
    if n == 1:
        return average.is_symlink() and os.readlink(average) == f"{best_epoch}epoch.pth"
    return not average.is_symlink() and average.stat().st_mtime >= checkpoint.stat().st_mtime


def _reporter(exp: Path):
    """ESPnet's reporter state in ``<exp>/checkpoint.pth`` (loaded weights-only)."""
    from espnet2.train.reporter import Reporter

    from espnet_msrs.utils.safe_load import load_torch_file

    ckpt = exp / "checkpoint.pth"
    if not ckpt.is_file():
        raise ValueError(f"{ckpt} not found: is {exp} a finished ESPnet training?")
    state = load_torch_file(ckpt, what="checkpoint", mmap=True)
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    return reporter


def last_epoch_model(exp_dir: str, out: Optional[str] = None) -> Path:
    """The model of the last epoch of ``exp_dir`` (ESPnet keeps it whatever
    ``keep_nbest_models`` says), checked weights-only and linked as ``out``.

    For sparse methods whose masks change during training (SET, RigL, GMP,
    CHASE) this is the model with the final masks at the target sparsity: an
    average of epochs with different masks would hold the union of their
    supports, and the best epoch of a GMP run may predate its last pruning.

    Raises:
        ValueError: No checkpoint, or the last epoch's file missing or unsafe.
    """
    from espnet_msrs.utils.safe_load import check_state_dict_file

    exp = Path(exp_dir)
    epoch = _reporter(exp).get_epoch()
    target = exp / f"{epoch}epoch.pth"
    if not target.is_file():
        raise ValueError(f"the last epoch {epoch} of {exp} has no {target}")
    check_state_dict_file(target, what="epoch model")
    if out:
        _link(Path(out), target)
    logger.info(f"the last epoch's model: {target}" + (f" (linked as {out})" if out else ""))
    return target


def average_checkpoints(
    exp_dir: str,
    criterion: Tuple[str, str, str] = ("valid", "acc", "max"),
    nbest: Optional[int] = None,
    out: Optional[str] = None,
) -> Path:
    """The average of the ``nbest`` best epochs of ``exp_dir`` by ``criterion``.

    Args:
        exp_dir: ESPnet training output directory (with ``checkpoint.pth``).
        criterion: (phase, key, "max"|"min"), e.g. ("valid", "acc", "max").
        nbest: Epochs to average (default: the largest ``keep_nbest_models``).
        out: Extra symlink name for the averaged model.

    Returns:
        Path of the averaged model file (ESPnet's own when current).

    Raises:
        ValueError: No checkpoint, an unknown criterion, no epoch file, or a
            missing, truncated or unsafe file (named).
    """
    from espnet_msrs.utils.safe_load import UnsafeFileError, check_state_dict_file

    exp = Path(exp_dir)
    phase, key, mode = criterion
    if mode not in ("max", "min"):
        raise ValueError(f"--criterion mode {mode!r}; allowed: max, min")
    ckpt = exp / "checkpoint.pth"
    reporter = _reporter(exp)
    if not reporter.has(phase, key):
        raise ValueError(f"--criterion {phase} {key}: not reported in {ckpt}")
    keep, criteria = _training_options(exp)
    nbest = max(keep) if nbest is None else nbest
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
    epochs = [e for e, _ in ranked[:nbest]]
    target = exp / f"{phase}.{key}.ave_{nbest}best.pth"
    current = _trainer_average_is_exact(
        reporter, criteria, keep, (phase, key, mode), nbest
    ) and _is_current(target, ckpt, epochs[0], nbest)
    if current:
        try:
            check_state_dict_file(target, what="averaged model")
        except UnsafeFileError as e:
            if e.kind != "corrupt":
                raise
            logger.warning(f"{e}: averaging again")
            current = False
    if current:
        logger.info(
            f"using the average ESPnet's trainer wrote at the end of training: "
            f"{target} (criterion={phase}.{key}.{mode} nbest={nbest} epochs={epochs})"
        )
    else:
        from espnet2.main_funcs.average_nbest_models import average_nbest_models

        for epoch in epochs:
            check_state_dict_file(exp / f"{epoch}epoch.pth", what="epoch model")
        logger.info(
            f"averaging (no exact, current {target.name} from the training): exp_dir={exp} "
            f"criterion={phase}.{key}.{mode} nbest={nbest} epochs={epochs} "
            f"values={[round(v, 4) for _, v in ranked[:nbest]]}"
        )
        if nbest > 1 and (target.is_file() or target.is_symlink()):
            target.unlink()  # ESPnet's torch.save would write into it in place
        average_nbest_models(exp, reporter, [(phase, key, mode)], nbest)
        if not (target.is_file() or target.is_symlink()):
            raise ValueError(f"averaging did not write {target}")
        check_state_dict_file(target, what="averaged model")
    # average_nbest_models links <phase>.<key>.ave.pth to the largest n it made.
    default_link = exp / f"{phase}.{key}.ave.pth"
    for link in {default_link, Path(out) if out else default_link}:
        _link(link, target)
    logger.info(f"averaged model: {target}" + (f" (linked as {out})" if out else ""))
    return target


def log_masked_sparsity(model: Path, mask: Path) -> Tuple[float, int]:
    """Log the sparsity of ``model`` over the weights ``mask`` covers, next to
    the mask's own; warn, with the count, when weights outside the mask are
    nonzero (an average of epochs with different masks holds the union of
    their supports). Regrown weights that are still 0 count as zeros.

    Returns:
        (model sparsity over the masked weights, nonzero weights outside the mask).
    """
    from espnet_msrs.sparsity.folding import masks_sparsity
    from espnet_msrs.sparsity.mask_file import load_masks
    from espnet_msrs.utils.safe_load import load_torch_file

    masks = load_masks(mask)
    state = load_torch_file(model, what="model")
    absent = sorted(set(masks) - set(state))
    if absent:
        raise ValueError(f"{mask} masks weights that {model} does not have, e.g. {absent[:3]}")
    model_sparsity = masks_sparsity({name: state[name] != 0 for name in masks})
    outside = sum(int(((state[n] != 0) & ~m.bool()).sum()) for n, m in masks.items())
    logger.info(f"masked weights of {model}: sparsity={100 * model_sparsity:.1f}% "
                f"nonzero_outside_mask={outside} (the final masks of {mask}: "
                f"{100 * masks_sparsity(masks):.1f}%)")
    if outside:
        logger.warning(
            f"{model} is denser than its final masks: {outside} weights outside them are "
            "nonzero (an average of epochs with different masks holds the union of their "
            "supports; the last epoch's model holds the final masks)"
        )
    return model_sparsity, outside


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser("Average the n best checkpoints of an ESPnet training")
    parser.add_argument("--exp_dir", required=True, help="ESPnet training output dir")
    parser.add_argument("--criterion", nargs=3, default=["valid", "acc", "max"],
                        metavar=("PHASE", "KEY", "MODE"), help="Ranking criterion")
    parser.add_argument("--nbest", type=int, default=None,
                        help="Epochs to average (default: keep_nbest_models)")
    parser.add_argument("--out", default=None, help="Symlink to the averaged model")
    parser.add_argument("--last_epoch", type=str2bool, default=False,
                        help="Take the last epoch's model instead of an average (sparse "
                             "methods whose masks change); --criterion/--nbest unused")
    parser.add_argument("--mask", default=None,
                        help="mask.pth of a sparse training: log the model's sparsity against it")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = parse_tool_args(get_parser(), cmd)
    if args.last_epoch:
        model = last_epoch_model(args.exp_dir, args.out)
    else:
        model = average_checkpoints(args.exp_dir, tuple(args.criterion), args.nbest, args.out)
    if args.mask:
        log_masked_sparsity(Path(model), Path(args.mask))


if __name__ == "__main__":
    main(sys.argv[1:])
