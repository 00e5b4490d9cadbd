"""ESPnet Trainer with the MSRS mask-search stopping rule (MSRS Algorithm 1).

Only these hooks differ from espnet2's :class:`Trainer`:

* after each epoch's validation, the model's :class:`MaskSearchController`
  records the binary-mask sparsity (its history is a buffer of the model, so
  the checkpoint ESPnet writes right after holds it);
* at the start of the next epoch, if the controller says the mask is stable,
  training stops (:class:`MaskSearchConverged`, caught here), and the search
  artifacts (``mask.pth``, ``init.pth``, ``sparsity_report.json``, plots) are
  written to the output directory by rank 0.  A ``--resume true`` of a
  converged run stops at once and rewrites the same artifacts; a search that
  reaches ``--max_epoch`` writes them too (``stop_reason: max_epoch``);
* ESPnet's gradient clipping (and gradient noise) sees θ only: in a search
  the mask logits φ are clipped on their own by their optimizer, so inert
  masks (λ = 0, φ ≫ 0) train θ bit for bit like a dense run;
* ``--use_amp true`` with ``--ngpu 0`` runs the forward passes under CPU
  autocast in bfloat16 (ESPnet's own AMP uses ``torch.cuda.amp`` and is a
  silent no-op on CPU); on CUDA ESPnet's AMP is used unchanged;
* the gradient-norm monitor (``--grad_norm_params``) is told the AMP loss
  scale, and the train tensorboard writer is flushed at the end of the run;
* ``environment.json`` (versions, git revision, host, command line) is
  written into the output directory at the start (rank 0);
* schedulers stated in epochs (``scheduler_conf: {warmup_epochs: 5, ...}``)
  are converted to optimizer steps with this run's iterations per epoch
  (:func:`espnet_msrs.schedulers.abs_epoch_sized_scheduler.resolve_epoch_schedules`);
* a checkpoint truncated by a kill during ESPnet's save is healed before
  ESPnet resumes (rank 0; :mod:`espnet_msrs.train.checkpoint_recovery`).

Without a controller (dense, low-rank, sparse or grad-masked runs) the
search hooks do nothing and, in fp32, training is exactly espnet2's.
"""

import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import torch
from espnet2.train.trainer import Trainer

from espnet_msrs.schedulers.abs_epoch_sized_scheduler import resolve_epoch_schedules
from espnet_msrs.sparsity.controller import MaskSearchConverged, find_controller
from espnet_msrs.train import checkpoint_recovery

logger = logging.getLogger(__name__)

#: Autocast dtype of ``--use_amp true`` on CPU.
CPU_AMP_DTYPE = torch.bfloat16

# The train tensorboard writer of the running training (ESPnet never closes
# it): flushed at every epoch start and at the end of the run.
_train_writers: List[Any] = []


class TrainingView(torch.nn.Module):
    """The model as ESPnet's training/validation loop sees it.

    * ``parameters()`` leaves out the mask logits φ, so ESPnet's gradient
      clipping (and ``--grad_noise``) act on θ exactly as in a dense run; φ is
      clipped on its own by its optimizer (see
      :func:`espnet_msrs.tasks.asr.build_msrs_optimizers`).
    * with ``autocast_dtype``, the forward runs under ``torch.autocast("cpu")``
      (only the forward: backward runs in the dtypes autocast chose, as torch
      recommends).

    Args:
        module: The (possibly DDP-wrapped) model.
        autocast_dtype: CPU autocast dtype, or None for no autocast.
    """

    def __init__(self, module: torch.nn.Module,
                 autocast_dtype: Optional[torch.dtype] = None):
        super().__init__()
        self.module = module
        self.autocast_dtype = autocast_dtype
        self._phi_ids = {
            id(p) for n, p in module.named_parameters() if n.endswith("mask_logits")
        }

    def parameters(self, recurse: bool = True):
        for param in self.module.parameters(recurse):
            if id(param) not in self._phi_ids:
                yield param

    def forward(self, *args, **kwargs):
        if self.autocast_dtype is None:
            return self.module(*args, **kwargs)
        with torch.autocast(device_type="cpu", dtype=self.autocast_dtype):
            return self.module(*args, **kwargs)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


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
    (output_dir / "environment.json").write_text(json.dumps(env, indent=2) + "\n")


class MSRSTrainer(Trainer):
    """espnet2 Trainer + the MSRS mask-search stopping criterion."""

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
        controller = find_controller(model)
        if controller is not None:
            controller.start()
        _train_writers.clear()
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
        except MaskSearchConverged as stop:
            logger.info(str(stop))
        finally:
            for writer in _train_writers:
                writer.flush()
            _train_writers.clear()
            if _is_rank0(distributed_option):
                checkpoint_recovery.recover_checkpoint(output_dir)
        if controller is None:
            return
        if controller.converged:
            stop_reason = "converged"
        elif controller.last_epoch >= trainer_options.max_epoch:
            stop_reason = "max_epoch"
        else:  # ESPnet's early stopping or an epoch of invalid gradients
            stop_reason = "stopped"
        if _is_rank0(distributed_option):
            from espnet_msrs.sparsity.artifacts import write_search_artifacts

            write_search_artifacts(_unwrap(model), controller, output_dir, stop_reason)
        if distributed_option.distributed:
            torch.distributed.barrier()

    @classmethod
    def train_one_epoch(cls, model, optimizers, schedulers, iterator, reporter,
                        scaler, summary_writer, options, distributed_option) -> bool:
        if summary_writer is not None:
            summary_writer.flush()  # the previous epoch's summaries
            if summary_writer not in _train_writers:
                _train_writers.append(summary_writer)
        controller = find_controller(model)
        if controller is not None and controller.converged:
            last = controller.last_epoch
            current = controller.sparsity_at(last)
            delta = current - controller.sparsity_at(last - 1)
            raise MaskSearchConverged(
                f"msrs mask search converged: epoch={last} sparsity={current:.4f} "
                f"delta={delta:+.4f} epsilon={controller.epsilon}"
            )
        monitor = getattr(_unwrap(model), "_msrs_grad_norm_monitor", None)
        if monitor is not None:
            monitor.set_scaler(scaler)
        return super().train_one_epoch(
            model=TrainingView(model, _autocast_dtype(options)),
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
            model=TrainingView(model, _autocast_dtype(options)),
            iterator=iterator,
            reporter=reporter,
            options=options,
            distributed_option=distributed_option,
        )
        controller = find_controller(model)
        if controller is not None:
            controller.end_epoch(reporter.epoch)
        if _is_rank0(distributed_option):  # ESPnet saves the checkpoint next
            checkpoint_recovery.keep_previous_checkpoint(options.output_dir)
