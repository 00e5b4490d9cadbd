"""Tiny ResNet front ends and BatchNorm statistics shared by the front-end tests."""

import torch

#: Sizes of a tiny audio or video ResNet front end (2 stages, 4 and 8 channels).
TINY = dict(stem_channels=4, widths=(4, 8), blocks=(1, 1), strides=(1, 2))


def tiny_frontend(cls, **kwargs):
    """A ``cls`` front end at the :data:`TINY` sizes (``kwargs`` override them),
    initialised from seed 0."""
    torch.manual_seed(0)
    return cls(**{**TINY, **kwargs})


def randomise_batchnorm(module: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics/affine (fresh ones map 0 to 0)."""
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.5)
