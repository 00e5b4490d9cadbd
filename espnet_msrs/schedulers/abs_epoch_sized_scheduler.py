"""Batch-step schedulers whose lengths may be stated in epochs.

Both papers state their schedules in epochs (MSRS §3 "Training strategies":
warm-up 5 epochs, 75 epochs; LR-SMS §III "Training details": 75 epochs,
5 warm-up, 15 cool-down), while ESPnet's batch-step schedulers count
optimizer steps.  A step count is right only for one corpus, batch size,
GPU count and ``accum_grad``; an epoch count stays right when any of them
changes.

ESPnet builds the schedulers (``AbsTask.main_worker``, step 4) before the
training iterator (step 7), so a scheduler cannot know the number of
iterations per epoch when it is constructed.  The first place that holds both
is ``Trainer.run`` (``schedulers`` and ``train_iter_factory``): there,
:func:`resolve_epoch_schedules` tells every :class:`AbsEpochSizedScheduler`
its optimizer steps per epoch, once, before training (and before ESPnet's
``--resume`` loads the scheduler state, so a resumed run keeps the step
counts its checkpoint was trained with).

Optimizer steps per epoch = ``len(train_iter_factory.build_iter(epoch))``
(ESPnet's batches per epoch on every rank: under DDP each batch is split
across the ranks, and ``--num_iters_per_epoch`` sets the length when given)
integer-divided by ``--accum_grad`` (ESPnet steps the optimizers and
batch-step schedulers once every ``accum_grad`` iterations).
"""

import logging
from abc import abstractmethod
from typing import Optional, Sequence, Tuple

from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.schedulers.abs_scheduler import AbsBatchStepScheduler, AbsScheduler

logger = logging.getLogger(__name__)


class AbsEpochSizedScheduler(AbsBatchStepScheduler):
    """A batch-step scheduler (ESPnet steps it after every optimizer step)
    whose phase lengths may be given in epochs.

    Subclasses convert their ``*_epochs`` options to steps in
    :meth:`set_steps_per_epoch`; until then :attr:`needs_steps_per_epoch`
    is True and stepping them raises ``ValueError``.
    """

    @property
    @abstractmethod
    def needs_steps_per_epoch(self) -> bool:
        """True while an option stated in epochs is not yet converted."""

    @abstractmethod
    def set_steps_per_epoch(self, steps_per_epoch: int, max_epoch: int) -> None:
        """Convert the options given in epochs to optimizer steps.

        Args:
            steps_per_epoch: Optimizer steps per epoch of this run (>= 1).
            max_epoch: The run's ``--max_epoch`` (the default length).
        """


def optimizer_steps_per_epoch(
    train_iter_factory: AbsIterFactory, accum_grad: int
) -> Tuple[int, int]:
    """Iterations and optimizer steps per epoch of a training run.

    Args:
        train_iter_factory: ESPnet's training iterator factory.
        accum_grad: ``--accum_grad``.

    Returns:
        ``(iterations_per_epoch, optimizer_steps_per_epoch)``.

    Raises:
        ValueError: The iterator has no length (e.g. ``--multiple_iterator`` or
            chunk iterators) or an epoch has fewer iterations than
            ``accum_grad``.
    """
    iterator = train_iter_factory.build_iter(1)
    try:
        iterations = len(iterator)
    except TypeError:
        raise ValueError(
            f"scheduler_conf: a schedule stated in epochs needs the number of "
            f"iterations per epoch, but the training iterator "
            f"({type(train_iter_factory).__name__}) has no length; give "
            "--num_iters_per_epoch, or state the schedule in steps "
            "(warmup_steps, cooldown_steps, total_steps)"
        ) from None
    steps = iterations // accum_grad
    if steps < 1:
        raise ValueError(
            f"scheduler_conf: an epoch has {iterations} iterations, fewer than "
            f"--accum_grad={accum_grad}: no optimizer step per epoch to size the "
            "schedule with; lower --accum_grad or the batch size"
        )
    return iterations, steps


def resolve_epoch_schedules(
    schedulers: Sequence[Optional[AbsScheduler]],
    train_iter_factory: AbsIterFactory,
    trainer_options,
) -> None:
    """Convert the epoch-stated schedulers of a run to optimizer steps.

    Called once by the trainer's ``run`` before training.  Schedulers that are
    not :class:`AbsEpochSizedScheduler`, or need no conversion, are left as
    they are (the iterator is then not even built).

    Args:
        schedulers: The run's schedulers (``None`` entries allowed).
        train_iter_factory: ESPnet's training iterator factory.
        trainer_options: ESPnet's trainer options (``accum_grad``,
            ``max_epoch``).

    Raises:
        ValueError: See :func:`optimizer_steps_per_epoch`, and invalid phase
            lengths once converted.
    """
    pending = [
        (i, s)
        for i, s in enumerate(schedulers, 1)
        if isinstance(s, AbsEpochSizedScheduler) and s.needs_steps_per_epoch
    ]
    if not pending:
        return
    iterations, steps = optimizer_steps_per_epoch(
        train_iter_factory, trainer_options.accum_grad
    )
    for i, scheduler in pending:
        scheduler.set_steps_per_epoch(steps, trainer_options.max_epoch)
        suffix = "" if i == 1 else str(i)
        logger.info(
            f"scheduler{suffix} sized in epochs: iterations_per_epoch={iterations} "
            f"accum_grad={trainer_options.accum_grad} steps_per_epoch={steps} "
            f"-> {scheduler!r}"
        )
