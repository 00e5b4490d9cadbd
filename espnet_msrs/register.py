"""Registration of espnet_msrs classes into espnet2's ``ClassChoices``.

ESPnet resolves ``encoder: msrs_conformer`` (and every other ``--<name>``
choice) through module-level ``ClassChoices`` objects in ``espnet2.tasks.asr``.
:func:`register` adds our classes there, so that ESPnet's own ``ASRTask``,
``Speech2Text`` and ``espnet_model_zoo`` build models that use them.

``import espnet_msrs`` must stay cheap (importing ``espnet2.tasks.asr`` takes
~10 s, and many recipe tools never need it), yet a user who writes::

    import espnet_msrs
    from espnet2.bin.asr_inference import Speech2Text

must get a registered ESPnet.  :func:`install_lazy_registration` therefore
registers at once if ``espnet2.tasks.asr`` is already imported, and otherwise
right after ``espnet2.tasks.asr`` finishes importing
(:func:`espnet_msrs.compat.call_after_import`).  Entry points call
:func:`register` explicitly, and so can any program.

Why this route: it needs nothing of ESPnet but the public module
``espnet2.tasks.asr``, its module-level ``ClassChoices`` objects (their
``classes`` dict) and ``espnet2.tasks.abs_task.scheduler_classes`` — the
names every ESPnet recipe's YAML resolves through, unchanged in ESPnet since
2020 — and ESPnet has no plug-in entry points to use instead.
"""

import threading
from typing import Dict, List, Tuple

from espnet_msrs.compat import call_after_import

_TARGET = "espnet2.tasks.asr"
_lock = threading.RLock()


def _choices() -> List[Tuple[object, str, str, type]]:
    """(ClassChoices, name, dotted class path, required base class) to add."""
    import espnet2.tasks.asr as asr_task
    from espnet2.asr.decoder.abs_decoder import AbsDecoder
    from espnet2.train.abs_espnet_model import AbsESPnetModel
    from espnet2.asr.encoder.abs_encoder import AbsEncoder
    from espnet2.asr.frontend.abs_frontend import AbsFrontend

    from espnet_msrs.asr.decoder.transformer_decoder import MSRSTransformerDecoder
    from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder
    from espnet_msrs.asr.espnet_model import MSRSESPnetModel

    entries = [
        (asr_task.model_choices, "msrs", MSRSESPnetModel, AbsESPnetModel),
        (asr_task.encoder_choices, "msrs_conformer", MSRSConformerEncoder, AbsEncoder),
        (
            asr_task.decoder_choices,
            "msrs_transformer",
            MSRSTransformerDecoder,
            AbsDecoder,
        ),
    ]
    from espnet2.train.preprocessor import AbsPreprocessor

    from espnet_msrs.asr.frontend.av_resnet_frontend import AVResNetFrontend
    from espnet_msrs.train.av_preprocessor import AVPreprocessor

    entries += [
        (asr_task.frontend_choices, "av_resnet", AVResNetFrontend, AbsFrontend),
        (asr_task.preprocessor_choices, "av", AVPreprocessor, AbsPreprocessor),
    ]
    return entries


def _schedulers() -> List[Tuple[str, type]]:
    """(name, class) to add to espnet2's ``scheduler_classes`` (``--scheduler``)."""
    from espnet_msrs.schedulers.warmup_constant_sqrt_cooldown import (
        WarmupConstantSqrtCooldownLR,
    )
    from espnet_msrs.schedulers.warmup_cosine import WarmupCosineLR

    return [
        ("warmup_constant_sqrt_cooldown", WarmupConstantSqrtCooldownLR),
        ("warmup_cosine", WarmupCosineLR),
    ]


def _register_schedulers(added: Dict[str, List[str]]) -> None:
    """Add our schedulers to espnet2's ``scheduler_classes`` dict (the choices
    of ``--scheduler``/``--scheduler2``, read when the parser is built)."""
    from espnet2.schedulers.abs_scheduler import AbsBatchStepScheduler
    from espnet2.tasks.abs_task import scheduler_classes

    for name, cls in _schedulers():
        if not issubclass(cls, AbsBatchStepScheduler):
            raise ValueError(
                f"{cls.__qualname__} must derive from AbsBatchStepScheduler to be "
                f"registered as --scheduler {name}"
            )
        existing = scheduler_classes.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"--scheduler {name} is already registered to "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        scheduler_classes[name] = cls
        added.setdefault("scheduler", []).append(name)


def register() -> Dict[str, List[str]]:
    """Add espnet_msrs classes to espnet2's ClassChoices (idempotent).

    Returns:
        Mapping choice name -> list of names this package provides there.

    Raises:
        ValueError: If a name is already taken by a different class, or a class
            does not derive from the base class the choice requires.
    """
    from espnet_msrs.utils.runtime import disable_nltk_downloads

    disable_nltk_downloads()  # before the espnet2 imports below reach g2p_en
    with _lock:
        added: Dict[str, List[str]] = {}
        for choices, name, cls, base in _choices():
            if not issubclass(cls, base):
                raise ValueError(
                    f"{cls.__qualname__} must derive from {base.__qualname__} to be "
                    f"registered as --{choices.name} {name}"
                )
            if choices.base_type is not None and not issubclass(
                cls, choices.base_type
            ):
                raise ValueError(
                    f"{cls.__qualname__} is not a {choices.base_type.__qualname__}"
                )
            existing = choices.classes.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(
                    f"--{choices.name} {name} is already registered to "
                    f"{existing.__module__}.{existing.__qualname__}"
                )
            choices.classes[name] = cls
            added.setdefault(choices.name, []).append(name)
        _register_schedulers(added)
        from espnet_msrs.train.video_data import register_data_types

        register_data_types()
        return added


def install_lazy_registration() -> None:
    """Register now if espnet2's ASR task is loaded, else when it gets imported."""
    call_after_import(_TARGET, register)
