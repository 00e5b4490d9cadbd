"""Drop and grow operations shared by the prune-and-grow strategies.

Pure tensor functions (no state, no randomness beyond a passed generator):
each takes a layer's bool mask and returns a new one.  Ties are broken by
``torch.topk`` on the same data, which is deterministic on one device type,
so every DDP rank that sees the same weights and (all-reduced) gradients
computes the same masks.
"""

import math
from typing import Dict, List, Mapping, Optional

import torch


def cosine_decay(t: int, t_end: int, start: float, end: float = 0.0) -> float:
    """``end + (start − end)·½·(1 + cos(π·t/t_end))`` (RigL eq. for f_decay).

    With ``end = 0`` this is RigL's drop fraction ``α/2·(1 + cos(π t/T_end))``
    (Evci et al. 2020, Sec. 3, "Update schedule"), ``start = α``.
    """
    if t_end <= 0:
        raise ValueError(f"cosine decay needs t_end > 0, got {t_end}")
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t / t_end))


def cubic_sparsity(t: int, t0: int, t_end: int, initial: float, final: float) -> float:
    """Gradual pruning schedule of Zhu & Gupta (2017), eq. (1)::

        s_t = s_f + (s_i − s_f)·(1 − (t − t0)/(n·Δt))³,   t0 ≤ t ≤ t0 + n·Δt

    with ``t_end = t0 + n·Δt``; ``s_i`` before ``t0`` and ``s_f`` after ``t_end``.
    """
    if t <= t0:
        return float(initial)
    if t >= t_end:
        return float(final)
    progress = (t - t0) / (t_end - t0)
    return final + (initial - final) * (1.0 - progress) ** 3


def drop_smallest(weight: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Deactivate the ``k`` active entries of smallest ``|weight|``.

    Args:
        weight: The layer's weight (any shape).
        mask: Bool mask of the same shape (True = active).
        k: Number to drop, ``0 ≤ k ≤`` active count.

    Returns:
        New bool mask with exactly ``mask.sum() − k`` active entries, a subset
        of ``mask``.
    """
    k = int(k)
    new = mask.clone()
    if k <= 0:
        return new
    active = int(mask.sum())
    if k > active:
        raise ValueError(f"cannot drop {k} of {active} active weights")
    score = weight.detach().abs().float().masked_fill(~mask, math.inf).flatten()
    idx = torch.topk(score, k, largest=False, sorted=False).indices
    new.view(-1)[idx] = False
    return new


def grow_largest(
    score: torch.Tensor, mask: torch.Tensor, k: int,
    allowed: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Activate the ``k`` inactive entries with the largest ``score``.

    Args:
        score: Growth score of every entry (e.g. ``|∂L/∂θ|``, RigL).
        mask: Bool mask (True = active); only inactive entries can grow.
        k: Number to grow, at most the number of candidates.
        allowed: Optional bool tensor; entries where it is False never grow
            (e.g. removed channels).

    Returns:
        New bool mask: ``mask`` plus exactly ``k`` entries.
    """
    k = int(k)
    new = mask.clone()
    if k <= 0:
        return new
    candidates = ~mask if allowed is None else (~mask & allowed)
    available = int(candidates.sum())
    if k > available:
        raise ValueError(f"cannot grow {k} weights: only {available} candidates")
    s = score.detach().float().masked_fill(~candidates, -math.inf).flatten()
    idx = torch.topk(s, k, largest=True, sorted=False).indices
    new.view(-1)[idx] = True
    return new


def grow_random(
    mask: torch.Tensor, k: int, generator: Optional[torch.Generator],
    allowed: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Activate ``k`` inactive entries drawn uniformly at random (SET).

    Every entry gets a uniform score drawn on the CPU from ``generator`` (so
    the draw does not depend on the device); the ``k`` candidates with the
    largest scores grow (:func:`grow_largest`), i.e. a uniform random subset.
    """
    score = torch.rand(mask.shape, generator=generator).to(mask.device)
    return grow_largest(score, mask, k, allowed)


def global_keep_largest(
    scores: Mapping[str, torch.Tensor], eligible: Mapping[str, torch.Tensor], k: int
) -> Dict[str, torch.Tensor]:
    """Keep the ``k`` eligible entries with the largest score over all layers.

    Args:
        scores: Name -> score tensor.
        eligible: Name -> bool tensor of the entries that may be kept.
        k: Number to keep over all layers (at most the eligible count).

    Returns:
        Name -> bool tensor with exactly ``k`` True entries in total, a subset
        of ``eligible``.
    """
    names: List[str] = list(scores)
    flat = torch.cat([
        scores[n].detach().float().masked_fill(~eligible[n], -math.inf).flatten().cpu()
        for n in names
    ])
    total = int(sum(int(eligible[n].sum()) for n in names))
    k = int(k)
    if not 0 <= k <= total:
        raise ValueError(f"cannot keep {k} of {total} eligible entries")
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        keep[torch.topk(flat, k, largest=True, sorted=False).indices] = True
    out = {}
    offset = 0
    for n in names:
        numel = scores[n].numel()
        out[n] = keep[offset: offset + numel].view(scores[n].shape).to(
            eligible[n].device
        )
        offset += numel
    return out


def count_active(masks: Mapping[str, torch.Tensor]) -> int:
    """Total number of active entries of ``masks``."""
    return int(sum(int(m.sum()) for m in masks.values()))
