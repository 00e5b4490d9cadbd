"""L2 gradient norm of chosen layers, reported through ESPnet's reporter.

MSRS Fig. 1 tracks the L2 gradient norm of "the first feed-forward layer in
the encoder" to show exploding/vanishing gradients.  :class:`GradNormMonitor`
keeps, for each named group of parameters (selected by regex), the L2 norm of
their gradient as accumulated by backward (before ESPnet's gradient clipping,
after un-doing AMP loss scaling; under DDP the rank's local gradient).  Its
owner, :class:`espnet_msrs.asr.espnet_model.MSRSESPnetModel`, adds
:meth:`GradNormMonitor.norms` to the stats of the *next* training forward
(ESPnet registers stats right after forward, before backward), so the value
reported at step k is the norm of step k−1 (the first step of a run reports
none).  It stays a 0-dim tensor on the device: no host sync in the step.

The default group (:func:`default_grad_norm_params`) is the first linear
(``w_1``) of the first feed-forward module of encoder block 0 — the macaron
FFN when the Conformer has one (it runs first), else ``feed_forward`` — and
it takes the weight and bias (or the low-rank factors), never ``mask_logits``.
"""

import re
from typing import Any, Dict, Mapping, Optional

import torch

from espnet_msrs.compat import loss_scale

_FFN_W1 = r"^encoder\.encoders\.0\.{ffn}\.w_1\.(.+\.)?(weight|bias)$"

#: Stats key -> regex of the default monitored parameters, in priority order
#: (the first key whose regex matches a parameter of the model is used).
DEFAULT_GRAD_NORM_PARAMS = {
    "grad_norm_enc0_ffn": _FFN_W1.format(ffn="feed_forward_macaron"),
    "grad_norm_enc0_ffn_nomacaron": _FFN_W1.format(ffn="feed_forward"),
}


def default_grad_norm_params(model: torch.nn.Module) -> Dict[str, str]:
    """The default monitored group of ``model``: ``{"grad_norm_enc0_ffn": regex}``.

    Returns an empty dict when the model has no encoder feed-forward layer.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    for pattern in DEFAULT_GRAD_NORM_PARAMS.values():
        if any(re.search(pattern, n) for n in names):
            return {"grad_norm_enc0_ffn": pattern}
    return {}


class GradNormMonitor:
    """Tracks gradient norms of parameter groups of one model.

    Args:
        model: The ESPnet model (``AbsESPnetModel``).
        groups: Stats key -> regex over parameter names (``re.search``).

    Raises:
        ValueError: If a regex is invalid or matches no trainable parameter.
    """

    def __init__(self, model: torch.nn.Module, groups: Mapping[str, str]):
        self.norms_sq: Dict[str, Dict[str, torch.Tensor]] = {}
        self.handles = []
        self.scaler: Optional[Any] = None
        for key, pattern in groups.items():
            try:
                regex = re.compile(pattern)
            except re.error as e:
                raise ValueError(
                    f"grad_norm_params: {key}={pattern!r} is not a valid regex: {e}"
                )
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

    def set_scaler(self, scaler: Optional[Any]) -> None:
        """AMP ``GradScaler`` whose scale is divided out (None or disabled: no-op)."""
        if scaler is not None and not scaler.is_enabled():
            scaler = None
        self.scaler = scaler

    def _make_hook(self, key: str, name: str):
        def hook(param: torch.Tensor) -> None:
            if param.grad is None:
                return
            norm_sq = param.grad.detach().float().square().sum()
            scale = loss_scale(self.scaler)
            if scale is not None:
                norm_sq = norm_sq / scale.to(norm_sq.device).float().square()
            self.norms_sq[key][name] = norm_sq

        return hook

    def norms(self) -> Dict[str, torch.Tensor]:
        """Current norms (of the last backward) per group."""
        out = {}
        for key, parts in self.norms_sq.items():
            if parts:
                out[key] = torch.stack(list(parts.values())).sum().sqrt()
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
