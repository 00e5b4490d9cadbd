"""espnet_msrs: MSRS sparse masks and LR-SMS low-rank layers for ESPnet (espnet2).

Importing the package registers its classes into espnet2's ``ClassChoices``
(at once if ``espnet2.tasks.asr`` is loaded, else as soon as it is imported;
see :mod:`espnet_msrs.register`), so that ESPnet's own tasks, ``Speech2Text``
and ``espnet_model_zoo`` can build models that use them.
"""

__version__ = "0.1.0"


from espnet_msrs.register import install_lazy_registration, register  # noqa: E402

install_lazy_registration()

__all__ = ["register", "__version__"]
