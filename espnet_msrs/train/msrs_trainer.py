"""ESPnet Trainer that calls the model's sparse-training hooks.

Only these hooks differ from espnet2's :class:`Trainer`:

* the model's sparse-training method
  (:class:`espnet_msrs.sparsity.sparse_method.SparseMethod`, owned by
  :class:`espnet_msrs.asr.espnet_model.MSRSESPnetModel`) is started before
  the first epoch (``start``: after ``--init_param``, before ``--resume``),
  asked at the start of every epoch whether to train it (``epoch_start``:
  the MSRS search's ε rule; a reason ends the run there, before the epoch),
  and, when training ends, asked why (``end_training``) and told to write
  its artifacts (``mask.pth``, ``sparsity_report.json``, plots; MSRS search
  also ``init.pth``) into the output directory by rank 0.  A ``--resume
  true`` of a converged search stops at once and rewrites the same
  artifacts;
* ESPnet's gradient clipping (and gradient noise) sees θ only: in a search
  the mask logits φ are clipped on their own by their optimizer, so inert
  masks (λ = 0, φ ≫ 0) train θ bit for bit like a dense run
  (:func:`espnet_msrs.compat.clipped_parameters_view`);
* ``--use_amp true`` with ``--ngpu 0`` runs the forward passes under CPU
  autocast in bfloat16 (ESPnet's own AMP uses ``torch.cuda.amp`` and is a
  silent no-op on CPU); on CUDA ESPnet's AMP is used unchanged;
* the model's gradient-norm monitor is told the AMP loss scale, and the train
  tensorboard writer is flushed at every epoch start and at the end of the
  run (ESPnet never closes it);
* ``environment.json`` (versions, git revision, host, command line) is
  written into the output directory at the start (rank 0);
* schedulers stated in epochs (``scheduler_conf: {warmup_epochs: 5, ...}``)
  are converted to optimizer steps with this run's iterations per epoch
  (:func:`espnet_msrs.schedulers.abs_epoch_sized_scheduler.resolve_epoch_schedules`);
* a checkpoint truncated by a kill during ESPnet's save is healed before
  ESPnet resumes (rank 0; :mod:`espnet_msrs.train.checkpoint_recovery`).

Without a sparse-training method (dense, low-rank runs) the hooks do
nothing and, in fp32, training is exactly espnet2's.
"""

import dataclasses
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import torch
from espnet2.train.trainer import Trainer, TrainerOptions

from espnet_msrs.compat import clipped_parameters_view
from espnet_msrs.sparsity.masked_layers import is_mask_logits
from espnet_msrs.train import checkpoint_recovery
from espnet_msrs.schedulers.abs_epoch_sized_scheduler import (
    optimizer_steps_per_epoch,
    resolve_epoch_schedules,
)
from espnet_msrs.utils import atomic

logger = logging.getLogger(__name__)

#: Autocast dtype of ``--use_amp true`` on CPU.
CPU_AMP_DTYPE = torch.bfloat16


class StopTraining(Exception):
    """Raised at the start of an epoch the sparse-training method declines."""

    def __init__(self, reason: str, epoch: int):
        super().__init__(f"training stopped before epoch {epoch}: {reason}")
        self.reason = reason
        self.epoch = epoch


@dataclasses.dataclass
class MSRSTrainerOptions(TrainerOptions):
    """ESPnet's trainer options + the run's train tensorboard writers."""

    train_summary_writers: List[Any] = dataclasses.field(default_factory=list)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside DDP / DataParallel wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def sparse_method_of(model: torch.nn.Module):
    """The sparse-training method the (possibly wrapped) model owns, or None."""
    return getattr(_unwrap(model), "sparse_method", None)


def _autocast_dtype(options) -> Optional[torch.dtype]:
    return CPU_AMP_DTYPE if options.use_amp and options.ngpu == 0 else None


def _is_rank0(distributed_option) -> bool:
    return not distributed_option.distributed or distributed_option.dist_rank == 0


def _git_revision() -> Optional[str]:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def write_environment(output_dir: Path) -> None:
    """Write versions, git revision, host and command line (icefall's habit)."""
    import espnet

    import espnet_msrs

    env = {
        "espnet_msrs": espnet_msrs.__version__,
        "espnet_msrs_git": _git_revision(),
        "espnet": getattr(espnet, "__version__", None),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        "argv": sys.argv,
        "cwd": os.getcwd(),
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(output_dir / "environment.json", env, indent=2)


class MSRSTrainer(Trainer):
    """espnet2 Trainer + the sparse-training method's hooks (see module doc)."""

    @classmethod
    def build_options(cls, args) -> MSRSTrainerOptions:
        options = super().build_options(args)
        return MSRSTrainerOptions(
            **{f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        )

    @classmethod
    def run(cls, model, optimizers, schedulers, train_iter_factory,
            valid_iter_factory, plot_attention_iter_factory, trainer_options,
            distributed_option) -> None:
        output_dir = Path(trainer_options.output_dir)
        if _is_rank0(distributed_option):
            write_environment(output_dir)
            checkpoint_recovery.prepare(output_dir, trainer_options.resume)
        if distributed_option.distributed:
            torch.distributed.barrier()
        if trainer_options.use_amp and trainer_options.ngpu == 0:
            logger.info(
                f"--use_amp on CPU: forward under autocast dtype={CPU_AMP_DTYPE}"
            )
        # Schedules stated in epochs (scheduler_conf warmup_epochs, ...) get
        # this run's optimizer steps per epoch (before --resume loads them).
        resolve_epoch_schedules(schedulers, train_iter_factory, trainer_options)
        method = sparse_method_of(model)
        if method is not None:
            steps_per_epoch = None
            if method.needs_steps_per_epoch:
                _, steps_per_epoch = optimizer_steps_per_epoch(
                    train_iter_factory, trainer_options.accum_grad
                )
            method.start(_unwrap(model), steps_per_epoch, trainer_options.max_epoch)
        try:
            super().run(
                model=model,
                optimizers=optimizers,
                schedulers=schedulers,
                train_iter_factory=train_iter_factory,
                valid_iter_factory=valid_iter_factory,
                plot_attention_iter_factory=plot_attention_iter_factory,
                trainer_options=trainer_options,
                distributed_option=distributed_option,
            )
        except StopTraining as stop:
            logger.info(str(stop))
        finally:
            for writer in getattr(trainer_options, "train_summary_writers", []):
                writer.flush()
            if _is_rank0(distributed_option):
                checkpoint_recovery.recover_checkpoint(output_dir)
        if method is None:
            return
        stop_reason = method.end_training()
        if _is_rank0(distributed_option):
            method.write_artifacts(_unwrap(model), output_dir, stop_reason)
        if distributed_option.distributed:
            torch.distributed.barrier()

    @classmethod
    def train_one_epoch(cls, model, optimizers, schedulers, iterator, reporter,
                        scaler, summary_writer, options, distributed_option) -> bool:
        if summary_writer is not None:
            summary_writer.flush()  # the previous epoch's summaries
            writers = getattr(options, "train_summary_writers", None)
            if writers is not None and summary_writer not in writers:
                writers.append(summary_writer)
        method = sparse_method_of(model)
        if method is not None:
            reason = method.epoch_start(reporter.epoch)
            if reason is not None:
                raise StopTraining(reason, reporter.epoch)
        monitor = getattr(_unwrap(model), "grad_norm_monitor", None)
        if monitor is not None:
            monitor.set_scaler(scaler)
        return super().train_one_epoch(
            model=clipped_parameters_view(model, is_mask_logits, _autocast_dtype(options)),
            optimizers=optimizers,
            schedulers=schedulers,
            iterator=iterator,
            reporter=reporter,
            scaler=scaler,
            summary_writer=summary_writer,
            options=options,
            distributed_option=distributed_option,
        )

    @classmethod
    def validate_one_epoch(cls, model, iterator, reporter, options,
                           distributed_option) -> None:
        super().validate_one_epoch(
            model=clipped_parameters_view(model, is_mask_logits, _autocast_dtype(options)),
            iterator=iterator,
            reporter=reporter,
            options=options,
            distributed_option=distributed_option,
        )
        if _is_rank0(distributed_option):  # ESPnet saves the checkpoint next
            checkpoint_recovery.keep_previous_checkpoint(options.output_dir)
