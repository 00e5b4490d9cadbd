"""espnet2's ASR model plus what a run of this package trains with.

:class:`MSRSESPnetModel` (``model: msrs``) is espnet2's
:class:`~espnet2.asr.espnet_model.ESPnetASRModel` with the same
``model_conf`` (the YAML API is ESPnet's) and, when
:class:`~espnet_msrs.tasks.asr.MSRSASRTask` trains it, two training-only
members it owns:

* ``sparse_method`` — the sparse-training method of ``--msrs_conf`` (MSRS
  mask search, MSRS sparse / grad-masked retraining, SET, RigL, GMP, CHASE;
  :mod:`espnet_msrs.sparsity`): it holds the mask state and decides how the
  masks change; :meth:`MSRSESPnetModel.forward` adds its loss term (MSRS:
  ``λ·Σφ``, eq. 7) to ESPnet's loss and its stats (``mask_penalty``,
  ``sparsity``, ``phi_*``) to ESPnet's stats, and ESPnet's trainer reaches
  it through :class:`espnet_msrs.train.msrs_trainer.MSRSTrainer`'s hooks;
* ``grad_norm_monitor`` — the gradient norms of ``--grad_norm_params``
  (MSRS Fig. 1), added to the stats of training forwards.

Neither is a submodule, so neither reaches the state dict: the model files
ESPnet writes (``{N}epoch.pth``, averaged models) are exactly those of
``ESPnetASRModel``.  Built from a packed ``config.yaml`` at inference
(``Speech2Text``, ``espnet2.bin.asr_inference``, ``espnet_model_zoo``, after
``import espnet_msrs``), the model has neither and *is* ESPnet's model.
"""

from typing import Dict, Mapping, Optional, Tuple

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.torch_utils.device_funcs import force_gatherable

from espnet_msrs.sparsity.selection import MaskSelection
from espnet_msrs.sparsity.sparse_method import SparseMethod
from espnet_msrs.train.grad_norm import GradNormMonitor


class MSRSESPnetModel(ESPnetASRModel):
    """``ESPnetASRModel`` + an owned sparse-training method and gradient monitor.

    Takes exactly ``ESPnetASRModel``'s arguments (``model_conf``).
    """

    #: The run's sparse-training method (None: plain training / inference).
    sparse_method: Optional[SparseMethod] = None
    #: Gradient norms reported in training (None: none).
    grad_norm_monitor: Optional[GradNormMonitor] = None

    def setup_training(
        self,
        sparse_method: Optional[SparseMethod] = None,
        selection: Optional[MaskSelection] = None,
        seed: int = 0,
        grad_norm_params: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Give the model its training method and monitor (once, after build).

        Args:
            sparse_method: The method of ``--msrs_conf`` (None: none).
            selection: The weights it may mask.
            seed: ESPnet's ``--seed``.
            grad_norm_params: Stats key -> parameter regex (None/empty: none).

        Raises:
            ValueError: Called twice, or a bad selection / monitor regex.
        """
        if self.sparse_method is not None or self.grad_norm_monitor is not None:
            raise ValueError("setup_training() was already called on this model")
        if sparse_method is not None:
            sparse_method.setup(self, selection or MaskSelection(), seed)
            self.sparse_method = sparse_method
        # After the method: the monitor hooks the parameters the model trains.
        if grad_norm_params:
            self.grad_norm_monitor = GradNormMonitor(self, grad_norm_params)

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        **kwargs,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """ESPnet's forward, plus the method's loss term and stats.

        Args:
            speech: (B, T, ...) input.
            speech_lengths: (B,).
            text: (B, L) token ids.
            text_lengths: (B,).

        Returns:
            ``(loss, stats, weight)`` as ``ESPnetASRModel.forward``; ``loss``
            includes the method's term (promoted to at least fp32), ``stats``
            its stats and, in training, the monitored gradient norms.
        """
        loss, stats, weight = super().forward(
            speech, speech_lengths, text, text_lengths, **kwargs
        )
        if self.sparse_method is None and self.grad_norm_monitor is None:
            return loss, stats, weight
        stats = dict(stats)
        if self.sparse_method is not None:
            term, method_stats = self.sparse_method.loss_terms(self)
            stats.update(method_stats)
            if term is not None:
                loss = loss.to(torch.promote_types(loss.dtype, term.dtype)) + term
                stats["loss"] = loss.detach()
        if self.training and self.grad_norm_monitor is not None:
            stats.update(self.grad_norm_monitor.norms())
        return force_gatherable((loss, stats, weight), loss.device)
