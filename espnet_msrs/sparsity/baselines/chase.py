"""CHASE: channel-aware dynamic sparse training (Yin et al., NeurIPS 2023,
"Dynamic Sparsity Is Channel-Level Sparsity Learner").

CHASE trains an unstructured sparse model from an ERK start and, during
training, removes whole channels that dynamic sparse training has made
"sparse amenable".  Its parts, as the paper and its reference code
(``core_dst_chase.py`` of the authors, flags ``--mest --mest_dst
--filter_dst --mag_wise --gpm_filter_pune``) specify them:

1. **Channel score: unmasked mean magnitude (UMM).**  For output channel c
   of a layer with weight θ and mask m (row c of θ: ``θ[c]``)::

       UMM_c = mean_j |θ[c, j] ⊙ m[c, j]|

   i.e. the mean over *all* entries of the channel, inactive ones counting
   0 (the paper's "unmasked" mean; the reference's ``mag_wise``), so a
   channel is small both when its weights are small and when few are active.
2. **Gradual channel removal** every ΔT_c steps, globally over all channel
   layers: the channel sparsity follows the cubic schedule of GMP
   (Zhu & Gupta) from 0 at step 0 to S_c at T_c::

       s_c(t) = S_c · (1 − (1 − t/T_c)³)

   and the ``⌊s_c(t)·C⌋`` channels with the smallest UMM are removed (C = all
   channels), except that every layer keeps at least ``⌊C_l·(1 − S_c)·β⌋``
   channels ("minimum layer limitation" β), and no removal may leave fewer
   entries than the budget B below (our guard: at the moderate sparsity of
   MSRS Table 4, removing S_c of the channels could otherwise make B
   unreachable).  A removed channel is the row of
   the producing weight and, where the layer feeds a masked consumer, the
   matching input column of that consumer (the reference removes conv-BN-conv
   channels the same way); its entries never grow back.
3. **Unstructured prune-and-grow with a soft memory bound** (after MEST)
   every ΔT_p steps: while t < T_p, the weights are pruned by global
   magnitude down to the budget ``B = (1 − S)·N`` and then grown by global
   gradient magnitude up to ``r_t·N`` with
   ``r_t = (1 − S) + γ·½(1 + cos(π t / T_p))`` (the model briefly holds
   γ·N extra weights, decaying to 0); from T_p to the end, the budget is
   exact: prune ``⌈q_t·n⌉`` by global magnitude (n active weights,
   ``q_t`` cosine from 0.5 to 0.005 over the run) and grow back to B by
   global gradient.  Weights freed by channel removal are thus regrown
   elsewhere: the parameter budget B is constant.

Grown weights start at 0 with zero optimizer moments (the reference's
``--new_zero``).

Choices where the paper leaves room (all configurable):

* What a "channel" is in a speech model: pairs of (producer, consumer)
  weights given by regexes (``channel_pairs``); the defaults are the hidden
  units of every feed-forward module (``w_1`` rows / ``w_2`` columns, encoder
  and decoder), of the ResNet basic blocks (``conv1`` / ``conv2``) and of the
  fusion MLP (``fc1`` / ``fc2``).  Residual-stream channels are not removed.
* Defaults follow the paper's ImageNet setting (β = 0.2, γ = 0.05,
  ΔT_p = 1000, T_p = T_c = 0.8 of training) except S_c: the paper reports
  0.3 and 0.4 at 80–90 % sparsity; at the ~40 % of MSRS Table 4 we take the
  smaller, 0.3; ΔT_c = 1000 steps (its CIFAR ResNet-50 value).
* Channel removal happens only at prune-and-grow steps (ΔT_c must be a
  multiple of ΔT_p), right before that step's pruning and growth, so the
  entries it frees are regrown at once with the same gradients (the reference
  removes channels half an exploration interval before the next update);
  a run therefore never ends with a freed, unfilled budget.
* :meth:`final_masks` prunes back to B by magnitude if the run ends inside
  the soft-bound phase, so the final model has exactly the target sparsity.
"""

import math
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from espnet_msrs.sparsity.baselines.prune_grow import (
    count_active, cosine_decay, cubic_sparsity, global_keep_largest)
from espnet_msrs.sparsity.baselines.sparse_training_strategy import (
    Masks, SparseTrainingStrategy, TensorMap, check_fraction, check_interval)

#: (producer weight regex, consumer weight replacement) of the default channels.
DEFAULT_CHANNEL_PAIRS: Tuple[Tuple[str, str], ...] = (
    (r"^(.*)\.w_1\.weight$", r"\1.w_2.weight"),
    (r"^(.*)\.conv1\.weight$", r"\1.conv2.weight"),
    (r"^(.*)\.fc1\.weight$", r"\1.fc2.weight"),
)


def unmasked_mean_magnitude(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """UMM of every output channel: ``mean_j |θ[c, j]·m[c, j]|`` (shape (C,))."""
    masked = weight.detach().float().abs() * mask
    return masked.reshape(masked.shape[0], -1).mean(dim=1)


class CHASE(SparseTrainingStrategy):
    """CHASE: ERK start, UMM channel removal, soft-bound global prune-and-grow.

    Args:
        sparsity: S, target fraction of zeros over the selected weights.
        channel_sparsity: S_c, final fraction of removed channels.
        min_channel_ratio: β of the minimum layer limitation.
        update_interval: ΔT_p, steps between prune-and-grow updates.
        channel_interval: ΔT_c, steps between channel removals.
        extra_density: γ, the soft memory bound's extra density at t = 0.
        exploration_end: T_p as a fraction of the run's steps.
        channel_end: T_c as a fraction of the run's steps.
        drop_fraction: q at t = 0 in the exact-budget phase (reference: 0.5).
        min_drop_fraction: q at the end of the run (reference: 0.005).
        channel_pairs: (producer regex, consumer replacement) pairs; the
            consumer is used only where it is a selected weight whose input
            dimension equals the producer's output dimension.
        seed: Seed of the ERK draw.
    """

    name = "chase"
    repr_fields = (
        "sparsity", "channel_sparsity", "min_channel_ratio", "update_interval",
        "channel_interval",
    )

    def __init__(
        self,
        sparsity: float,
        channel_sparsity: float = 0.3,
        min_channel_ratio: float = 0.2,
        update_interval: int = 1000,
        channel_interval: int = 1000,
        extra_density: float = 0.05,
        exploration_end: float = 0.8,
        channel_end: float = 0.8,
        drop_fraction: float = 0.5,
        min_drop_fraction: float = 0.005,
        channel_pairs: Optional[Sequence[Sequence[str]]] = None,
        seed: int = 0,
    ) -> None:
        super().__init__(sparsity, seed)
        self.channel_sparsity = check_fraction(channel_sparsity, "channel_sparsity")
        self.min_channel_ratio = check_fraction(min_channel_ratio, "min_channel_ratio")
        self.update_interval = check_interval(update_interval, "update_interval")
        self.channel_interval = check_interval(channel_interval, "channel_interval")
        if self.channel_interval % self.update_interval:
            raise ValueError(
                f"chase: channel_interval={self.channel_interval} must be a multiple "
                f"of update_interval={self.update_interval} (channels are removed at "
                "prune-and-grow steps)"
            )
        self.extra_density = check_fraction(extra_density, "extra_density")
        self.exploration_end = check_fraction(exploration_end, "exploration_end")
        self.channel_end = check_fraction(channel_end, "channel_end")
        self.drop_fraction = check_fraction(drop_fraction, "drop_fraction")
        self.min_drop_fraction = check_fraction(
            min_drop_fraction, "min_drop_fraction", 0.0, self.drop_fraction
        )
        pairs = DEFAULT_CHANNEL_PAIRS if channel_pairs is None else channel_pairs
        self.channel_pairs: List[Tuple[str, str]] = []
        for pair in pairs:
            if len(pair) != 2:
                raise ValueError(
                    f"channel_pairs entry {pair!r} must be [producer_regex, "
                    "consumer_replacement]"
                )
            try:
                re.compile(pair[0])
            except re.error as e:
                raise ValueError(f"channel_pairs regex {pair[0]!r} is invalid: {e}")
            self.channel_pairs.append((str(pair[0]), str(pair[1])))
        #: producer -> consumer (or None); set from the masks' names.
        self.channels: Dict[str, Optional[str]] = {}
        #: producer -> bool (C_l,), True = removed.
        self.removed: Dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------ channels
    def resolve_channels(self, shapes: Mapping[str, Sequence[int]]) -> None:
        """Find the channel layers among the selected weights.

        Raises:
            ValueError: No selected weight matches a producer pattern (the
                message lists the patterns and some selected names).
        """
        channels: Dict[str, Optional[str]] = {}
        for name, shape in shapes.items():
            for pattern, replacement in self.channel_pairs:
                if not re.search(pattern, name):
                    continue
                consumer: Optional[str] = re.sub(pattern, replacement, name)
                if consumer not in shapes or len(tuple(shapes[consumer])) < 2 or (
                    tuple(shapes[consumer])[1] != tuple(shape)[0]
                ):
                    consumer = None
                channels[name] = consumer
                break
        if not channels:
            raise ValueError(
                "chase: no selected weight matches a channel_pairs producer "
                f"pattern {[p for p, _ in self.channel_pairs]}; selected weights "
                f"include {list(shapes)[:10]}"
            )
        self.channels = channels
        for name in channels:
            if name not in self.removed or self.removed[name].numel() != shapes[name][0]:
                self.removed[name] = torch.zeros(int(shapes[name][0]), dtype=torch.bool)

    def _ensure_channels(self, tensors: TensorMap) -> None:
        if not self.channels:
            self.resolve_channels({n: tuple(t.shape) for n, t in tensors.items()})

    def initial_masks(self, weights: TensorMap) -> Masks:
        self.resolve_channels({n: tuple(w.shape) for n, w in weights.items()})
        return super().initial_masks(weights)

    def allowed(self, masks: TensorMap) -> Masks:
        """Name -> bool tensor, False on the entries of removed channels."""
        allowed = {n: torch.ones_like(m, dtype=torch.bool) for n, m in masks.items()}
        for producer, consumer in self.channels.items():
            removed = self.removed[producer].to(masks[producer].device)
            allowed[producer][removed] = False
            if consumer is not None:
                allowed[consumer][:, removed.to(masks[consumer].device)] = False
        return allowed

    def channel_sparsity_at(self, step: int, total_steps: int) -> float:
        """s_c(t) = S_c·(1 − (1 − t/T_c)³)."""
        t_end = max(1, int(self.channel_end * total_steps))
        return cubic_sparsity(step, 0, t_end, 0.0, self.channel_sparsity)

    def remove_channels(self, step: int, total_steps: int, weights: TensorMap,
                        masks: TensorMap) -> List[Tuple[str, int]]:
        """Remove channels (smallest UMM first) up to ``⌊s_c(t)·C⌋``; updates
        :attr:`removed` only (apply with :meth:`allowed`).

        Returns:
            (producer, channel index) of the channels removed now, in order.
        """
        total = sum(int(r.numel()) for r in self.removed.values())
        already = sum(int(r.sum()) for r in self.removed.values())
        target = int(self.channel_sparsity_at(step, total_steps) * total)
        if target <= already:
            return []
        names = list(self.channels)
        minimum = {
            n: int(self.removed[n].numel() * (1.0 - self.channel_sparsity)
                   * self.min_channel_ratio)
            for n in names
        }
        left = {n: int((~self.removed[n]).sum()) for n in names}
        # entries a channel removal takes away: its producer row and consumer column
        cost = {}
        for n in names:
            consumer = self.channels[n]
            cost[n] = masks[n][0].numel() + (
                masks[consumer].shape[0] * masks[consumer][0, 0].numel()
                if consumer is not None else 0
            )
        allowed = self.allowed(masks)
        capacity = sum(int(a.sum()) for a in allowed.values())
        budget = self.budget(masks)
        scores, owners, indices = [], [], []
        for layer, n in enumerate(names):
            umm = unmasked_mean_magnitude(weights[n], masks[n]).cpu()
            keep = ~self.removed[n]
            idx = torch.nonzero(keep).flatten()
            scores.append(umm[idx])
            owners.append(torch.full((idx.numel(),), layer, dtype=torch.long))
            indices.append(idx)
        order = torch.sort(torch.cat(scores), stable=True).indices.tolist()
        owners_flat = torch.cat(owners).tolist()
        indices_flat = torch.cat(indices).tolist()
        removed_now = []
        for k in order:
            if already + len(removed_now) >= target:
                break
            n = names[owners_flat[k]]
            if left[n] <= minimum[n] or capacity - cost[n] < budget:
                continue
            self.removed[n][indices_flat[k]] = True
            left[n] -= 1
            capacity -= cost[n]
            removed_now.append((n, indices_flat[k]))
        return removed_now

    # ------------------------------------------------------------- schedule
    def _is_channel_step(self, step: int, total_steps: int) -> bool:
        t_end = int(self.channel_end * total_steps)
        return (
            self.channel_sparsity > 0
            and step % self.channel_interval == 0
            and step - self.channel_interval < t_end
        )

    def _is_exploration_step(self, step: int, total_steps: int) -> bool:
        return step % self.update_interval == 0 and step <= total_steps

    def is_update_step(self, step: int, total_steps: int) -> bool:
        # every channel step is an exploration step (channel_interval is a
        # multiple of update_interval)
        return self._is_exploration_step(step, total_steps)

    def wants_dense_grad(self, step: int, total_steps: int) -> bool:
        return self._is_exploration_step(step, total_steps)

    def budget(self, masks: TensorMap) -> int:
        """B = round((1 − S)·N) active weights."""
        return round((1.0 - self.sparsity) * sum(m.numel() for m in masks.values()))

    def soft_bound_density(self, step: int, total_steps: int) -> float:
        """r_t = (1 − S) + γ·½(1 + cos(π t/T_p))."""
        t_end = max(1, int(self.exploration_end * total_steps))
        return (1.0 - self.sparsity) + cosine_decay(step, t_end, self.extra_density)

    def drop_fraction_at(self, step: int, total_steps: int) -> float:
        """q_t of the exact-budget phase: cosine from q_0 to q_min over the run."""
        return cosine_decay(
            step, max(1, total_steps), self.drop_fraction, self.min_drop_fraction
        )

    # --------------------------------------------------------------- update
    def update(self, step: int, total_steps: int, weights: TensorMap, masks: TensorMap,
               grads: Optional[TensorMap] = None) -> Masks:
        self._ensure_channels(masks)
        if grads is None:
            raise ValueError("CHASE.update needs the dense gradients (grads=None)")
        new = {n: m.clone() for n, m in masks.items()}
        if self._is_channel_step(step, total_steps):
            self.remove_channels(step, total_steps, weights, new)
        allowed = self.allowed(new)
        new = {n: new[n] & allowed[n] for n in new}
        budget = self.budget(new)
        active = count_active(new)
        magnitude = {n: weights[n].detach().abs() for n in new}
        if step < int(self.exploration_end * total_steps):
            keep = min(active, budget)
            target = round(self.soft_bound_density(step, total_steps)
                           * sum(m.numel() for m in new.values()))
        else:
            drop = math.ceil(self.drop_fraction_at(step, total_steps) * active)
            keep = min(active - drop, budget)
            target = budget
        new = global_keep_largest(magnitude, new, keep)
        candidates = {n: ~new[n] & allowed[n] for n in new}
        grow = max(0, min(target - keep, count_active(candidates)))
        grown = global_keep_largest(
            {n: grads[n].detach().abs() for n in new}, candidates, grow
        )
        return {n: new[n] | grown[n] for n in new}

    def final_masks(
        self, weights: TensorMap, masks: TensorMap
    ) -> Masks:
        """Masks at the end of training: pruned by global magnitude to B if
        the run ended with the soft bound's extra weights still active."""
        budget = self.budget(masks)
        if count_active(masks) <= budget:
            return {n: m.clone() for n, m in masks.items()}
        magnitude = {n: weights[n].detach().abs() for n in masks}
        return global_keep_largest(magnitude, masks, budget)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["removed"] = {n: r.clone() for n, r in self.removed.items()}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.removed = {n: r.clone().bool() for n, r in state["removed"].items()}
