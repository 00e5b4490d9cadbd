"""L2 gradient norm of chosen layers, reported through ESPnet's reporter.

MSRS Fig. 1 tracks the gradient norm of the first encoder feed-forward layer
to show exploding/vanishing gradients.  :class:`GradNormMonitor` keeps, for
each named group of parameters (selected by regex), the L2 norm of their
gradient as accumulated by backward (before ESPnet's gradient clipping; under
DDP the rank's local gradient), and adds it to the stats of the *next*
forward call (ESPnet registers stats right after forward, before backward), so
the value reported at step k is the norm of step k−1.  It stays a 0-dim
tensor on the device: no host sync in the training step.
"""

import re
from typing import Dict, Mapping

import torch

DEFAULT_GRAD_NORM_PARAMS = {
    "grad_norm_enc0_ffn": r"^encoder\.encoders\.0\.feed_forward\.w_1\.",
}


class GradNormMonitor:
    """Tracks gradient norms of parameter groups of one model.

    Args:
        model: The ESPnet model (``AbsESPnetModel``).
        groups: Stats key -> regex over parameter names (``re.search``).

    Raises:
        ValueError: If a regex matches no trainable parameter.
    """

    def __init__(self, model: torch.nn.Module, groups: Mapping[str, str]):
        self.norms_sq: Dict[str, Dict[str, torch.Tensor]] = {}
        self.handles = []
        for key, pattern in groups.items():
            regex = re.compile(pattern)
            params = [
                (n, p)
                for n, p in model.named_parameters()
                if p.requires_grad and regex.search(n)
            ]
            if not params:
                raise ValueError(
                    f"grad_norm_params: {key}={pattern!r} matches no trainable "
                    "parameter"
                )
            self.norms_sq[key] = {}
            for name, param in params:
                self.handles.append(
                    param.register_post_accumulate_grad_hook(
                        self._make_hook(key, name)
                    )
                )
        self.handles.append(model.register_forward_hook(self._report))

    def _make_hook(self, key: str, name: str):
        def hook(param: torch.Tensor) -> None:
            if param.grad is not None:
                self.norms_sq[key][name] = param.grad.detach().float().square().sum()

        return hook

    def norms(self) -> Dict[str, torch.Tensor]:
        """Current norms (of the last backward) per group."""
        out = {}
        for key, parts in self.norms_sq.items():
            if parts:
                out[key] = torch.stack(list(parts.values())).sum().sqrt()
        return out

    def _report(self, model, inputs, output):
        if not model.training or not isinstance(output, tuple) or len(output) != 3:
            return output
        loss, stats, weight = output
        norms = self.norms()
        if not norms:
            return output
        stats = dict(stats)
        stats.update(norms)
        return loss, stats, weight

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
