"""The one place where espnet_msrs relies on internals of ESPnet, torch or Python.

Everything else in the package uses public interfaces only.  Each entry below
names what it relies on and the versions it was checked against; when
upgrading ESPnet or torch, re-check this file first (its tests are in
``tests/test_compat.py``).

Checked against: espnet 202511 (espnet2), torch 2.11.0, Python 3.11.

``import espnet_msrs`` uses this module (the import hook), so it imports
neither torch nor espnet2 at import time.
"""

import functools
import importlib.abc
import importlib.util
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

if TYPE_CHECKING:
    import torch

# ---------------------------------------------------------------- import hook


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs callbacks right after a module's code has been executed.

    Relies on: the import system calling ``loader.exec_module(module)`` for
    the spec a meta-path finder returns (PEP 451; Python 3.4+), which we wrap.
    Checked with Python 3.11 and ``espnet2.tasks.asr`` of espnet 202511
    (a plain source module).
    """

    def __init__(self):
        self.callbacks: Dict[str, Callable[[], None]] = {}
        self.lock = threading.RLock()

    def find_spec(self, fullname, path, target=None):
        with self.lock:
            callback = self.callbacks.get(fullname)
        if callback is None:
            return None
        # Find the real spec with the other finders, then wrap its loader.
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_call(module):
            exec_module(module)
            with self.lock:
                self.callbacks.pop(fullname, None)
                if not self.callbacks and self in sys.meta_path:
                    sys.meta_path.remove(self)
            callback()

        loader.exec_module = exec_and_call
        return spec


_finder = _PostImportFinder()


def call_after_import(module_name: str, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once ``module_name`` is imported (now if it is).

    The callback runs right after the module's code has run, before the
    ``import`` statement that triggered it returns.

    Args:
        module_name: Dotted module name, e.g. ``"espnet2.tasks.asr"``.
        callback: Called without arguments, once.
    """
    with _finder.lock:
        if module_name in sys.modules:
            callback()
            return
        _finder.callbacks[module_name] = callback
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


# -------------------------------------------------- ESPnet's training loop


def clipped_parameters_view(
    module: "torch.nn.Module",
    exclude: Callable[[str], bool],
    autocast_dtype: Optional["torch.dtype"] = None,
) -> "torch.nn.Module":
    """The model as ``espnet2.train.trainer.Trainer`` runs it, φ out of clipping.

    Relies on: ``Trainer.train_one_epoch`` of espnet 202511 clipping the
    gradients of ``model.parameters()`` of the model it is given
    (``torch.nn.utils.clip_grad_norm_(model.parameters(), ...)``, and
    ``--grad_noise`` adding noise to the same parameters), and on using
    nothing else of the model than calling it, ``train()``/``eval()`` and
    (``--create_graph_in_tensorboard`` only) its ``.module``.  The view's
    ``parameters()`` leaves out the parameters ``exclude`` names (the MSRS
    mask logits φ, clipped apart by their own optimizer), so ESPnet clips θ
    exactly as in a dense run.

    With ``autocast_dtype``, the forward runs under ``torch.autocast("cpu")``
    (ESPnet's ``--use_amp`` uses CUDA autocast only).

    Args:
        module: The (possibly DDP-wrapped) model.
        exclude: Predicate on a parameter name: True = not clipped by ESPnet.
        autocast_dtype: CPU autocast dtype, or None for no autocast.

    Returns:
        A ``torch.nn.Module`` whose ``.module`` is ``module``.
    """
    return _clipped_parameters_view_class()(module, exclude, autocast_dtype)


@functools.lru_cache(maxsize=None)
def _clipped_parameters_view_class() -> type:
    import torch

    class ClippedParametersView(torch.nn.Module):
        """See :func:`clipped_parameters_view`."""

        def __init__(self, module, exclude, autocast_dtype):
            super().__init__()
            self.module = module
            self.autocast_dtype = autocast_dtype
            self.excluded_ids = {
                id(p) for n, p in module.named_parameters() if exclude(n)
            }

        def parameters(self, recurse: bool = True):
            for param in self.module.parameters(recurse):
                if id(param) not in self.excluded_ids:
                    yield param

        def forward(self, *args, **kwargs):
            if self.autocast_dtype is None:
                return self.module(*args, **kwargs)
            with torch.autocast(device_type="cpu", dtype=self.autocast_dtype):
                return self.module(*args, **kwargs)

    return ClippedParametersView


def loss_scale(scaler: Optional[Any]) -> Optional["torch.Tensor"]:
    """The current AMP loss scale as a tensor on its device (no host sync).

    Relies on: ``torch.amp.GradScaler._scale`` (torch 2.11; the public
    ``get_scale()`` returns a Python float and so waits for the device).

    Args:
        scaler: ESPnet's ``GradScaler`` or None.

    Returns:
        The scale (1-element tensor), or None without an enabled scaler or
        before its first use.
    """
    if scaler is None or not scaler.is_enabled():
        return None
    return getattr(scaler, "_scale", None)


# ---------------------------------------------------------------- torch nn


def conv_forward(
    module: "torch.nn.Module", input: "torch.Tensor", weight: "torch.Tensor",
    bias: Optional["torch.Tensor"],
) -> "torch.Tensor":
    """``nn.Conv{1,2,3}d``'s forward with another weight (padding modes included).

    Relies on: ``torch.nn.modules.conv._ConvNd._conv_forward(input, weight,
    bias)`` (torch 2.11; present since torch 1.8).
    """
    return module._conv_forward(input, weight, bias)


def copy_state_dict_metadata(source: Dict, target: Dict) -> None:
    """Give ``target`` the per-module versions ``source.state_dict()`` carried.

    Relies on: the ``_metadata`` attribute of ``nn.Module.state_dict()``'s
    OrderedDict (torch 2.11), which ``load_state_dict`` reads for
    version-dependent loading (e.g. BatchNorm's ``num_batches_tracked``).
    """
    metadata = getattr(source, "_metadata", None)
    if metadata is not None:
        target._metadata = metadata
