"""Resume after a kill during ESPnet's checkpoint save (issue 11 item 3).

ESPnet's trainer writes ``checkpoint.pth`` (model, optimizers, schedulers,
reporter) and then ``<N>epoch.pth`` in place with ``torch.save`` at the end
of every epoch. A kill during either write leaves a truncated file, and
every ``--resume true`` rerun then fails in ``torch.load``. Three calls from
:class:`espnet_msrs.train.msrs_trainer.MSRSTrainer` (rank 0 only, the rank
that saves) keep a complete state on disk at every moment:

* :func:`keep_previous_checkpoint` — after each validation, right before
  ESPnet saves: the complete ``checkpoint.pth`` of the last epoch is renamed
  to ``checkpoint.prev.pth`` (a rename: no copy, no extra write);
* :func:`recover_checkpoint` — before training starts (and when it ends):
  a ``checkpoint.pth`` that does not load (``weights_only=True``, so also
  never running code) is moved aside to ``checkpoint.pth.broken`` with a
  warning and ``checkpoint.prev.pth`` takes its place, so ESPnet resumes
  from the newest epoch whose state was written completely; with no
  complete state left the phase restarts from epoch 1, saying so. A
  truncated ``<N>epoch.pth`` of the resumed epoch is rewritten from the
  checkpoint's model; other broken epoch files are moved aside. When
  ``checkpoint.pth`` is complete, ``checkpoint.prev.pth`` is removed;
* :func:`discard_previous_checkpoint` — a run without ``--resume`` drops a
  ``checkpoint.prev.pth`` of an earlier run, so it can never be taken for
  this run's state.

A checkpoint whose pickle wants objects outside the allow-list of
:mod:`espnet_msrs.utils.safe_load` is not "broken" but refused: the error
is raised, nothing is moved.
"""

import logging
import os
import re
from pathlib import Path
from typing import Optional, Union

from espnet_msrs.utils import atomic
from espnet_msrs.utils.safe_load import (
    UnsafeFileError,
    check_torch_file,
    load_torch_file,
)

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pth"
PREVIOUS = "checkpoint.prev.pth"
_EPOCH_FILE = re.compile(r"^(\d+)epoch\.pth$")

PathLike = Union[str, os.PathLike]


def _move_aside(path: Path, why: str) -> Path:
    target = path.with_name(path.name + ".broken")
    n = 1
    while target.exists() or target.is_symlink():
        target = path.with_name(f"{path.name}.broken.{n}")
        n += 1
    os.replace(path, target)
    logger.warning(f"{path} is {why}: moved aside to {target.name}")
    return target


def _intact(path: Path, what: str) -> Optional[str]:
    """None if ``path`` loads safely, else why not (unsafe files raise)."""
    try:
        check_torch_file(path, what=what)
    except UnsafeFileError as e:
        if e.kind == "unsafe":
            raise
        return str(e).split(": ", 1)[-1]
    return None


def prepare(output_dir: PathLike, resume: bool) -> Optional[int]:
    """Before training (rank 0): :func:`recover_checkpoint` when resuming,
    else :func:`discard_previous_checkpoint`. Returns the resumed epoch."""
    if resume:
        return recover_checkpoint(output_dir)
    discard_previous_checkpoint(output_dir)
    return None


def keep_previous_checkpoint(output_dir: Optional[PathLike]) -> None:
    """Rename the last complete ``checkpoint.pth`` to ``checkpoint.prev.pth``
    (call right before ESPnet saves the next one; ``None``, a trainer
    without output directory, saves nothing)."""
    if output_dir is None:
        return
    output_dir = Path(output_dir)
    current = output_dir / CHECKPOINT
    if current.is_file():
        os.replace(current, output_dir / PREVIOUS)


def discard_previous_checkpoint(output_dir: PathLike) -> None:
    """Remove a ``checkpoint.prev.pth`` left by an earlier run."""
    previous = Path(output_dir) / PREVIOUS
    if previous.is_file():
        previous.unlink()
        logger.info(f"removed {previous} of an earlier run (not resuming)")


def recover_checkpoint(output_dir: PathLike) -> Optional[int]:
    """Leave ``checkpoint.pth`` complete or absent (see the module docstring).

    Args:
        output_dir: ESPnet's training output directory.

    Returns:
        The epoch the checkpoint holds (training resumes after it), or None
        when the phase starts from epoch 1.

    Raises:
        espnet_msrs.utils.safe_load.UnsafeFileError: A checkpoint or epoch
            file whose pickle would run code.
    """
    output_dir = Path(output_dir)
    current = output_dir / CHECKPOINT
    previous = output_dir / PREVIOUS
    epoch_files = sorted(
        (int(m.group(1)), p)
        for p in output_dir.glob("*epoch.pth")
        if (m := _EPOCH_FILE.match(p.name)) and p.is_file()
    )
    recovered = False
    if current.is_file():
        why = _intact(current, "checkpoint")
        if why is None:
            if previous.is_file():
                previous.unlink()
        else:
            _move_aside(current, why)
    if not current.is_file() and previous.is_file():
        why = _intact(previous, "checkpoint")
        if why is None:
            os.replace(previous, current)
            recovered = True
        else:
            _move_aside(previous, why)
    if not current.is_file():
        if epoch_files:
            logger.warning(
                f"no complete {CHECKPOINT} in {output_dir}: restarting this training "
                f"phase from epoch 1 (epoch files {[e for e, _ in epoch_files]} "
                "will be overwritten)"
            )
        for _, path in epoch_files:
            why = _intact(path, "epoch model")
            if why is not None:
                _move_aside(path, why)
        return None

    state = None
    epoch = None
    for n, path in epoch_files:
        why = _intact(path, "epoch model")
        if why is None:
            continue
        if state is None:
            state = load_torch_file(current, what="checkpoint")
            epoch = int(state["reporter"]["epoch"])
        if n == epoch:
            atomic.torch_save(state["model"], path)
            logger.warning(
                f"{path} was {why}: rewritten from {CHECKPOINT} (epoch {epoch})"
            )
        else:
            _move_aside(path, why)
    if epoch is None:
        state = load_torch_file(current, what="checkpoint", mmap=True)
        epoch = int(state["reporter"]["epoch"])
    if recovered:
        logger.warning(
            f"resuming from the state of epoch {epoch} ({current}), the newest one "
            "written completely"
        )
    return epoch
