#!/usr/bin/env python3
"""Training-step benchmark: dense vs LR-SMS, MSRS, sparse baselines, LayerScale.

Builds the same ESPnet ASR model (espnet2 ``ESPnetASRModel``: our Conformer
encoder and Transformer decoder, CTC weight 0.1, label smoothing 0.1) in
several variants and measures, interleaved round-robin in one process:

* training-step time (forward, backward, gradient clipping at 5.0, AdamW
  step(s), ``zero_grad``): median, quartiles and minimum over ``--repeats``
  rounds after ``--warmup`` rounds; every round visits every variant, each
  round starting one variant later, so slow phases of a shared machine hit
  all variants alike;
* peak memory of a training step (see *Memory* below);
* parameter counts (θ; MSRS mask logits φ; non-zero weights);
* FLOPs of a training step (forward and backward) counted by torch's
  ``FlopCounterMode`` (:func:`bench.common.flop_counter`, which corrects its
  count of a grouped convolution's backward): the matrix products and
  convolutions, from their shapes (every Linear/Conv, factors of low-rank
  layers included, the attention products and the depthwise convolution);
  elementwise work (masks, activations, norms, dropout) and the optimizer
  are not counted;
* where the step's time goes (CPU): a profile of one step split into the
  operators whose FLOPs are counted (matrix products and convolutions) and
  the rest, which explains how close a low-rank variant comes to its FLOP
  limit (``--no_profile`` skips it).

Variants (``--variants``, default all) are the rows of :data:`VARIANTS`; each
names a *kind* of :data:`KINDS`, which says how the model is built and what
is attached to it (masks, hooks, a second optimizer, a per-step callback).
A new row is one entry in :data:`VARIANTS`; a new method one entry in
:data:`KINDS`.

Methods that update their masks every ΔT steps (the Table 4 baselines) are
timed twice per round: an ordinary step (the row's step time) and, right
after it, a step at which the masks are updated (the method's step counter
is set so, early in a run); the update's cost over one interval is
``(update step − ordinary step) / (ΔT · ordinary step)``.

======================== ====================================================
``dense``                baseline (every linear dense)
``lr_all_a025``          LR-SMS Table I: MHSA & FFN low rank, α = 0.25
``lr_all_a012``          LR-SMS Table I: MHSA & FFN low rank, α = 0.12
``lr_mhsa_a012``         LR-SMS Table I: MHSA only, α = 0.12
``lr_ffn_a025``          LR-SMS Table I: FFN only, α = 0.25
``lr_sms_m010-020_f020-040``  LR-SMS Table II: MHSA [0.1, 0.2], FFN [0.2, 0.4]
``lr_sms_m010-020_f020-050``  LR-SMS Table II: MHSA [0.1, 0.2], FFN [0.2, 0.5]
``msrs_search``          MSRS mask search: every Linear/Conv weight masked
                         (eq. 3-6), loss + λΣφ (eq. 7) with
                         :class:`MSRSSearch`, two AdamW optimizers
``msrs_sparse``          MSRS sparse retraining: dense layers +
                         :class:`MaskState` (exact zeros) with a
                         magnitude mask of ``--sparsity`` (default 40 %)
``layerscale``           LayerScale on every residual branch
``set`` ``rigl``         MSRS Table 4 baselines through the shared mask
``gmp`` ``chase``        mechanism (``MaskedTraining``: ``msrs_conf.mode``,
                         every Linear/Conv weight, ``--sparsity``, the
                         papers' ΔT: 100, CHASE 1000)
======================== ====================================================

Model (defaults): 768 wide, 12 heads, FFN 3072, vocabulary 5000, the ASR
config of LR-SMS (macaron Conformer with relative positions, kernel 31,
swish, ``input_layer: linear``) but with **2 encoder blocks and 1 decoder
block** (instead of 12 and 6) and batches of **8 × 150 frames** (6 s at
25 fps; 1200 frames per step, half of the papers' 2400 per GPU) of 512-dim
features, i.e. the output of the papers' ResNet front end, which is not part
of the benchmark, and 8 × 30 tokens.  Fewer blocks keep a CPU run short.  To
keep the rank schedules of Table II meaningful with fewer blocks, a schedule
``[α_i, α_f]`` of the full-depth model (``--full_encoder_blocks 12``,
``--full_decoder_blocks 6``) is shifted so that the kept blocks have the
ranks of evenly spaced blocks of the full model
(:func:`depth_equivalent_alpha`; the mean α, hence the FLOP share, is that of
the full model).  Parameter counts of the full-depth model come from a build
on the meta device; its FLOPs from training steps on one and on two
utterances (:func:`full_depth_counts`), counted once per distinct set of
matrix products (the MSRS and LayerScale variants add only elementwise work
to dense's).

Memory:
    ``peak_mb`` = bytes of tensors alive before the step (parameters,
    buffers, optimizer states, fixed masks) + the peak of bytes allocated and
    not yet freed during one (untimed) training step.  On CUDA the latter is
    ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` at the
    start of the step; on CPU it is the running sum of the allocation and
    free events of PyTorch's CPU allocator recorded by
    ``torch.profiler(profile_memory=True)``.  This is the quantity of
    ``torch.cuda.max_memory_allocated`` on both devices (tensor bytes, not
    the process RSS: allocator caching and MKL scratch buffers are excluded).

Initialisation: low-rank variants draw their factors like ``nn.Linear``
instead of computing the SVD of eq. 1 (:func:`random_lowrank_init`; starting
values do not change the cost of a step, and the SVDs of the full-depth
model are slow on a small CPU).  The SVD cost is measured once per layer
shape and reported per variant for the full-depth model; ``--svd_init``
builds with the real initialisation.

Threads: on CPU the benchmark uses **one** intra-op thread unless
``--threads`` says otherwise: on a machine shared with other jobs, OpenMP
barriers with more threads than free cores make steps slow and erratic, while
with one thread every variant is slowed alike and the ratios are stable.  On
a dedicated machine pass ``--threads`` = the number of cores.

Subnormal numbers: x86 CPUs take microcode assists, many times slower, for
arithmetic with subnormal operands or results.  The mask search's effective
weights ``θ·σ(τ_f φ)`` in the far tail of the sigmoid are tiny (its subnormal
ones are flushed by the masked layers), and their products with small
gradients in the backward matrix products are subnormal.
``--flush_denormal`` runs every variant with ``torch.set_flush_denormal(True)``
(FTZ/DAZ: such operands and results become 0), which measures that cost.

What limits the ratios: the per-step work that does not shrink with the
FLOPs of the linear layers (dropout, the depthwise convolution, norms,
softmax, CTC, the optimizer) caps the LR-SMS speed-up below its FLOP limit,
and thin matrix products run at a lower rate than wide ones; the profile
reports both.  The per-parameter work of MSRS (mask product and its
gradients, φ's optimizer, the penalty and the mask statistics; fixed-mask
hooks in sparse retraining) is independent of the batch, so its share
shrinks as the frames per step grow (the papers train with 1600-2400 frames
per GPU; the default here is 1200).

The MSRS variants use the library calls of ``MSRSASRTask.build_model`` /
``build_msrs_optimizers`` (``MSRSESPnetModel.setup_training`` with
:class:`MSRSSearch` and ``include: ['.*']``, :class:`MaskState` and
``attach_optimizer``; θ clipped and stepped by one AdamW with weight decay,
φ by another without) without importing ``espnet2.tasks``.

Usage::

    python bench/train_step.py                       # defaults, CPU
    python bench/train_step.py --device cuda --out exp/benchmark/gpu.json
    python bench/train_step.py --tiny                # seconds; smoke test

Prints a table and a "against the limit" summary, writes everything
(including every sample) as JSON (``--out``).
"""

import argparse
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union
from unittest import mock

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # silence kineto's "no GPU" line

if __package__ in (None, ""):  # run as a script: python bench/train_step.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench import common  # noqa: E402
from espnet_msrs.utils.cli import parse_tool_args  # noqa: E402

logger = logging.getLogger(__name__)

Alpha = Union[float, List[float]]

#: Variant name -> specification (``kind`` of :data:`KINDS`, its options, paper row).
VARIANTS: Dict[str, Dict[str, Any]] = {
    "dense": {"kind": "dense", "paper": "dense baseline"},
    "lr_all_a025": {"kind": "lowrank", "mhsa": 0.25, "ffn": 0.25,
                    "paper": "LR-SMS Table I: MHSA&FFN alpha=0.25"},
    "lr_all_a012": {"kind": "lowrank", "mhsa": 0.12, "ffn": 0.12,
                    "paper": "LR-SMS Table I: MHSA&FFN alpha=0.12"},
    "lr_mhsa_a012": {"kind": "lowrank", "mhsa": 0.12, "ffn": None,
                     "paper": "LR-SMS Table I: MHSA only alpha=0.12"},
    "lr_ffn_a025": {"kind": "lowrank", "mhsa": None, "ffn": 0.25,
                    "paper": "LR-SMS Table I: FFN only alpha=0.25"},
    "lr_sms_m010-020_f020-040": {
        "kind": "lowrank", "mhsa": [0.1, 0.2], "ffn": [0.2, 0.4],
        "paper": "LR-SMS Table II: MHSA [0.1,0.2] FFN [0.2,0.4]"},
    "lr_sms_m010-020_f020-050": {
        "kind": "lowrank", "mhsa": [0.1, 0.2], "ffn": [0.2, 0.5],
        "paper": "LR-SMS Table II: MHSA [0.1,0.2] FFN [0.2,0.5]"},
    "msrs_search": {"kind": "msrs_search",
                    "paper": "MSRS mask search (Alg. 1, first loop)"},
    "msrs_sparse": {"kind": "msrs_sparse",
                    "paper": "MSRS sparse retraining (Alg. 1, second loop)"},
    "layerscale": {"kind": "layerscale", "paper": "LayerScale (MSRS Table 1)"},
    "set": {"kind": "set", "paper": "MSRS Table 4: SET (ERK, prune-and-regrow)"},
    "rigl": {"kind": "rigl", "paper": "MSRS Table 4: RigL (ERK, gradient regrowth)"},
    "gmp": {"kind": "gmp", "paper": "MSRS Table 4: GMP (gradual magnitude pruning)"},
    "chase": {"kind": "chase", "paper": "MSRS Table 4: CHASE (channel-aware)"},
}

#: The sparse-training baselines of MSRS Table 4 (``msrs_conf.mode``), each a
#: kind of its own, at the papers' settings and ``--sparsity``.
SPARSE_BASELINES = ("set", "rigl", "gmp", "chase")

#: The goals of issue 7 (ratios measured in one run).
GOALS = {
    "lr_sms_speedup": ("lr_sms_m010-020_f020-040", 1.5),
    "lr_sms_flop_efficiency": ("lr_sms_m010-020_f020-040", 0.85),
    "lr_sms_memory_ratio": ("lr_sms_m010-020_f020-040", 0.8),
    "msrs_search_step_ratio": ("msrs_search", 1.15),
    "msrs_sparse_step_ratio": ("msrs_sparse", 1.05),
    # issue 13: a baseline's mask updates add at most 5 % over an interval
    **{f"{m}_update_overhead": (m, 0.05) for m in SPARSE_BASELINES},
}

_MIB = 2.0**20
#: Profiler operators that do the work FlopCounterMode counts (matrix
#: products and convolutions, forward and backward).
_FLOP_OPS = re.compile(
    r"^aten::(mm|addmm|bmm|baddbmm|_?\w*convolution\w*|_slow_conv\w*|thnn_conv\w*)$")


@dataclasses.dataclass
class BenchConfig:
    """Model, batch and measurement settings (see ``--help``)."""

    output_size: int = 768
    attention_heads: int = 12
    linear_units: int = 3072
    encoder_blocks: int = 2
    decoder_blocks: int = 1
    full_encoder_blocks: int = 12
    full_decoder_blocks: int = 6
    input_size: int = 512
    vocab_size: int = 5000
    batch_size: int = 8
    frames: int = 150
    tokens: int = 30
    warmup: int = 1
    repeats: int = 5
    sparsity: float = 0.4
    adamw_impl: str = "fused"
    device: str = "cpu"
    threads: Optional[int] = None
    seed: int = 0
    flush_denormal: bool = False
    memory: bool = True
    profile: bool = True
    svd_init: bool = False

    @classmethod
    def tiny(cls, **overrides: Any) -> "BenchConfig":
        """Seconds-long smoke-test configuration (64 wide, 1 block each)."""
        conf = dict(output_size=64, attention_heads=4, linear_units=256,
                    encoder_blocks=1, decoder_blocks=1, full_encoder_blocks=2,
                    full_decoder_blocks=2, input_size=32, vocab_size=50,
                    batch_size=2, frames=20, tokens=5, warmup=1, repeats=2)
        conf.update(overrides)
        return cls(**conf)


# --------------------------------------------------------------------- model
def depth_equivalent_alpha(alpha: Optional[Alpha], full_blocks: int,
                           kept_blocks: int) -> Optional[Alpha]:
    """Rank schedule for a model of ``kept_blocks`` standing in for ``full_blocks``.

    LR-SMS eq. 2 gives block ``b`` of ``B`` blocks ``α_b = α_i + b·Δ/B``
    (``Δ = α_f − α_i``).  The ``k`` kept blocks stand for the evenly spaced
    (fractional) blocks ``b_j = (j + ½)·B/k − ½`` of the full model (segment
    centres); with eq. 2 on ``k`` blocks this is the shifted schedule
    ``[α_i + s, α_f + s]`` with ``s = Δ·(B/k − 1)/(2B)``.  The mean α of the
    kept blocks then equals the mean over the full model.

    Args:
        alpha: α, ``[α_i, α_f]`` or None (group not factorised).
        full_blocks: B of the full-depth model.
        kept_blocks: k, blocks actually built.

    Returns:
        The schedule to pass to the k-block model (a uniform α unchanged).
    """
    if alpha is None or not isinstance(alpha, (list, tuple)):
        return alpha
    alpha_i, alpha_f = float(alpha[0]), float(alpha[1])
    if kept_blocks >= full_blocks:
        return [alpha_i, alpha_f]
    shift = (alpha_f - alpha_i) * (full_blocks / kept_blocks - 1.0) / (2.0 * full_blocks)
    return [alpha_i + shift, alpha_f + shift]


def build_model(spec: Dict[str, Any], conf: BenchConfig, full_depth: bool = False
                ) -> nn.Module:
    """The variant's ``MSRSESPnetModel`` (dense init drawn from ``conf.seed``).

    Args:
        spec: An entry of :data:`VARIANTS`.
        conf: Benchmark configuration.
        full_depth: Build ``full_*_blocks`` blocks with the paper schedule
            (used on the meta device for parameter counts).

    Returns:
        The model on the current default device (MSRS masks not yet applied).
    """
    from espnet2.asr.ctc import CTC

    from espnet_msrs.asr.decoder.transformer_decoder import MSRSTransformerDecoder
    from espnet_msrs.asr.espnet_model import MSRSESPnetModel
    from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder

    enc_blocks = conf.full_encoder_blocks if full_depth else conf.encoder_blocks
    dec_blocks = conf.full_decoder_blocks if full_depth else conf.decoder_blocks
    torch.manual_seed(conf.seed)
    # Sizes and dropout shared by the encoder and the decoder (paper values).
    shared = dict(attention_heads=conf.attention_heads, linear_units=conf.linear_units,
                  dropout_rate=0.1, positional_dropout_rate=0.1)
    encoder = MSRSConformerEncoder(
        conf.input_size,
        output_size=conf.output_size,
        num_blocks=enc_blocks,
        attention_dropout_rate=0.1,
        input_layer="linear",
        normalize_before=True,
        macaron_style=True,
        rel_pos_type="latest",
        pos_enc_layer_type="rel_pos",
        selfattention_layer_type="rel_selfattn",
        activation_type="swish",
        use_cnn_module=True,
        cnn_module_kernel=31,
        **shared,
        **KINDS[spec["kind"]].model_options(spec, conf.full_encoder_blocks, enc_blocks),
    )
    decoder = MSRSTransformerDecoder(
        conf.vocab_size,
        conf.output_size,
        num_blocks=dec_blocks,
        self_attention_dropout_rate=0.1,
        src_attention_dropout_rate=0.1,
        **shared,
        **KINDS[spec["kind"]].model_options(spec, conf.full_decoder_blocks, dec_blocks),
    )
    ctc = CTC(conf.vocab_size, conf.output_size)
    token_list = (["<blank>"] + [f"tok{i}" for i in range(conf.vocab_size - 2)]
                  + ["<sos/eos>"])
    return MSRSESPnetModel(
        vocab_size=conf.vocab_size,
        token_list=token_list,
        frontend=None,
        specaug=None,
        normalize=None,
        preencoder=None,
        encoder=encoder,
        postencoder=None,
        decoder=decoder,
        ctc=ctc,
        joint_network=None,
        ctc_weight=0.1,
        lsm_weight=0.1,
        length_normalized_loss=False,
        report_cer=False,
        report_wer=False,
    )

@contextlib.contextmanager
def random_lowrank_init() -> Iterator[None]:
    """Within the block, :class:`LowRankLinear` skips the SVD of eq. 1.

    Its factors are drawn like the weights of the two ``nn.Linear`` that hold
    them (the bias is still copied).  Starting values do not change the cost
    of a training step, and the SVDs of a 768-wide model take minutes on a
    small CPU (their cost is measured separately, see :func:`svd_init_cost`);
    ``--svd_init`` builds with the real initialisation instead.
    """
    from espnet_msrs.lowrank.lowrank_linear import LowRankLinear

    def draw(self: LowRankLinear, weight: torch.Tensor,
             bias: Optional[torch.Tensor] = None) -> None:
        if weight.is_meta or self.lowrank_u.weight.is_meta:
            return
        with torch.no_grad():
            self.lowrank_v.reset_parameters()
            self.lowrank_u.reset_parameters()
            if bias is not None:
                self.lowrank_u.bias.copy_(bias.detach())

    with mock.patch.object(LowRankLinear, "svd_init_", draw):
        yield


def svd_init_cost(conf: BenchConfig) -> Dict[str, float]:
    """Seconds of one SVD initialisation (eq. 1) per distinct layer shape.

    Returns:
        ``"<m>x<n>"`` -> seconds of ``LowRankLinear.from_linear`` (rank
        ``min(m, n)/4``; the SVD is computed in full whatever the rank).
    """
    from espnet_msrs.lowrank.lowrank_linear import LowRankLinear

    d, u = conf.output_size, conf.linear_units
    LowRankLinear.from_linear(nn.Linear(8, 8), 2)  # first-call costs (LAPACK load)
    out = {}
    for m, n in ((d, d), (u, d), (d, u)):
        dense = nn.Linear(n, m)
        t0 = time.perf_counter()
        LowRankLinear.from_linear(dense, max(1, min(m, n) // 4))
        out[f"{m}x{n}"] = time.perf_counter() - t0
    return out


def magnitude_masks(model: nn.Module, sparsity: float) -> Dict[str, torch.Tensor]:
    """Keep the ``1 − sparsity`` largest-|θ| entries of every Linear/Conv weight.

    Stands in for a mask found by the search (retraining speed does not
    depend on the pattern: the kernels are dense).

    Returns:
        Weight name -> bool mask (True = kept).
    """
    from espnet_msrs.sparsity.selection import MASKED_CLASSES

    masks = {}
    for name, module in model.named_modules():
        if type(module) not in MASKED_CLASSES:
            continue
        weight = module.weight.detach()
        k = int(sparsity * weight.numel())
        if k == 0:
            masks[f"{name}.weight"] = torch.ones_like(weight, dtype=torch.bool)
            continue
        threshold = weight.abs().flatten().kthvalue(k).values
        masks[f"{name}.weight"] = weight.abs() > threshold
    return masks


def _adamw(params: List[nn.Parameter], weight_decay: float, impl: str
           ) -> torch.optim.Optimizer:
    flags = {"fused": {"fused": True}, "foreach": {"foreach": True},
             "forloop": {"foreach": False}, "default": {}}[impl]
    return torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.98),
                             weight_decay=weight_decay, **flags)


# --------------------------------------------------------- kinds of variant
@dataclasses.dataclass
class Variant:
    """A built variant: model, its optimizers and what its step needs.

    ``on_step`` (if set) runs in every timed step after gradient clipping and
    before the optimizer steps (where a sparse-training method updates its
    masks); ``state`` keeps hooks and controllers alive.
    """

    name: str
    spec: Dict[str, Any]
    model: nn.Module
    optimizers: List[torch.optim.Optimizer]
    clip_groups: List[List[nn.Parameter]]
    extra_tensors: List[torch.Tensor] = dataclasses.field(default_factory=list)
    on_step: Optional[Callable[[], None]] = None
    state: Any = None
    mask_updates: Optional["MaskUpdates"] = None


@dataclasses.dataclass
class MaskUpdates:
    """A method that updates its masks every ``interval`` optimizer steps.

    Each timed round then takes two steps of the variant: an ordinary one
    (its row's step time) and, right after it, one at which the masks are
    updated (the update's cost).

    Attributes:
        interval: ΔT, optimizer steps between two updates.
        arm: ``arm(update)`` makes the next step an update step (True) or an
            ordinary one (False).
        count: Mask updates done so far.
    """

    interval: int
    arm: Callable[[bool], None]
    count: Callable[[], int]


def _no_options(spec: Dict[str, Any], full_blocks: int, kept_blocks: int
                ) -> Dict[str, Any]:
    return {}


def _lowrank_options(spec: Dict[str, Any], full_blocks: int, kept_blocks: int
                     ) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    for group in ("mhsa", "ffn"):
        alpha = depth_equivalent_alpha(spec[group], full_blocks, kept_blocks)
        if alpha is not None:
            options[f"{group}_linear"] = "lowrank"
            options[f"{group}_alpha"] = alpha
    return options


def _layer_scale_options(spec: Dict[str, Any], full_blocks: int, kept_blocks: int
                         ) -> Dict[str, Any]:
    return {"layer_scale": True}


def _setup_mask_search(model: nn.Module, conf: "BenchConfig") -> None:
    from espnet_msrs.sparsity.msrs_search import MSRSSearch
    from espnet_msrs.sparsity.selection import MaskSelection

    model.setup_training(MSRSSearch(mask_penalty=2e-10), MaskSelection([".*"]))


def _attach_fixed_mask(variant: Variant, conf: "BenchConfig") -> None:
    from espnet_msrs.sparsity.mask_state import MaskState

    masks = magnitude_masks(variant.model, conf.sparsity)
    params = dict(variant.model.named_parameters())
    state = MaskState({n: params[n] for n in masks}, masks, zero_weights=True)
    state.attach_optimizer(variant.optimizers[0])
    variant.extra_tensors = list(state.masks.values())
    variant.state = state


def _setup_sparse_method(method: str, model: nn.Module, conf: "BenchConfig") -> None:
    from espnet_msrs.sparsity.method_choices import build_sparse_method

    sparse, selection = build_sparse_method({"mode": method, "sparsity": conf.sparsity},
                                            seed=conf.seed)
    model.setup_training(sparse, selection, seed=conf.seed)


def _attach_sparse_method(variant: Variant, conf: "BenchConfig") -> None:
    """The method on θ's optimizer, as ``MSRSTrainer`` attaches it, and its
    step counter set by :class:`MaskUpdates` so that the timed steps are
    ordinary or update steps early in a run (≤ 5 % of it: before every
    method's end fraction)."""
    sparse = variant.model.sparse_method
    sparse.attach_optimizers(variant.optimizers)
    interval = sparse.strategy.update_interval
    rounds = conf.warmup + conf.repeats
    sparse.start(variant.model, steps_per_epoch=20 * (2 * rounds + 3) * interval,
                 max_epoch=1)
    armed = {"round": 0}

    def arm(update: bool) -> None:
        if update:  # the next step, (2k + 1)·ΔT, updates the masks
            sparse.steps = (2 * armed["round"] + 1) * interval - 1
        else:  # the next step, 2k·ΔT + 1, does not
            armed["round"] += 1
            sparse.steps = 2 * armed["round"] * interval

    variant.mask_updates = MaskUpdates(interval, arm, lambda: sparse.mask_updates)
    variant.extra_tensors = list(sparse.mask_state.masks.values())
    variant.state = sparse


@dataclasses.dataclass(frozen=True)
class Kind:
    """How a kind of variant is built (see :func:`build_variant`).

    Attributes:
        model_options: ``(spec, full_blocks, kept_blocks) -> dict`` of extra
            encoder/decoder keyword arguments.
        prepare: ``(model, conf)``, before the optimizers are made (may add
            parameters, e.g. mask logits).
        attach: ``(variant, conf)``, after the optimizers are made (hooks,
            ``on_step``, ``extra_tensors``, ``state``).
        dense_matmuls: The variant's matrix products are dense's (it adds
            only elementwise work), so it shares dense's full-depth FLOPs.
    """

    model_options: Callable[..., Dict[str, Any]] = _no_options
    prepare: Optional[Callable[[nn.Module, "BenchConfig"], None]] = None
    attach: Optional[Callable[[Variant, "BenchConfig"], None]] = None
    dense_matmuls: bool = True


#: Kind name -> how it is built.
KINDS: Dict[str, Kind] = {
    "dense": Kind(),
    "lowrank": Kind(model_options=_lowrank_options, dense_matmuls=False),
    "layerscale": Kind(model_options=_layer_scale_options),
    "msrs_search": Kind(prepare=_setup_mask_search),
    "msrs_sparse": Kind(attach=_attach_fixed_mask),
    **{method: Kind(prepare=functools.partial(_setup_sparse_method, method),
                    attach=_attach_sparse_method)
       for method in SPARSE_BASELINES},
}


def build_variant(name: str, conf: "BenchConfig", device: torch.device) -> Variant:
    """Build a variant on ``device`` with its optimizers and its kind's machinery.

    θ (every parameter but the mask logits φ) is clipped and stepped by one
    AdamW with weight decay; φ, if any, by a second one without.
    """
    spec = VARIANTS[name]
    kind = KINDS[spec["kind"]]
    if spec["kind"] == "lowrank" and not conf.svd_init:
        with random_lowrank_init():
            model = build_model(spec, conf)
    else:
        model = build_model(spec, conf)
    if kind.prepare is not None:
        kind.prepare(model, conf)
    model.to(device)
    model.train()
    named = list(model.named_parameters())
    phi = [p for n, p in named if n.endswith("mask_logits")]
    theta = [p for n, p in named if not n.endswith("mask_logits")]
    variant = Variant(name, spec, model, [_adamw(theta, 0.03, conf.adamw_impl)], [theta])
    if phi:
        variant.optimizers.append(_adamw(phi, 0.0, conf.adamw_impl))
        variant.clip_groups.append(phi)
    if kind.attach is not None:
        kind.attach(variant, conf)
    return variant


def make_batch(conf: "BenchConfig", device: torch.device, batch_size: Optional[int] = None
               ) -> Dict[str, torch.Tensor]:
    """Random features (B, T, input_size) and token sequences (B, L) of equal lengths."""
    batch_size = batch_size or conf.batch_size
    gen = torch.Generator().manual_seed(conf.seed + 1)
    batch = {
        "speech": torch.randn(batch_size, conf.frames, conf.input_size, generator=gen),
        "speech_lengths": torch.full((batch_size,), conf.frames, dtype=torch.long),
        "text": torch.randint(1, conf.vocab_size - 1, (batch_size, conf.tokens),
                              generator=gen),
        "text_lengths": torch.full((batch_size,), conf.tokens, dtype=torch.long),
    }
    return {k: v.to(device) for k, v in batch.items()}


# ------------------------------------------------------------------ counting
def parameter_counts(variant: Variant) -> Dict[str, int]:
    """θ (everything but φ), φ, and non-zero θ of the prunable weights."""
    from espnet_msrs.sparsity.folding import binary_masks
    from espnet_msrs.sparsity.selection import MASKED_CLASSES

    named = dict(variant.model.named_parameters())
    phi = sum(p.numel() for n, p in named.items() if n.endswith("mask_logits"))
    theta = sum(p.numel() for n, p in named.items() if not n.endswith("mask_logits"))
    masks = binary_masks(variant.model)
    if masks:
        zeros = sum(int((~m).sum()) for m in masks.values())
    else:
        zeros = sum(
            int((m.weight == 0).sum())
            for m in variant.model.modules() if type(m) in MASKED_CLASSES
        )
    return {"theta": int(theta), "mask_logits": int(phi),
            "nonzero_theta": int(theta - zeros)}


def count_step_flops(model: nn.Module, batch: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """FLOPs of one training step's forward and backward (:func:`flop_counter`).

    Runs the forward and the backward of ``batch`` (no optimizer step; the
    gradients are dropped afterwards, the weights are unchanged).

    Returns:
        ``forward``, ``backward`` and ``train_total`` FLOPs, and ``by_op``:
        aten operator -> FLOPs of the whole step.
    """
    forward, backward = common.flop_counter(), common.flop_counter()
    with forward:
        loss, _, _ = model(**batch)
    with backward:
        loss.backward()
    model.zero_grad(set_to_none=True)
    by_op: Dict[str, int] = {}
    for counter in (forward, backward):
        for op, flops in counter.get_flop_counts().get("Global", {}).items():
            by_op[str(op)] = by_op.get(str(op), 0) + int(flops)
    f, b = forward.get_total_flops(), backward.get_total_flops()
    return {"forward": int(f), "backward": int(b), "train_total": int(f + b),
            "by_op": by_op}


def full_depth_counts(name: str, conf: "BenchConfig",
                      flops_cache: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Parameters (meta device) and training-step FLOPs of the full-depth model.

    FLOPs: batches of one and two utterances through the full-depth model
    (built on the CPU); every product is per utterance or shared by the batch
    (the relative-position projection), so a batch of B costs
    ``f(1) + (B − 1)·(f(2) − f(1))``. Kinds whose matrix products are dense's
    reuse dense's count (``flops_cache``, keyed ``"dense"`` or the variant
    name).
    """
    from espnet_msrs.lowrank.lowrank_linear import LowRankLinear
    from espnet_msrs.sparsity.selection import MASKED_CLASSES

    spec = VARIANTS[name]
    with torch.device("meta"):
        model = build_model(spec, conf, full_depth=True)
    theta = sum(p.numel() for p in model.parameters())
    shapes: Dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, LowRankLinear):
            key = f"{module.out_features}x{module.in_features}"
            shapes[key] = shapes.get(key, 0) + 1
    mask_logits = 0
    if spec["kind"] == "msrs_search":
        mask_logits = sum(m.weight.numel() for m in model.modules()
                          if type(m) in MASKED_CLASSES)
    del model
    key = "dense" if KINDS[spec["kind"]].dense_matmuls else name
    if key not in flops_cache:
        build_spec = VARIANTS["dense"] if key == "dense" else spec
        with random_lowrank_init():
            model = build_model(build_spec, conf, full_depth=True)
        model.train()
        one, two = (count_step_flops(model, make_batch(conf, torch.device("cpu"), b))
                    for b in (1, 2))
        del model
        gc.collect()
        flops_cache[key] = {k: one[k] + (conf.batch_size - 1) * (two[k] - one[k])
                            for k in ("forward", "backward", "train_total")}
    return {"theta": int(theta), "mask_logits": int(mask_logits),
            "flops": dict(flops_cache[key]), "lowrank_shapes": shapes}


# ------------------------------------------------------------------- running
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(variant: Variant, batch: Dict[str, torch.Tensor],
               device: torch.device) -> Dict[str, float]:
    """One training step.

    Returns:
        Wall time of its phases (``forward``, ``backward``, ``optimizer``:
        clipping, ``on_step``, steps and ``zero_grad``) and of the whole
        ``step``, and the process CPU time of the step (``step_cpu``), in
        seconds.
    """
    _sync(device)
    c0 = time.process_time()
    t0 = time.perf_counter()
    loss, _, _ = variant.model(**batch)
    _sync(device)
    t1 = time.perf_counter()
    loss.backward()
    _sync(device)
    t2 = time.perf_counter()
    for group in variant.clip_groups:
        torch.nn.utils.clip_grad_norm_(group, max_norm=5.0)
    if variant.on_step is not None:
        variant.on_step()
    for optimizer in variant.optimizers:
        optimizer.step()
    for optimizer in variant.optimizers:
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    t3 = time.perf_counter()
    c3 = time.process_time()
    return {"forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2,
            "step": t3 - t0, "step_cpu": c3 - c0}


def resident_bytes(variant: Variant) -> int:
    """Bytes of the unique storages of parameters, grads, buffers, optimizer
    states and fixed masks of a variant."""
    tensors: List[torch.Tensor] = []
    for param in variant.model.parameters():
        tensors.append(param)
        if param.grad is not None:
            tensors.append(param.grad)
    tensors.extend(variant.model.buffers())
    for optimizer in variant.optimizers:
        for state in optimizer.state.values():
            tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    tensors.extend(variant.extra_tensors)
    seen = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return int(sum(seen.values()))


def measure_memory(variant: Variant, batch: Dict[str, torch.Tensor],
                   device: torch.device) -> Dict[str, Any]:
    """Peak tensor memory of one training step (see the module docstring)."""
    gc.collect()
    resident = resident_bytes(variant)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        train_step(variant, batch, device)
        transient = torch.cuda.max_memory_allocated(device) - base
        method = "torch.cuda.max_memory_allocated"
    else:
        from torch.profiler import ProfilerActivity, profile

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with profile(activities=[ProfilerActivity.CPU],
                         profile_memory=True) as prof:
                train_step(variant, batch, device)
        events = sorted(
            (e.start_ns(), e.nbytes())
            for e in prof.profiler.kineto_results.events()
            if e.nbytes() != 0 and e.device_type() == torch.autograd.DeviceType.CPU
        )
        running = transient = 0
        for _, nbytes in events:
            running += nbytes
            transient = max(transient, running)
        method = "torch.profiler CPU allocator events"
    return {"resident_mb": resident / _MIB, "transient_peak_mb": transient / _MIB,
            "peak_mb": (resident + transient) / _MIB, "method": method}


def profile_step(variant: Variant, batch: Dict[str, torch.Tensor],
                 device: torch.device, steps: int = 3, top: int = 12) -> Dict[str, Any]:
    """Where (untimed) training steps' time goes, by operator.

    Self time of every operator and profiler range (CPU; device time on
    CUDA) over ``steps`` steps from ``torch.profiler``, split into the
    operators whose FLOPs ``FlopCounterMode`` counts (:data:`_FLOP_OPS`:
    matrix products and convolutions) and the rest (elementwise operators,
    copies, the optimizer, and the autograd engine's own time).

    Returns:
        ``flop_ops_share`` (of the profiled time), ``flop_ops_us``,
        ``rest_us`` and ``top_rest``: the ``top`` largest other operators
        with their share.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with profile(activities=activities) as prof:
            for _ in range(steps):
                train_step(variant, batch, device)
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    times = {op.key: float(getattr(op, attr)) for op in prof.key_averages()}
    total = sum(times.values())
    flop = sum(t for k, t in times.items() if _FLOP_OPS.match(k))
    rest = sorted(((k, t) for k, t in times.items() if not _FLOP_OPS.match(k)),
                  key=lambda kv: -kv[1])
    return {"flop_ops_share": flop / total if total else None,
            "flop_ops_us": flop, "rest_us": total - flop,
            "flop_ops": sorted(k for k in times if _FLOP_OPS.match(k)),
            "top_rest": [{"op": k, "share": t / total} for k, t in rest[:top]]}


def run_benchmark(conf: "BenchConfig", variants: Sequence[str]) -> Dict[str, Any]:
    """Build, count, time (round-robin) and measure every variant.

    Returns:
        The JSON-ready result (``config``, ``machine``, ``variants``,
        ``against_limit``, ``goals``).
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; allowed: {list(VARIANTS)}")
    if "dense" not in variants:
        raise ValueError("--variants must include 'dense' (the reference)")
    device = torch.device(conf.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available")
    threads = torch.get_num_threads()
    if conf.threads:
        torch.set_num_threads(conf.threads)
    elif device.type == "cpu":
        torch.set_num_threads(1)
    if conf.flush_denormal and not torch.set_flush_denormal(True):
        raise ValueError("--flush_denormal: this CPU cannot flush denormals")
    try:
        return _run(conf, variants, device)
    finally:
        torch.set_num_threads(threads)
        if conf.flush_denormal:
            torch.set_flush_denormal(False)


def _run(conf: "BenchConfig", variants: Sequence[str], device: torch.device
         ) -> Dict[str, Any]:
    batch = make_batch(conf, device)
    load_start = common.load_average()
    svd_costs = {}
    if any(VARIANTS[v]["kind"] == "lowrank" for v in variants):
        svd_costs = svd_init_cost(conf)
        logger.info(f"benchmark: svd_init_seconds={svd_costs}")
    built: Dict[str, Variant] = {}
    results: Dict[str, Dict[str, Any]] = {}
    full_flops: Dict[str, Dict[str, Any]] = {}
    for name in variants:
        t0 = time.perf_counter()
        variant = build_variant(name, conf, device)
        built[name] = variant
        flops = count_step_flops(variant.model, batch)
        full = full_depth_counts(name, conf, full_flops)
        full["svd_init_seconds"] = sum(
            count * svd_costs.get(shape, float("nan"))
            for shape, count in full["lowrank_shapes"].items()
        )
        results[name] = {
            "kind": variant.spec["kind"],
            "paper": variant.spec["paper"],
            "params": parameter_counts(variant),
            "flops": flops,
            "full_depth": full,
            "build_seconds": time.perf_counter() - t0,
        }
        plans = {}
        for sub in ("encoder", "decoder"):
            plan = getattr(getattr(variant.model, sub), "linear_plan", {})
            plans[sub] = {k: v["rank"] for k, v in plan.items() if v["type"] == "lowrank"}
        results[name]["ranks"] = plans
        logger.info(f"benchmark: built variant={name} "
                    f"params={results[name]['params']['theta']} "
                    f"train_gflops={flops['train_total'] / 1e9:.2f} "
                    f"seconds={results[name]['build_seconds']:.1f}")

    samples: Dict[str, Dict[str, List[float]]] = {
        n: {"step": [], "step_cpu": [], "forward": [], "backward": [], "optimizer": []}
        for n in variants
    }
    for name in variants:
        if built[name].mask_updates is not None:
            samples[name].update(update_step=[], update_step_cpu=[])
    rounds = conf.warmup + conf.repeats
    t_start = time.perf_counter()
    for r in range(rounds):
        for name in common.rotated(variants, r):
            variant = built[name]
            updates = variant.mask_updates
            if updates is not None:
                updates.arm(False)
            gc.collect()
            times = train_step(variant, batch, device)
            if updates is not None:  # then a step that updates the masks
                updates.arm(True)
                before = updates.count()
                gc.collect()
                update = train_step(variant, batch, device)
                if updates.count() != before + 1:
                    raise RuntimeError(f"{name}: the timed update step did not "
                                       "update the masks")
                times["update_step"] = update["step"]
                times["update_step_cpu"] = update["step_cpu"]
            if r >= conf.warmup:
                for key, value in times.items():
                    samples[name][key].append(value)
        logger.info(f"benchmark: round={r + 1}/{rounds} warmup={r < conf.warmup} "
                    f"elapsed={time.perf_counter() - t_start:.0f}s")
    for name in variants:
        results[name]["time"] = {k: common.summary(v) for k, v in samples[name].items()}
        if built[name].mask_updates is not None:
            results[name]["update_interval"] = built[name].mask_updates.interval
        if conf.memory:
            results[name]["memory"] = measure_memory(built[name], batch, device)
        if conf.profile:
            results[name]["profile"] = profile_step(built[name], batch, device)
    basis = "cpu" if device.type == "cpu" and torch.get_num_threads() == 1 else "wall"
    limits = against_limit(results, basis)
    machine = common.machine_info(device, load_average_start=load_start)
    return {
        "config": dataclasses.asdict(conf),
        "timing_basis": basis,
        "svd_init_seconds_per_layer": svd_costs,
        "machine": machine,
        "variants": results,
        "against_limit": limits,
        "goals": check_goals(limits),
    }


def against_limit(results: Dict[str, Dict[str, Any]], basis: str = "wall"
                  ) -> Dict[str, Dict[str, Any]]:
    """Ratios of every variant to ``dense``.

    * ``step_ratio`` = median over the timed rounds of (variant step time /
      dense step time in the same round), on the ``basis`` clock: ``"cpu"``
      (process CPU time; used on CPU with one thread, where it does not
      count the time the process waits for a core on a shared machine) or
      ``"wall"``; both are also given (``step_ratio_wall``,
      ``step_ratio_cpu``, with quartiles), and ``speedup`` = 1 / step_ratio;
    * ``flop_limit`` = dense / variant training-step FLOPs (the speed-up the
      FLOP reduction allows), ``flop_efficiency`` = speedup / flop_limit;
    * ``memory_ratio``, ``param_ratio`` (θ) and the full-depth FLOP limit;
    * with profiles, the split of the gap to the FLOP limit:
      ``amdahl_limit`` = the speed-up if only dense's FLOP-counted operator
      time shrank with the FLOPs and the rest stayed (``1 / ((1 − s) +
      s / flop_limit)``, s = dense's ``flop_ops_share``);
      ``matmul_speedup`` = dense's / the variant's FLOP-counted operator time
      (each profile's share times the measured step time) and
      ``matmul_efficiency`` = matmul_speedup / flop_limit (below 1: thin
      products run at a lower FLOP rate); ``rest_ratio`` = the variant's /
      dense's other operator time.
    """
    dense = results["dense"]
    out = {}
    for name, res in results.items():
        entry: Dict[str, Any] = {}
        if "time" in res:
            for clock, key in (("wall", "step"), ("cpu", "step_cpu")):
                paired = common.paired_ratio(res["time"][key]["samples"],
                                             dense["time"][key]["samples"])
                entry[f"step_ratio_{clock}"] = paired["median"]
                entry[f"step_ratio_{clock}_p25"] = paired["p25"]
                entry[f"step_ratio_{clock}_p75"] = paired["p75"]
            entry["basis"] = basis
            entry["step_ratio"] = entry[f"step_ratio_{basis}"]
            entry["speedup"] = 1.0 / entry["step_ratio"]
            entry["speedup_from_wall_min"] = (dense["time"]["step"]["min"]
                                              / res["time"]["step"]["min"])
            if "update_step" in res["time"]:
                entry.update(update_cost(res, basis))
                entry["step_ratio_amortised"] = (entry["step_ratio"]
                                                 * (1.0 + entry["update_overhead"]))
        entry["flop_limit"] = dense["flops"]["train_total"] / res["flops"]["train_total"]
        entry["full_depth_flop_limit"] = (dense["full_depth"]["flops"]["train_total"]
                                          / res["full_depth"]["flops"]["train_total"])
        if "speedup" in entry:
            entry["flop_efficiency"] = entry["speedup"] / entry["flop_limit"]
        share = dense.get("profile", {}).get("flop_ops_share")
        own = res.get("profile", {}).get("flop_ops_share")
        if share:
            entry["amdahl_limit"] = 1.0 / ((1.0 - share) + share / entry["flop_limit"])
            if "speedup" in entry:
                entry["amdahl_efficiency"] = entry["speedup"] / entry["amdahl_limit"]
        if share and own and "step_ratio" in entry:
            matmul = entry["step_ratio"] * own
            entry["matmul_speedup"] = share / matmul
            entry["matmul_efficiency"] = entry["matmul_speedup"] / entry["flop_limit"]
            entry["rest_ratio"] = entry["step_ratio"] * (1.0 - own) / (1.0 - share)
        entry["param_ratio"] = res["params"]["theta"] / dense["params"]["theta"]
        entry["full_depth_param_ratio"] = (res["full_depth"]["theta"]
                                           / dense["full_depth"]["theta"])
        if "memory" in res and "memory" in dense:
            entry["memory_ratio"] = res["memory"]["peak_mb"] / dense["memory"]["peak_mb"]
        out[name] = entry
    return out


def update_cost(res: Dict[str, Any], basis: str) -> Dict[str, Any]:
    """Cost of a mask update of a variant with :class:`MaskUpdates`.

    ``update_cost_s`` = median over the rounds of (update step − the
    ordinary step of the same round) on the ``basis`` clock;
    ``update_overhead`` = update_cost_s / (ΔT · median ordinary step), the
    increase of the mean step time over one update interval.
    """
    key = "step" if basis == "wall" else "step_cpu"
    ordinary = res["time"][key]["samples"]
    update = res["time"][f"update_{key}"]["samples"]
    cost = common.summary([u - o for u, o in zip(update, ordinary)])
    interval = res["update_interval"]
    return {"update_interval": interval, "update_cost_s": cost["median"],
            "update_cost_s_p25": cost["p25"], "update_cost_s_p75": cost["p75"],
            "update_overhead": cost["median"] / (interval * res["time"][key]["median"])}


def check_goals(limits: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Each goal of issue 7 with the measured value and whether it is met."""
    keys = {"lr_sms_speedup": "speedup", "lr_sms_flop_efficiency": "flop_efficiency",
            "lr_sms_memory_ratio": "memory_ratio",
            "msrs_search_step_ratio": "step_ratio",
            "msrs_sparse_step_ratio": "step_ratio",
            **{f"{m}_update_overhead": "update_overhead" for m in SPARSE_BASELINES}}
    goals = {}
    for goal, (variant, target) in GOALS.items():
        value = limits.get(variant, {}).get(keys[goal])
        if value is None:
            continue
        at_least = goal in ("lr_sms_speedup", "lr_sms_flop_efficiency")
        met = value >= target if at_least else value <= target
        goals[goal] = {"variant": variant, "value": value,
                       "target": (">= " if at_least else "<= ") + f"{target}",
                       "met": bool(met)}
    return goals


# ------------------------------------------------------------------- output
def format_table(result: Dict[str, Any]) -> str:
    """Plain-text table of a benchmark result (one row per variant)."""
    basis = result.get("timing_basis", "wall")
    header = (f"{'variant':<26} {'params M':>8} {'full M':>7} {'step GF':>7} "
              f"{'FLOP lim':>8} {'wall s med [p25-p75]':>21} {'cpu s':>6} "
              f"{'ratio [p25-p75]':>17} {'speed-up':>8} {'eff':>5} "
              f"{'fwd/bwd/opt s':>15} {'peak MB':>8} {'mem':>5} {'mm %':>5}")
    lines = [f"ratio: median over rounds of variant/dense step time ({basis} "
             "clock); speed-up = 1/ratio; eff = speed-up / FLOP limit; step GF = "
             "forward+backward FLOPs (FlopCounterMode); mm % = time share of the "
             "FLOP-counted operators", header, "-" * len(header)]
    nan = float("nan")
    for name, res in result["variants"].items():
        lim = result["against_limit"][name]
        t = res.get("time", {})
        step = t.get("step")
        wall = (f"{step['median']:.3f} [{step['p25']:.3f}-{step['p75']:.3f}]"
                if step else "-")
        cpu = t["step_cpu"]["median"] if step else nan
        ratio = (f"{lim[f'step_ratio_{basis}']:.3f} [{lim[f'step_ratio_{basis}_p25']:.2f}"
                 f"-{lim[f'step_ratio_{basis}_p75']:.2f}]" if step else "-")
        phases = ("/".join(f"{t[k]['median']:.2f}" for k in
                           ("forward", "backward", "optimizer")) if step else "-")
        mem = res.get("memory")
        share = res.get("profile", {}).get("flop_ops_share")
        lines.append(
            f"{name:<26} {res['params']['theta'] / 1e6:>8.2f} "
            f"{res['full_depth']['theta'] / 1e6:>7.1f} "
            f"{res['flops']['train_total'] / 1e9:>7.1f} {lim['flop_limit']:>7.2f}x "
            f"{wall:>21} {cpu:>6.2f} {ratio:>17} "
            f"{lim.get('speedup', nan):>7.2f}x {lim.get('flop_efficiency', nan):>5.2f} "
            f"{phases:>15} {mem['peak_mb'] if mem else nan:>8.0f} "
            f"{lim.get('memory_ratio', nan):>5.2f} "
            f"{100 * share if share else nan:>5.1f}"
        )
    return "\n".join(lines)


def format_against_limit(result: Dict[str, Any]) -> str:
    """The "against the limit" lines and the goals of issue 7."""
    lim = result["against_limit"]
    lines = []
    dense_profile = result["variants"]["dense"].get("profile")
    if dense_profile:
        top = ", ".join(f"{o['op'].replace('aten::', '')} {100 * o['share']:.1f}%"
                        for o in dense_profile["top_rest"][:6])
        lines.append(f"dense step: {100 * dense_profile['flop_ops_share']:.1f}% in "
                     f"matrix products and convolutions; largest others: {top}")
    for name, res in result["variants"].items():
        entry = lim[name]
        if res["kind"] == "lowrank" and "speedup" in entry:
            split = ""
            if "matmul_efficiency" in entry:
                split = (f"; if only dense's matmul time shrank with the FLOPs: "
                         f"{entry['amdahl_limit']:.2f}x (reached "
                         f"{100 * entry['amdahl_efficiency']:.0f}%); its matmuls "
                         f"{entry['matmul_speedup']:.2f}x faster = "
                         f"{100 * entry['matmul_efficiency']:.0f}% of the FLOP "
                         f"ratio, the rest {entry['rest_ratio']:.2f}x dense's")
            lines.append(
                f"{name}: speed-up {entry['speedup']:.2f}x of a FLOP limit "
                f"{entry['flop_limit']:.2f}x = {100 * entry['flop_efficiency']:.0f}% "
                f"(full depth limit {entry['full_depth_flop_limit']:.2f}x){split}; "
                f"params {entry['param_ratio']:.2f}x (full depth "
                f"{entry['full_depth_param_ratio']:.2f}x); memory "
                f"{entry.get('memory_ratio', float('nan')):.2f}x")
        if res["kind"] == "lowrank" and res["full_depth"].get("svd_init_seconds"):
            lines.append(
                f"{name}: SVD initialisation of the full-depth model "
                f"~{res['full_depth']['svd_init_seconds']:.0f}s on this machine "
                f"({sum(res['full_depth']['lowrank_shapes'].values())} layers)")
        if res["kind"] not in ("dense", "lowrank") and "step_ratio" in entry:
            updates = ""
            if "update_overhead" in entry:
                updates = (f"; one mask update {entry['update_cost_s']:.3f}s "
                           f"[{entry['update_cost_s_p25']:.3f}-"
                           f"{entry['update_cost_s_p75']:.3f}] = "
                           f"{100 * entry['update_overhead']:+.2f}% over "
                           f"ΔT={entry['update_interval']} steps -> "
                           f"{entry['step_ratio_amortised']:.3f}x dense on average")
            lines.append(
                f"{name}: step time {entry['step_ratio']:.3f}x dense "
                f"(overhead {100 * (entry['step_ratio'] - 1):+.1f}%){updates}; memory "
                f"{entry.get('memory_ratio', float('nan')):.2f}x")
    for goal, g in result["goals"].items():
        lines.append(f"goal {goal} ({g['variant']}): {g['value']:.3f} "
                     f"target {g['target']}: {'met' if g['met'] else 'MISSED'}")
    return "\n".join(lines)


_HELP = {
    "encoder_blocks": "Conformer blocks built",
    "decoder_blocks": "Transformer decoder blocks built",
    "full_encoder_blocks": "depth the schedules and full-depth counts refer to",
    "full_decoder_blocks": "depth the schedules and full-depth counts refer to",
    "input_size": "feature size (the front end's output, 512 in the papers)",
    "frames": "frames per utterance (25 fps)",
    "tokens": "tokens per utterance",
    "warmup": "untimed rounds over all variants",
    "repeats": "timed rounds over all variants",
    "sparsity": "mask sparsity of msrs_sparse (magnitude mask) and of the "
    "sparse-training baselines",
    "adamw_impl": "AdamW implementation: fused | foreach | forloop | default",
    "threads": "torch intra-op threads; None = 1 on CPU (stable ratios on a "
    "shared machine), torch's default on CUDA",
    "seed": "seed of every model's initialisation and of the batch",
}
_NOT_OPTIONS = ("device", "memory", "profile", "svd_init", "flush_denormal")


def get_parser() -> argparse.ArgumentParser:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(
        description="Training-step time, peak memory, parameters and FLOPs of "
        "dense, LR-SMS, MSRS and LayerScale variants, interleaved in one run",
    )
    parser.add_argument("--device", default=defaults.device,
                        help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--out", "--output", dest="out", type=Path,
                        default=Path("exp/benchmark/train_step.json"),
                        help="JSON result file (default exp/benchmark/train_step.json)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of (default all): "
                        f"{', '.join(VARIANTS)}")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke-test size (64 wide, 1 block each, 2 "
                        "repeats); explicit options still override it")
    for field in dataclasses.fields(BenchConfig):
        if field.name in _NOT_OPTIONS:
            continue
        default = getattr(defaults, field.name)
        kind = int if default is None else type(default)
        parser.add_argument(f"--{field.name}", type=kind, default=None,
                            help=f"{_HELP.get(field.name, '')} (default "
                            f"{getattr(defaults, field.name)}; --tiny changes "
                            "the model and batch sizes)")
    parser.add_argument("--no_memory", action="store_true",
                        help="skip the (untimed) peak-memory step")
    parser.add_argument("--no_profile", action="store_true",
                        help="skip the (untimed) profiled step")
    parser.add_argument("--flush_denormal", action="store_true",
                        help="run every variant with torch.set_flush_denormal(True) "
                        "(x86 FTZ/DAZ: subnormal operands and results are 0; "
                        "with one thread, or set before torch starts its threads)")
    parser.add_argument("--svd_init", action="store_true",
                        help="initialise low-rank layers by SVD (eq. 1) instead "
                        "of drawing the factors (slow; the step cost is the same)")
    return parser


def config_from_args(args: argparse.Namespace) -> "BenchConfig":
    """BenchConfig from parsed options (``--tiny`` first, explicit options last)."""
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(BenchConfig)
        if f.name not in _NOT_OPTIONS and getattr(args, f.name) is not None
    }
    overrides["device"] = args.device
    overrides["memory"] = not args.no_memory
    overrides["profile"] = not args.no_profile
    overrides["svd_init"] = args.svd_init
    overrides["flush_denormal"] = args.flush_denormal
    conf = BenchConfig.tiny(**overrides) if args.tiny else BenchConfig(**overrides)
    if conf.adamw_impl not in ("fused", "foreach", "forloop", "default"):
        raise ValueError(f"--adamw_impl={conf.adamw_impl!r}; allowed: fused, "
                         "foreach, forloop, default")
    if not 0.0 <= conf.sparsity < 1.0:
        raise ValueError(f"--sparsity={conf.sparsity} must be in [0, 1)")
    if conf.repeats < 1 or conf.warmup < 0:
        raise ValueError("--repeats must be >= 1 and --warmup >= 0")
    if conf.output_size % conf.attention_heads:
        raise ValueError(f"--output_size={conf.output_size} is not divisible by "
                         f"--attention_heads={conf.attention_heads}")
    return conf


def describe(result: Dict[str, Any], conf: "BenchConfig") -> str:
    """The printed report: machine, model, the table and the limits."""
    return (
        common.machine_line(result["machine"]) + f", device {result['machine']['device']}\n"
        f"model: {conf.encoder_blocks}x{conf.output_size} Conformer + "
        f"{conf.decoder_blocks}x{conf.output_size} Transformer decoder (full depth "
        f"{conf.full_encoder_blocks}/{conf.full_decoder_blocks}), ffn "
        f"{conf.linear_units}, vocab {conf.vocab_size}; batch {conf.batch_size}x"
        f"{conf.frames} frames, {conf.tokens} tokens; AdamW {conf.adamw_impl}; "
        f"{conf.repeats} timed rounds after {conf.warmup} warm-up\n"
        + format_table(result) + "\n" + format_against_limit(result)
    )


def main(cmd: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command-line entry point; returns the result written to ``--out``."""
    args = parse_tool_args(get_parser(), cmd)
    conf = config_from_args(args)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    result = run_benchmark(conf, variants)
    return common.write_result(
        "benchmark", args.out, result, lambda result: describe(result, conf)
    )


if __name__ == "__main__":
    main()
