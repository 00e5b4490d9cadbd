"""Which weights a sparse-training method may mask: the one selector.

DESIGN §7, *selection*: every sparse-training method of this package (the
MSRS mask search, MSRS sparse / grad-masked retraining and the baselines of
MSRS Table 4) masks the weights that :class:`MaskSelection` selects, from the
``include``/``exclude`` parameter-name patterns of ``--msrs_conf``:

* candidates are the ``weight`` of every layer whose type is exactly
  ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d`` (or an MSRS
  masked layer made from one) — in front ends, fusion, encoder, decoder and
  the output layers; biases, norms, embeddings and subclasses of those types
  (ESPnet's own wrappers) are never candidates;
* a candidate is selected when its name ``f"{module}.weight"`` matches
  (``re.search``) at least one ``include`` pattern and no ``exclude``
  pattern; every pattern must match some candidate (a typo fails loudly,
  listing the candidates).

:func:`apply_masks` is the MSRS search's use of the selection: it replaces
the selected layers by the masked layers of
:mod:`espnet_msrs.sparsity.masked_layers` (same parameter names and order,
plus ``mask_logits``).
"""

import logging
import re
from typing import Dict, List, Sequence, Tuple, Type, Union

from torch import nn
from typeguard import typechecked

from espnet_msrs.sparsity.masked_layers import (
    MaskedConv1d,
    MaskedConv2d,
    MaskedConv3d,
    MaskedLinear,
    MaskedWeightMixin,
)

logger = logging.getLogger(__name__)

#: Plain layer type -> its MSRS masked counterpart.
MASKED_CLASSES: Dict[Type[nn.Module], Type[MaskedWeightMixin]] = {
    nn.Linear: MaskedLinear,
    nn.Conv1d: MaskedConv1d,
    nn.Conv2d: MaskedConv2d,
    nn.Conv3d: MaskedConv3d,
}
_MASKED_TYPES = tuple(MASKED_CLASSES.values())
_MAX_CANDIDATES_SHOWN = 20


def weight_name(module_name: str) -> str:
    """Name of the weight of the module ``module_name`` (``""`` = the root)."""
    return f"{module_name}.weight" if module_name else "weight"


def _as_patterns(patterns: Union[str, Sequence[str]], key: str) -> Tuple[str, ...]:
    """Normalise and compile-check a pattern list (a lone string is one pattern)."""
    if isinstance(patterns, str):
        patterns = [patterns]
    out = tuple(patterns)
    for pattern in out:
        if not isinstance(pattern, str):
            raise ValueError(f"{key}: pattern {pattern!r} is not a string")
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"{key} pattern {pattern!r} is not a valid regex: {e}")
    return out


class MaskSelection:
    """The maskable weights of a model, by parameter-name patterns.

    Args:
        include: Regexes of weight names to select (a lone string is one).
        exclude: Regexes of weight names to leave dense.
        where: Config key prefix used in error messages.

    Raises:
        ValueError: A pattern is not a valid regex.
    """

    def __init__(
        self,
        include: Union[str, Sequence[str]] = (".*",),
        exclude: Union[str, Sequence[str]] = (),
        where: str = "msrs_conf",
    ):
        self.where = where
        self.include = _as_patterns(include, f"{where}.include")
        self.exclude = _as_patterns(exclude, f"{where}.exclude")

    def __repr__(self) -> str:
        return f"MaskSelection(include={list(self.include)}, exclude={list(self.exclude)})"

    @staticmethod
    def candidates(model: nn.Module) -> List[Tuple[str, nn.Module]]:
        """(weight name, module) of every maskable layer, in module order.

        A module reachable under several names (tied) is listed once, under
        its first name (the name ``named_parameters()`` gives its weight).
        """
        seen = set()
        out = []
        for name, module in model.named_modules():
            if type(module) in MASKED_CLASSES or isinstance(module, _MASKED_TYPES):
                if id(module) not in seen:
                    seen.add(id(module))
                    out.append((weight_name(name), module))
        return out

    def selected_modules(self, model: nn.Module) -> Dict[str, nn.Module]:
        """Selected weight name -> its layer, in module order.

        Raises:
            ValueError: A pattern matches no candidate (the message lists them).
        """
        candidates = self.candidates(model)
        names = [name for name, _ in candidates]
        for key, patterns in (("include", self.include), ("exclude", self.exclude)):
            for pattern in patterns:
                if not any(re.search(pattern, n) for n in names):
                    shown = names[:_MAX_CANDIDATES_SHOWN]
                    more = len(names) - len(shown)
                    tail = f" ... and {more} more" if more > 0 else ""
                    raise ValueError(
                        f"{self.where}.{key} pattern {pattern!r} matches no "
                        f"maskable weight (Linear/Conv); maskable weights are: "
                        f"{shown}{tail}"
                    )
        return {
            name: module
            for name, module in candidates
            if any(re.search(p, name) for p in self.include)
            and not any(re.search(p, name) for p in self.exclude)
        }

    def select(self, model: nn.Module) -> Dict[str, nn.Parameter]:
        """Selected weight name -> weight parameter, in module order."""
        return {
            name: module.weight
            for name, module in self.selected_modules(model).items()
        }


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` of ``model`` is."""
    if not name:
        raise ValueError(
            f"cannot replace the root module ({type(model).__name__}) in place; "
            "wrap it in a container module first"
        )
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


@typechecked
def apply_masks(
    model: nn.Module,
    include: Union[str, Sequence[str]] = (".*",),
    exclude: Union[str, Sequence[str]] = (),
    **mask_kwargs: float,
) -> List[str]:
    """Replace the layers :class:`MaskSelection` selects by MSRS masked layers.

    Each replacement takes the place of the plain layer (same parameter
    names and order, plus ``mask_logits``; φ0 by eq. 3 of its weight).
    Layers that are already masked are kept, so the call is idempotent;
    a layer reachable under several names is replaced under each.

    Args:
        model: Model, changed in place.
        include: Regexes of weight names to mask.
        exclude: Regexes of weight names to keep dense.
        **mask_kwargs: ``mu``, ``rho``, ``varsigma``, ``tau_forward``,
            ``tau_backward`` of the new masked layers.

    Returns:
        Weight names of all selected layers (new and already masked).

    Raises:
        ValueError: A bad or unmatched pattern, or an unknown mask option.
    """
    selected = MaskSelection(include, exclude).selected_modules(model)
    targets = {id(module) for module in selected.values()}
    replaced: Dict[int, nn.Module] = {}
    for name, module in list(model.named_modules(remove_duplicate=False)):
        if id(module) not in targets or isinstance(module, _MASKED_TYPES):
            continue
        new = replaced.get(id(module))
        if new is None:
            new = MASKED_CLASSES[type(module)].from_dense(module, **mask_kwargs)
            replaced[id(module)] = new
        replace_module(model, name, new)
    logger.info(
        "MSRS masks: selected=%d new=%d of maskable=%d",
        len(selected),
        len(replaced),
        len(MaskSelection.candidates(model)),
    )
    return list(selected)


def masked_modules(model: nn.Module) -> Dict[str, MaskedWeightMixin]:
    """MSRS masked layers of ``model`` by module name, in module order."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, MaskedWeightMixin)
    }
