"""Layer-wise rank schedule of LR-SMS (policy, pure functions).

Implements §II-C of "Full-Rank No More: Low-Rank Weight Training for Modern
Speech Recognition Models" (LR-SMS) and its Algorithm 1:

* linear layer-wise scaling factor, eq. (2)::

      α_l = α_i + b·(α_f − α_i)/B

  with ``b = 0 … B−1`` the index of the block inside its sub-model (encoder
  and decoder are counted separately) and ``B`` that sub-model's number of
  blocks; a uniform α is the special case ``α_i = α_f``;
* rank of a layer with weight W ∈ R^{m×n}: ``r_l = int(α_l · min(m, n))``.

MHSA and FFN layers take separate ``[α_i, α_f]`` ranges; the caller passes
the range of the layer's group.
"""

import math
from numbers import Real
from typing import List, Sequence, Tuple, Union

# int() of α·min(m, n) is taken with this tolerance, so that a product that is
# an integer in exact arithmetic is not floored one below by float
# representation error (0.29 * 100 == 28.999999999999996 in binary floats).
_RANK_EPS = 1e-9

_ALLOWED = "a number in (0, 1] (uniform α) or a list [alpha_i, alpha_f] of two"


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def parse_alpha(
    value: Union[float, Sequence[float]], key: str
) -> Tuple[float, float]:
    """Parse a config value into the range ``(α_i, α_f)`` of eq. (2).

    Args:
        value: A number α (uniform rank: ``α_i = α_f = α``) or a list/tuple
            ``[α_i, α_f]``; every α must lie in (0, 1].
        key: Config key, used in error messages (e.g. ``encoder_conf.ffn_alpha``).

    Returns:
        ``(alpha_i, alpha_f)`` as floats.

    Raises:
        ValueError: Any other value, naming ``key`` and what is allowed.
    """
    if _is_number(value):
        alphas = (float(value), float(value))
    elif (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_is_number(v) for v in value)
    ):
        alphas = (float(value[0]), float(value[1]))
    else:
        raise ValueError(f"{key}={value!r} is not allowed; expected {_ALLOWED}")
    for alpha in alphas:
        if not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
            raise ValueError(
                f"{key}={value!r}: alpha={alpha} is outside (0, 1]; expected "
                f"{_ALLOWED}"
            )
    return alphas


def layer_alpha(alpha_i: float, alpha_f: float, b: int, num_blocks: int) -> float:
    """Scaling factor of block ``b`` of a sub-model, eq. (2).

    Args:
        alpha_i: Initial scaling factor α_i (block 0).
        alpha_f: Final scaling factor α_f (reached at b = B, i.e. one block past
            the last one, exactly as in eq. 2).
        b: Block index inside the sub-model, ``0 <= b < num_blocks``.
        num_blocks: B, the sub-model's number of blocks (>= 1).

    Returns:
        ``α_i + b·(α_f − α_i)/B``.

    Raises:
        ValueError: ``num_blocks < 1`` or ``b`` outside ``[0, num_blocks)``.
    """
    if num_blocks < 1:
        raise ValueError(f"layer_alpha: num_blocks={num_blocks} must be >= 1")
    if not 0 <= b < num_blocks:
        raise ValueError(
            f"layer_alpha: block index b={b} is outside [0, {num_blocks}) "
            f"for num_blocks={num_blocks}"
        )
    return alpha_i + b * (alpha_f - alpha_i) / num_blocks


def layer_rank(alpha: float, m: int, n: int, key: str) -> int:
    """Rank ``r = int(α · min(m, n))`` of a layer with weight W (m×n).

    Args:
        alpha: Scaling factor α_l in (0, 1].
        m: Output size of the layer.
        n: Input size of the layer.
        key: Config key, used in error messages.

    Returns:
        The rank, ``1 <= r <= min(m, n)``.

    Raises:
        ValueError: α outside (0, 1], or a rank that rounds to 0 (the message
            names ``key`` and the smallest α that gives rank 1).
    """
    if m < 1 or n < 1:
        raise ValueError(f"{key}: layer shape ({m}, {n}) must be positive")
    if not (math.isfinite(alpha) and 0.0 < alpha <= 1.0):
        raise ValueError(f"{key}: alpha={alpha} is outside (0, 1]")
    dim = min(m, n)
    rank = int(math.floor(alpha * dim + _RANK_EPS))
    if rank < 1:
        raise ValueError(
            f"{key}: alpha={alpha:g} gives rank int({alpha:g} * min({m}, {n})) = 0 "
            f"for a {m}x{n} layer; use alpha >= {1.0 / dim:g}"
        )
    return min(rank, dim)


def block_ranks(
    alpha_i: float, alpha_f: float, num_blocks: int, m: int, n: int, key: str
) -> List[int]:
    """Ranks of one layer type (m×n) in each of the B blocks of a sub-model.

    Args:
        alpha_i: Initial scaling factor α_i.
        alpha_f: Final scaling factor α_f.
        num_blocks: B.
        m: Output size of the layer.
        n: Input size of the layer.
        key: Config key, used in error messages.

    Returns:
        ``[r_0, …, r_{B−1}]`` with ``r_b = int(α_b · min(m, n))`` (eq. 2).

    Raises:
        ValueError: See :func:`layer_alpha` and :func:`layer_rank`.
    """
    return [
        layer_rank(layer_alpha(alpha_i, alpha_f, b, num_blocks), m, n, key)
        for b in range(num_blocks)
    ]
