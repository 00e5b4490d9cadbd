"""Tiny models shared by the sparsity tests."""

import torch
from torch import nn

from espnet_msrs.sparsity.selection import masked_modules


class MyLinear(nn.Linear):
    """A Linear subclass: not an exact type, never masked."""


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.frontend = nn.Conv1d(2, 4, 3, padding=1)
        self.encoder = nn.Sequential(
            nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 4)
        )
        self.extra = MyLinear(4, 4)
        self.output_layer = nn.Linear(4, 5, bias=False)

    def forward(self, x):  # x: (B, 2, T)
        h = self.frontend(x).transpose(1, 2)
        return self.output_layer(self.extra(self.encoder(h)))


ALL_WEIGHTS = ["frontend.weight", "encoder.0.weight", "encoder.3.weight",
               "output_layer.weight"]


def set_logits(model, seed=0):
    """Random ±0.5 mask logits (about half of the entries pruned)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in masked_modules(model).values():
            sign = torch.randint(0, 2, module.weight.shape, generator=gen) * 2 - 1
            module.mask_logits.copy_(sign * 0.5)
