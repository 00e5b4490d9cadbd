"""Erdős–Rényi-Kernel (ERK) layer densities (Evci et al., ICML 2020, after Mocanu et al., 2018).

SET (Mocanu et al., Nat. Commun. 2018) draws each sparse layer as an
Erdős–Rényi graph whose density scales with ``(n_in + n_out)/(n_in · n_out)``;
RigL (Evci et al. 2020, Sec. 3 "Sparsity distribution") extends it to
convolutions by including the kernel dimensions ("Erdős–Rényi-Kernel")::

    d_l = ε · (Σ_k s_{l,k}) / (Π_k s_{l,k})          s_l = shape of weight l

with one ε for all layers, chosen so that ``Σ_l d_l·N_l = (1 − S)·Σ_l N_l``
(``N_l = Π_k s_{l,k}``, ``S`` the target sparsity).  A layer whose ``d_l``
would exceed 1 is kept dense and ε is solved again over the remaining layers
(the layers with the largest raw density first, one value at a time, as in
the reference implementation of RigL), so the global sparsity is still
exactly ``S``.

:func:`erk_active_counts` turns the densities into integer numbers of active
weights whose sum is exactly ``round((1 − S)·Σ N_l)`` (largest-remainder
rounding), and :func:`random_masks` draws masks with exactly those counts.
"""

import math
from typing import Dict, Mapping, Optional, Sequence

import torch


def _check_sparsity(sparsity: float, key: str = "sparsity") -> float:
    sparsity = float(sparsity)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"{key}={sparsity} must be in [0, 1)")
    return sparsity


def _check_shapes(shapes: Mapping[str, Sequence[int]]) -> Dict[str, tuple]:
    if not shapes:
        raise ValueError("ERK needs at least one weight shape (the selection is empty)")
    out = {}
    for name, shape in shapes.items():
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2 or min(shape) < 1:
            raise ValueError(
                f"ERK: weight {name!r} has shape {shape}; expected a Linear/Conv "
                "weight with at least 2 non-empty dimensions"
            )
        out[name] = shape
    return out


def erk_densities(
    shapes: Mapping[str, Sequence[int]], sparsity: float
) -> Dict[str, float]:
    """Per-layer densities of ERK for a global ``sparsity``.

    Args:
        shapes: Weight name -> weight shape (Linear ``(out, in)``, Conv
            ``(out, in, *kernel)``).
        sparsity: Target fraction of zeros over all these weights, in [0, 1).

    Returns:
        Weight name -> density in (0, 1]; ``Σ d_l·N_l = (1 − sparsity)·Σ N_l``
        up to float rounding.

    Raises:
        ValueError: Empty selection, a bad shape or a sparsity outside [0, 1).
    """
    sparsity = _check_sparsity(sparsity)
    shapes = _check_shapes(shapes)
    density = 1.0 - sparsity
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: sum(shape) / numel[name] for name, shape in shapes.items()}
    dense: set = set()
    while True:
        sparse_names = [n for n in shapes if n not in dense]
        if not sparse_names:  # only possible for sparsity == 0
            return {name: 1.0 for name in shapes}
        # ε·Σ_sparse raw_l·N_l + Σ_dense N_l = density·Σ N_l
        rhs = density * sum(numel.values()) - sum(numel[n] for n in dense)
        divisor = sum(raw[n] * numel[n] for n in sparse_names)
        epsilon = rhs / divisor
        max_raw = max(raw[n] for n in sparse_names)
        if epsilon * max_raw <= 1.0:
            break
        dense.update(n for n in sparse_names if raw[n] == max_raw)
    return {
        name: 1.0 if name in dense else epsilon * raw[name] for name in shapes
    }


def erk_active_counts(
    shapes: Mapping[str, Sequence[int]], sparsity: float
) -> Dict[str, int]:
    """Numbers of active weights per layer: ERK densities, rounded so that the
    total is exactly ``round((1 − sparsity)·Σ N_l)``.

    Each count is ``floor(d_l·N_l)`` or one more (largest fractional parts
    first, ties in name order), never above ``N_l``.
    """
    densities = erk_densities(shapes, sparsity)
    numel = {name: math.prod(tuple(shape)) for name, shape in shapes.items()}
    target = round((1.0 - float(sparsity)) * sum(numel.values()))
    exact = {name: min(densities[name] * numel[name], numel[name]) for name in shapes}
    counts = {name: int(math.floor(value)) for name, value in exact.items()}
    missing = target - sum(counts.values())
    order = sorted(
        (name for name in shapes if counts[name] < numel[name]),
        key=lambda n: (-(exact[n] - counts[n]), n),
    )
    for name in order[: max(missing, 0)]:
        counts[name] += 1
    return counts


def random_masks(
    shapes: Mapping[str, Sequence[int]],
    counts: Mapping[str, int],
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """Bool masks with exactly ``counts[name]`` active entries, drawn uniformly.

    Drawn on the CPU from ``generator`` (so every DDP rank given the same
    generator state draws the same masks), in the order of ``shapes``.

    Returns:
        Weight name -> bool CPU tensor of the weight's shape.
    """
    masks = {}
    for name, shape in shapes.items():
        shape = tuple(shape)
        n = math.prod(shape)
        k = int(counts[name])
        if not 0 <= k <= n:
            raise ValueError(f"active count {k} of {name!r} outside [0, {n}]")
        flat = torch.zeros(n, dtype=torch.bool)
        if k == n:
            flat.fill_(True)
        elif k > 0:
            flat[torch.randperm(n, generator=generator)[:k]] = True
        masks[name] = flat.view(shape)
    return masks
