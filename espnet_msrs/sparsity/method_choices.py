"""``--msrs_conf``: which sparse-training method a run uses, with its options.

One dict selects the method (``mode``), the weights it may mask
(``include``/``exclude``, :class:`~espnet_msrs.sparsity.selection.MaskSelection`)
and the method's own options (its constructor's keyword arguments)::

    mode          method                                            options
    none          plain training (dense, LR-SMS, LayerScale, MSRS   -
                  dense retraining from --init_param init.pth)
    search        MSRS mask search (MSRSSearch)                     mu, rho, varsigma,
                                                                    tau_forward,
                                                                    tau_backward,
                                                                    mask_penalty,
                                                                    penalty_mode,
                                                                    epsilon,
                                                                    min_search_epochs
    sparse        MSRS sparse retraining (MaskedTraining +          mask_file
                  FixedMasks, exact zeros)
    grad_masked   MSRS Table 4 "dense with MSRS masks" (masked      mask_file
                  gradients only)
    set, rigl,    baselines of MSRS Table 4                         see
    gmp, chase    (espnet_msrs.sparsity.baselines)                  espnet_msrs.sparsity.baselines

Numbers given on the command line arrive as strings (PyYAML reads ``1e-5``
without a dot as a string) and are converted by the option's annotation.
"""

import inspect
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from espnet_msrs.sparsity.baselines import STRATEGIES, build_strategy
from espnet_msrs.sparsity.fixed_masks import FixedMasks
from espnet_msrs.sparsity.masked_training import MaskedTraining
from espnet_msrs.sparsity.msrs_search import MSRSSearch
from espnet_msrs.sparsity.selection import MaskSelection
from espnet_msrs.sparsity.sparse_method import SparseMethod

KEY = "msrs_conf"
COMMON_OPTIONS = ("mode", "include", "exclude")


def _options_of(cls: Callable) -> Dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(cls).parameters.items()
        if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _coerce(cls: Callable, conf: Mapping[str, Any], mode: str,
            exclude: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Check ``conf`` against ``cls``'s keyword arguments; convert numbers."""
    options = {n: p for n, p in _options_of(cls).items() if n not in exclude}
    unknown = sorted(set(conf) - set(options))
    if unknown:
        raise ValueError(
            f"{KEY}: option(s) {unknown} are not options of mode={mode}; its "
            f"options: {sorted(COMMON_OPTIONS[1:]) + sorted(options)}"
        )
    out = {}
    for name, value in conf.items():
        annotation = options[name].annotation
        if annotation in (float, int) and isinstance(value, str):
            try:
                value = annotation(float(value)) if annotation is int else float(value)
            except ValueError:
                kind = "a number" if annotation is float else "an integer"
                raise ValueError(f"{KEY}.{name}={value!r} is not {kind}")
        elif annotation is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[name] = value
    missing = sorted(n for n, p in options.items() if p.default is p.empty and n not in out)
    if missing:
        raise ValueError(f"{KEY}.mode={mode} needs {KEY}.{missing[0]}")
    return out


def _fixed(mode: str, zero_weights: bool):
    def build(conf: Mapping[str, Any], seed: int) -> SparseMethod:
        opts = _coerce(FixedMasks, conf, mode)
        return MaskedTraining(mode, FixedMasks(**opts), zero_weights=zero_weights)

    return build


def _search(conf: Mapping[str, Any], seed: int) -> SparseMethod:
    return MSRSSearch(**_coerce(MSRSSearch, conf, "search"))


def _baseline(mode: str):
    def build(conf: Mapping[str, Any], seed: int) -> SparseMethod:
        opts = _coerce(STRATEGIES[mode], conf, mode)
        opts.setdefault("seed", seed)
        return MaskedTraining(mode, build_strategy(mode, **opts))

    return build


#: ``msrs_conf.mode`` -> builder(options, seed) of the method.
SPARSE_METHODS: Dict[str, Callable[[Mapping[str, Any], int], SparseMethod]] = {
    "search": _search,
    "sparse": _fixed("sparse", zero_weights=True),
    "grad_masked": _fixed("grad_masked", zero_weights=False),
    **{mode: _baseline(mode) for mode in STRATEGIES},
}
MODES = ("none",) + tuple(SPARSE_METHODS)


def build_sparse_method(
    conf: Optional[Mapping[str, Any]], seed: int = 0
) -> Tuple[Optional[SparseMethod], MaskSelection]:
    """The method and selection ``--msrs_conf`` asks for.

    Args:
        conf: ``--msrs_conf`` (None or empty: ``mode: none``).
        seed: ESPnet's ``--seed`` (default seed of methods that draw masks).

    Returns:
        ``(method or None for mode none, selection)``.

    Raises:
        ValueError: Unknown mode or option, a bad value, a missing required
            option; the message names the ``msrs_conf`` key.
    """
    conf = dict(conf or {})
    mode = conf.pop("mode", "none")
    selection = MaskSelection(
        conf.pop("include", (".*",)), conf.pop("exclude", ()), where=KEY
    )
    if mode == "none":
        if conf:
            raise ValueError(
                f"{KEY}: option(s) {sorted(conf)} need a sparse-training mode; "
                f"{KEY}.mode is none (allowed modes: {list(MODES)})"
            )
        return None, selection
    if mode not in SPARSE_METHODS:
        raise ValueError(f"{KEY}.mode={mode!r}; allowed: {list(MODES)}")
    return SPARSE_METHODS[mode](conf, seed), selection
