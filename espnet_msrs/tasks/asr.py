"""ESPnet ASR task of espnet_msrs: espnet2's ASRTask + sparse training.

:class:`MSRSASRTask` is espnet2's :class:`ASRTask` plus:

* ``--msrs_conf``: the sparse-training method of this run and the weights
  it may mask (:mod:`espnet_msrs.sparsity.method_choices`): ``mode: none``
  (default; plain ESPnet training: dense, LR-SMS, LayerScale, or MSRS *dense*
  retraining from ``--init_param exp/.../init.pth``), ``search`` (MSRS mask
  search), ``sparse`` / ``grad_masked`` (MSRS retraining with the searched
  mask), ``set`` / ``rigl`` / ``gmp`` / ``chase`` (the baselines of MSRS
  Table 4); ``include``/``exclude`` select the maskable weights;
* ``--grad_norm_params``: stats key -> parameter regex whose gradient L2
  norm is reported every step (MSRS Fig. 1; default: the first linear of
  the first FFN of encoder block 0, as ``grad_norm_enc0_ffn``);
* ``model: msrs`` as the default model
  (:class:`espnet_msrs.asr.espnet_model.MSRSESPnetModel`, ESPnet's ASR model
  that owns the method and the monitor); a second optimizer
  (``--optim2``/``--scheduler2``) for the MSRS mask logits φ, whose
  gradients are clipped on their own with the same ``--grad_clip``;
* :class:`MSRSTrainer` (the method's epoch hooks and artifacts, CPU bf16
  autocast for ``--use_amp``).

With ``mode: none`` the task trains exactly like espnet2's ASRTask (the
second optimizer options exist but are unused).  ESPnet's DDP, AMP, resume
and multi-node options pass through unchanged.  The final model is a plain
ESPnet model (no masks, no method state): see ``MSRSESPnetModel``.
"""

import argparse
import inspect
import logging
from typing import List

import torch

from espnet_msrs.utils.runtime import disable_nltk_downloads, drop_implicit_log_handlers

disable_nltk_downloads()  # before espnet2's import reaches g2p_en (no log, no I/O)

from espnet2.optimizers.optim_groups import configure_optimizer  # noqa: E402
from espnet2.tasks.abs_task import optim_classes  # noqa: E402
from espnet2.tasks.asr import ASRTask  # noqa: E402
from espnet2.utils.nested_dict_action import NestedDictAction  # noqa: E402

from espnet_msrs.asr.espnet_model import MSRSESPnetModel  # noqa: E402
from espnet_msrs.lowrank.lowrank_linear import espnet_init  # noqa: E402
from espnet_msrs.sparsity.masked_layers import is_mask_logits  # noqa: E402
from espnet_msrs.sparsity.method_choices import MODES, build_sparse_method  # noqa: E402
from espnet_msrs.train.av_preprocessor import check_av_packing  # noqa: E402
from espnet_msrs.train.grad_norm import (  # noqa: E402
    DEFAULT_GRAD_NORM_PARAMS,
    default_grad_norm_params,
)
from espnet_msrs.train.msrs_trainer import MSRSTrainer  # noqa: E402
from espnet_msrs.utils.safe_load import check_init_params  # noqa: E402

logger = logging.getLogger(__name__)

#: Registered name of MSRSESPnetModel in espnet2's model choices.
MODEL_NAME = "msrs"


class PhiGradClipper:
    """Step pre-hook of the φ optimizer: clips the mask-logit gradients alone.

    ESPnet clips the gradients it sees (θ only, see
    :func:`espnet_msrs.compat.clipped_parameters_view`) before the optimizers
    step; this hook clips φ's gradients to the same
    ``--grad_clip``/``--grad_clip_type`` right before the φ optimizer steps
    (after AMP un-scaling).  If their norm is not finite, φ's gradients are
    dropped so the φ optimizer skips this step.

    Args:
        params: The mask logits.
        max_norm: ``--grad_clip``.
        norm_type: ``--grad_clip_type``.
    """

    def __init__(self, params: List[torch.nn.Parameter], max_norm: float,
                 norm_type: float):
        self.params = list(params)
        self.max_norm = float(max_norm)
        self.norm_type = float(norm_type)

    def __call__(self, optimizer, args, kwargs) -> None:
        grads = [p for p in self.params if p.grad is not None]
        if not grads:
            return
        norm = torch.nn.utils.clip_grad_norm_(
            grads, max_norm=self.max_norm, norm_type=self.norm_type
        )
        if not torch.isfinite(norm):
            logger.warning(
                f"msrs mask search: mask-logit grad norm is {norm}; skipping the "
                "mask-logit update of this step"
            )
            for p in grads:
                p.grad = None


class _ThetaView:
    """A model seen without its mask logits (for ESPnet's ``configure_optimizer``)."""

    def __init__(self, model: torch.nn.Module, phi_ids: set):
        self._model = model
        self._phi_ids = phi_ids

    def named_modules(self, *args, **kwargs):
        return self._model.named_modules(*args, **kwargs)

    def parameters(self):
        return (p for p in self._model.parameters() if id(p) not in self._phi_ids)


def build_msrs_optimizers(
    args: argparse.Namespace, model: torch.nn.Module
) -> List[torch.optim.Optimizer]:
    """θ optimizer (``--optim``), plus φ optimizer (``--optim2``) in a search.

    The θ optimizer gets every parameter but the mask logits, in the model's
    parameter order (so a search with inert masks trains θ exactly like a
    dense run); the φ optimizer gets the mask logits with weight decay 0.
    Neither draws random numbers.  The model's sparse-training method then
    attaches its step hooks (exact zeros, mask updates, direct penalty).
    """
    if getattr(args, "sharded_ddp", False):
        raise ValueError("--sharded_ddp is not supported by espnet_msrs tasks")
    phi = [p for n, p in model.named_parameters() if is_mask_logits(n)]
    optim_class = optim_classes.get(args.optim)
    if optim_class is None:
        raise ValueError(f"--optim must be one of {list(optim_classes)}: {args.optim}")
    phi_ids = {id(p) for p in phi}
    if args.exclude_weight_decay:
        optim = configure_optimizer(
            _ThetaView(model, phi_ids),
            optim_class,
            args.optim_conf,
            args.exclude_weight_decay_conf,
        )
    else:
        theta = [p for p in model.parameters() if id(p) not in phi_ids]
        optim = optim_class(theta, **args.optim_conf)
    optimizers = [optim]
    if phi:
        optim2_class = optim_classes.get(args.optim2)
        if optim2_class is None:
            raise ValueError(
                f"--optim2 must be one of {list(optim_classes)}: {args.optim2}"
            )
        if not args.optim2_conf:
            raise ValueError(
                "the model has mask logits φ (a mask search) but --optim2_conf is "
                f"empty (--optim2={args.optim2}); set the φ optimizer explicitly, "
                "e.g. optim2: adamw, optim2_conf: {lr: 0.001, betas: [0.9, 0.98]}"
            )
        if args.optim2 != args.optim:
            logger.warning(
                f"msrs mask search: --optim2={args.optim2} (mask logits) differs "
                f"from --optim={args.optim}; MSRS uses AdamW for both"
            )
        conf2 = dict(args.optim2_conf)
        if float(conf2.get("weight_decay", 0.0)) != 0.0:
            raise ValueError(
                "--optim2_conf weight_decay must be 0: MSRS applies no weight decay "
                f"to the mask logits φ (got {conf2['weight_decay']})"
            )
        if "weight_decay" in inspect.signature(optim2_class).parameters:
            conf2["weight_decay"] = 0.0
        optim2 = optim2_class(phi, **conf2)
        optim2.register_step_pre_hook(
            PhiGradClipper(phi, args.grad_clip, args.grad_clip_type)
        )
        optimizers.append(optim2)
    method = getattr(model, "sparse_method", None)
    if method is not None:
        method.attach_optimizers(optimizers)
    return optimizers


class MSRSASRTask(ASRTask):
    """espnet2 ASRTask + sparse training (MSRS and the Table 4 baselines)."""

    num_optimizers: int = 2
    trainer = MSRSTrainer

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        super().add_task_arguments(parser)
        add_msrs_arguments(parser)
        # The model of this task (a YAML's `model:` still wins).
        parser.set_defaults(model=MODEL_NAME)

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False):
        """``text`` in training; audio and video are optional inputs.

        Audio-visual models read ``speech`` (wav) and/or ``video`` (mp4/npy);
        ``preprocessor: av`` packs what the modality needs into ``speech``.
        """
        if inference:
            return ("speech",)
        return ("text",)

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False):
        names = ("speech",) if not inference else ()
        return names + ("video",) + super().optional_data_names(train, inference)

    @classmethod
    def main_worker(cls, args: argparse.Namespace):
        """ESPnet's worker, with its ``logging.basicConfig(level=--log_level)``
        made effective: a record logged while espnet2 was imported (in this
        process, also a spawned DDP worker) left a default WARNING handler
        that would turn that call into a no-op and drop every INFO line
        (epoch results, ETA, "resumed from") from ``train.log``.
        ``--init_param`` files are checked (weights only, named in errors)
        before ESPnet loads them with ``weights_only=False``. After training,
        a DDP process group ESPnet initialised is destroyed (ESPnet leaves it
        to interpreter exit, where a gloo worker can abort with "terminate
        called without an active exception")."""
        drop_implicit_log_handlers()
        check_init_params(args.init_param)
        super().main_worker(args)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        """ESPnet's model (``model: msrs`` by default) set up for this run.

        Raises:
            ValueError: A bad ``--msrs_conf``, or a sparse-training mode or
                ``--grad_norm_params`` with a model that is not ``msrs``.
        """
        check_av_packing(args)  # front end and preprocessor agree (ValueError)
        method, selection = build_sparse_method(
            getattr(args, "msrs_conf", None), seed=getattr(args, "seed", 0)
        )
        # Low-rank layers SVD-factorise a dense weight drawn with --init's scheme.
        with espnet_init(getattr(args, "init", None)):
            model = super().build_model(args)
        groups = getattr(args, "grad_norm_params", None)
        if not isinstance(model, MSRSESPnetModel):
            if method is not None or groups:
                raise ValueError(
                    f"msrs_conf.mode={method.name if method else 'none'} and "
                    f"--grad_norm_params need model: {MODEL_NAME} (espnet2's ASR "
                    f"model that owns them); got model: {args.model}"
                )
            return model
        if groups is None:
            groups = default_grad_norm_params(model)
        model.setup_training(method, selection, seed=getattr(args, "seed", 0),
                             grad_norm_params=groups)
        return model

    @classmethod
    def build_optimizers(cls, args, model):
        return build_msrs_optimizers(args, model)


def add_msrs_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--msrs_conf`` and ``--grad_norm_params`` options."""
    group = parser.add_argument_group("MSRS related")
    group.add_argument(
        "--msrs_conf",
        action=NestedDictAction,
        default=dict(),
        help="Sparse training of this run: mode (one of "
        f"{'|'.join(MODES)}), include/exclude (parameter-name regexes of "
        "maskable Linear/Conv weights), and the mode's options: search: mu, rho, "
        "varsigma (eq. 3), tau_forward, tau_backward, mask_penalty (lambda), "
        "penalty_mode (loss: eq. 7, lambda*sum(phi) in the loss | direct: eq. 5, "
        "phi -= lambda after each phi step), epsilon, min_search_epochs; "
        "sparse/grad_masked: mask_file; set/rigl/gmp/chase: "
        "see espnet_msrs.sparsity.baselines",
    )
    group.add_argument(
        "--grad_norm_params",
        action=NestedDictAction,
        default=None,
        help="stats key -> parameter-name regex; the L2 norm of their gradient is "
        "reported every step (before clipping). Default: grad_norm_enc0_ffn = the "
        "first of these that matches: "
        f"{list(DEFAULT_GRAD_NORM_PARAMS.values())}",
    )
