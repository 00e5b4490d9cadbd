"""The interface of a sparse-training method (DESIGN §7, *strategy*).

MSRS and the baselines it is compared with (MSRS Table 4) differ only in how
the mask is chosen and updated.  A :class:`SparseMethod` is that difference;
everything else is shared:

* *selection*: :class:`~espnet_msrs.sparsity.selection.MaskSelection`
  (``msrs_conf.include``/``exclude``), given to :meth:`SparseMethod.setup`;
* *mask state*: :class:`~espnet_msrs.sparsity.mask_state.MaskState` for
  binary masks on plain weights (fixed-mask retraining and the baselines,
  through :class:`~espnet_msrs.sparsity.masked_training.MaskedTraining`);
  the MSRS search keeps its mask logits φ in masked layers instead;
* *ownership*: the model (:class:`espnet_msrs.asr.espnet_model.MSRSESPnetModel`,
  ``model: msrs``) owns the method; the task builds it from ``--msrs_conf``;
  ESPnet's trainer reaches it only through the hooks below;
* *artifact*: ``sparsity_report.json`` and ``mask.pth`` in the output
  directory, in one format for every method.

Hooks, in the order they are called::

    setup(model, selection, seed)       MSRSASRTask.build_model, once
    attach_optimizers(optimizers)       MSRSASRTask.build_optimizers, once
    start(model, steps_per_epoch,       MSRSTrainer.run, before ESPnet's resume
          max_epoch)                      and first epoch (after --init_param)
    loss_terms(model)                   MSRSESPnetModel.forward, every call
    epoch_start(epoch)                  MSRSTrainer.train_one_epoch, first thing:
                                          a returned reason stops training there
    end_training()                      MSRSTrainer.run, every rank, at the end
    write_artifacts(model, output_dir,  MSRSTrainer.run, rank 0, at the end
                    stop_reason)

Per-step work (prune-and-grow, φ ← φ − λ) runs in optimizer step hooks that
:meth:`attach_optimizers` registers (public ``torch.optim`` hooks): they run
after ESPnet's gradient un-scaling and clipping, only for steps that are
taken.

Checkpoints: :meth:`state_dict` is saved inside ESPnet's ``checkpoint.pth``
(carried by the first optimizer's state dict, under :data:`STATE_KEY`) and
restored by ``--resume``; it never reaches the model files
(``{N}epoch.pth``, averaged and packed models), which stay plain ESPnet state
dicts.  Everything a method decides must be a function of that state and of
values identical on every DDP rank, so every rank decides alike.
"""

import abc
import logging
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from espnet_msrs.sparsity.selection import MaskSelection

logger = logging.getLogger(__name__)

#: Key of the method's state inside the first optimizer's state dict.
STATE_KEY = "espnet_msrs_sparse_method"

#: Stop reasons of :meth:`SparseMethod.end_training` besides a method's own.
MAX_EPOCH = "max_epoch"
STOPPED = "stopped"


class SparseMethod(abc.ABC):
    """Base class of the sparse-training methods (see the module docstring)."""

    #: ``msrs_conf.mode`` of the method.
    name: str = ""

    #: Whether :meth:`start` needs the run's optimizer steps per epoch.
    needs_steps_per_epoch: bool = False

    def __init__(self) -> None:
        self.max_epoch: Optional[int] = None
        self.last_epoch = 0  # last epoch started (completed, between epochs)
        self.stop_reason: Optional[str] = None

    # ------------------------------------------------------------ lifecycle
    @abc.abstractmethod
    def setup(self, model: nn.Module, selection: MaskSelection, seed: int) -> None:
        """Prepare ``model`` (just built by ESPnet, on CPU) for this method.

        Args:
            model: The ESPnet model.
            selection: The weights the method may mask.
            seed: ESPnet's ``--seed`` (for methods that draw masks).
        """

    def attach_optimizers(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Register optimizer hooks; carry :meth:`state_dict` in the checkpoint.

        Subclasses extend this (calling ``super()``) to add step hooks.

        Args:
            optimizers: ESPnet's optimizers; ``optimizers[0]`` trains θ.
        """
        optimizer = optimizers[0]
        optimizer.register_state_dict_post_hook(self._save_into)
        optimizer.register_load_state_dict_pre_hook(self._load_from)

    def start(self, model: nn.Module, steps_per_epoch: Optional[int],
              max_epoch: int) -> None:
        """Training is about to start (weights of ``--init_param`` loaded).

        Args:
            model: The ESPnet model (not wrapped).
            steps_per_epoch: Optimizer steps per epoch when
                :attr:`needs_steps_per_epoch`, else None.
            max_epoch: ESPnet's ``--max_epoch``.
        """
        self.max_epoch = int(max_epoch)

    def loss_terms(
        self, model: nn.Module
    ) -> Tuple[Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        """Extra loss term (or None) and stats of this forward.

        Returns:
            ``(term, stats)``: ``term`` is added to ESPnet's loss, ``stats``
            (0-dim tensors) to its stats.
        """
        return None, {}

    def epoch_start(self, epoch: int) -> Optional[str]:
        """Epoch ``epoch`` is about to start; a returned reason stops training.

        Called on every rank (collectives allowed), also as the first thing
        of a resumed run.  The stop decision and its action are here and
        only here: the trainer ends the run before this epoch when a reason
        is returned.
        """
        self.last_epoch = epoch
        return None

    def end_training(self) -> str:
        """Training has ended (every rank); returns why it ended."""
        if self.stop_reason is not None:
            return self.stop_reason
        if self.max_epoch is not None and self.last_epoch >= self.max_epoch:
            return MAX_EPOCH
        return STOPPED

    @abc.abstractmethod
    def write_artifacts(self, model: nn.Module, output_dir: Path,
                        stop_reason: str) -> Dict[str, Any]:
        """Write ``mask.pth``, ``sparsity_report.json`` (rank 0); return the report."""

    # ------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        """What a resumed run needs (tensors, numbers, lists, dicts)."""
        return {"last_epoch": self.last_epoch, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.stop_reason = state["stop_reason"]

    def _save_into(self, optimizer, state_dict: Dict) -> Dict:
        state_dict[STATE_KEY] = {"method": self.name, "state": self.state_dict()}
        return state_dict

    def _load_from(self, optimizer, state_dict: Dict) -> Dict:
        state_dict = dict(state_dict)
        saved = state_dict.pop(STATE_KEY, None)
        if saved is None:
            raise ValueError(
                f"msrs_conf.mode={self.name}: the checkpoint to resume from has no "
                "sparse-training state (it was written by a run with another "
                "msrs_conf.mode, or by another program); start a new --output_dir"
            )
        if saved["method"] != self.name:
            raise ValueError(
                f"msrs_conf.mode={self.name}: the checkpoint to resume from was "
                f"written with msrs_conf.mode={saved['method']}"
            )
        self.load_state_dict(saved["state"])
        return state_dict


def stat(value: float, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """A 0-dim fp32 stat tensor (on ``like``'s device)."""
    device = like.device if like is not None else None
    return torch.tensor(float(value), dtype=torch.float32, device=device)
