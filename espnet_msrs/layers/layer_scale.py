"""LayerScale on the residual branches of ESPnet's Conformer/Transformer blocks.

Implements LayerScale (Touvron et al., "Going deeper with image transformers",
ICCV 2021, eq. 5), used by MSRS (§2 and Table 1) alone or together with the
learned sparse masks: every residual branch output is multiplied by a learnable
per-channel scale ``diag(λ)``, initialised near zero::

    x ← x + diag(λ) · F(norm(x))

The scale is added to ESPnet's own blocks without touching their code: an
``nn.Parameter`` named ``layer_scale`` (shape ``(dim,)``) is registered on the
branch module (e.g. ``block.self_attn``) together with a forward hook that
multiplies the branch output by it along the last dimension.  Everything the
block does after the branch (dropout, the macaron 0.5 factor, stochastic depth,
the residual sum, the decoder's incremental cache) is unchanged, and since
dropout is element-wise, ``dropout(λ ⊙ F) = λ ⊙ dropout(F)``.  The hook is a
module-level function, so ``copy.deepcopy`` and ``pickle`` work, and the
parameter is saved in the ``state_dict`` as ``<branch>.layer_scale``.

Supported blocks: ``espnet.nets.pytorch_backend.conformer.encoder_layer.
EncoderLayer`` (macaron FFN, (rel-pos) self-attention, convolution module,
FFN) and ``espnet.nets.pytorch_backend.transformer.decoder_layer.DecoderLayer``
(self-attention, source attention, FFN), i.e. the blocks of espnet2's
Conformer/Transformer encoders and Transformer decoder, with
``concat_after=False`` (ESPnet's default).
"""

from typing import Iterable, List, Tuple, Union

import torch

LAYER_SCALE_PARAM = "layer_scale"
LAYER_SCALE_BRANCHES: Tuple[str, ...] = (
    "feed_forward_macaron",
    "self_attn",
    "src_attn",
    "conv_module",
    "feed_forward",
)

BranchOutput = Union[torch.Tensor, Tuple[torch.Tensor, ...]]


def _layer_scale_hook(
    module: torch.nn.Module, inputs: Tuple, output: BranchOutput
) -> BranchOutput:
    """Forward hook: scale the branch output (or its first element) by λ.

    Args:
        module: The branch; holds ``layer_scale`` of shape (D,).
        inputs: The branch's positional inputs (unused).
        output: (..., D) tensor, or a tuple whose first element is one.

    Returns:
        The output with its (first) tensor multiplied by λ along the last dim.
    """
    scale = getattr(module, LAYER_SCALE_PARAM)
    if isinstance(output, tuple):
        return (output[0] * scale,) + tuple(output[1:])
    return output * scale


def _check_init_value(init_value: float) -> None:
    if not init_value > 0:
        raise ValueError(
            f"layer_scale init_value={init_value} is not allowed; it must be > 0 "
            "(e.g. 0.1 or 1e-5 for deep models)"
        )


def add_layer_scale(
    branch: torch.nn.Module, dim: int, init_value: float
) -> torch.nn.Parameter:
    """Register LayerScale on one residual branch module.

    Args:
        branch: The branch module (attention, feed-forward, convolution module);
            its output (or the first element of a tuple output) is (..., dim).
        dim: Number of channels D of the branch output.
        init_value: Initial value of every entry of λ (> 0).

    Returns:
        The new parameter ``branch.layer_scale``, shape (dim,), on the branch's
        device and dtype.

    Raises:
        ValueError: ``dim < 1``, ``init_value <= 0``, or the branch already has
            a ``layer_scale``.
    """
    if dim < 1:
        raise ValueError(f"layer_scale dim={dim} must be >= 1")
    _check_init_value(init_value)
    if hasattr(branch, LAYER_SCALE_PARAM):
        raise ValueError(
            f"{type(branch).__name__} already has a {LAYER_SCALE_PARAM!r}; "
            "LayerScale can be added only once per branch"
        )
    reference = next(branch.parameters(), None)
    factory = (
        {"device": reference.device, "dtype": reference.dtype}
        if reference is not None and reference.is_floating_point()
        else {}
    )
    scale = torch.nn.Parameter(torch.full((dim,), float(init_value), **factory))
    branch.register_parameter(LAYER_SCALE_PARAM, scale)
    branch.register_forward_hook(_layer_scale_hook)
    return scale


def apply_layer_scale(
    blocks: Iterable[torch.nn.Module], dim: int, init_value: float
) -> List[str]:
    """Add LayerScale to every residual branch of every block.

    The branches are the attributes named in :data:`LAYER_SCALE_BRANCHES` that
    are present and not None (e.g. a Conformer block without macaron FFN has
    ``feed_forward_macaron = None``; an encoder block has no ``src_attn``).

    Args:
        blocks: The blocks of one sub-model, e.g. ``encoder.encoders``.
        dim: Model dimension D (``output_size``/``attention_dim``).
        init_value: Initial value of λ (> 0; LayerScale uses values near zero,
            1.0 leaves the block's function unchanged).

    Returns:
        Names of the added parameters relative to the block container, in
        ``named_parameters`` form: ``"<index>.<branch>.layer_scale"``
        (prefix them with e.g. ``"encoder.encoders."``).

    Raises:
        ValueError: ``init_value <= 0``; a block with ``concat_after=True`` (its
            branch output goes through a concat linear, not to the residual
            sum); a block whose ``size`` is not ``dim``; no branch found.
    """
    _check_init_value(init_value)
    found: List[Tuple[str, torch.nn.Module]] = []
    seen = set()
    for index, block in enumerate(blocks):
        if getattr(block, "concat_after", False):
            raise ValueError(
                f"block {index} ({type(block).__name__}) has concat_after=True; "
                "LayerScale supports only concat_after=False"
            )
        size = getattr(block, "size", dim)
        if size != dim:
            raise ValueError(
                f"block {index} ({type(block).__name__}) has size={size} but "
                f"layer_scale dim={dim}"
            )
        for branch_name in LAYER_SCALE_BRANCHES:
            branch = getattr(block, branch_name, None)
            if not isinstance(branch, torch.nn.Module):
                continue
            name = f"{index}.{branch_name}.{LAYER_SCALE_PARAM}"
            if hasattr(branch, LAYER_SCALE_PARAM) or id(branch) in seen:
                raise ValueError(
                    f"{name}: the branch already has LayerScale (applied twice, "
                    "or a branch module shared between blocks)"
                )
            seen.add(id(branch))
            found.append((name, branch))
    if not found:
        raise ValueError(
            f"apply_layer_scale found no residual branch {LAYER_SCALE_BRANCHES} "
            "in the given blocks"
        )
    # Validated first, so a bad block leaves every block unchanged.
    for _, branch in found:
        add_layer_scale(branch, dim, init_value)
    return [name for name, _ in found]
