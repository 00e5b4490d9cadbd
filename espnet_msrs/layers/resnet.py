"""ResNet building blocks for the MSRS / LR-SMS front ends.

The visual and audio front ends of MSRS (Fernandez-Lopez et al., Interspeech
2024, Sec. 3 "VSR/AVSR architecture details") and LR-SMS (ASR "1D ResNet
front-end") follow the Auto-AVSR lineage (Ma et al., ICASSP 2021 / 2023;
"Visual speech recognition for multiple languages", Nature MI 2022): a stem
followed by a ResNet-18 trunk of :class:`BasicBlock` s (He et al., CVPR 2016)
with four stages of two blocks each, widths 64/128/256/512 and stage strides
1/2/2/2. The same code builds the 2D trunk (applied to every video frame) and
the 1D trunk (applied to the waveform features); stage widths, blocks and
strides are configurable so tiny models run fast on CPU.

Only plain ``nn.Conv1d``/``nn.Conv2d``, ``nn.BatchNorm*`` and activation
modules are used, and ``forward`` only *calls* them (never reads ``.weight``),
so MSRS masking, which swaps ``nn.ConvNd``/``nn.Linear`` modules for masked
ones, reaches every convolution weight.

For 1D trunks an optional ``lengths`` argument zeroes every position beyond an
utterance's valid length before each convolution reads it. The result for an
utterance is then exactly what it would be if the utterance were processed
alone (up to BatchNorm statistics in training mode), which the lineage does not
guarantee for zero-padded batches.
"""

from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from typeguard import typechecked

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}

#: Activation name -> factory(num_channels). "swish" (SiLU) is the Auto-AVSR
#: default; "prelu" (one slope per channel) that of the earlier lip-reading
#: ResNets; "relu" that of the original ResNet.
ACTIVATIONS: Dict[str, Callable[[int], nn.Module]] = {
    "relu": lambda channels: nn.ReLU(inplace=False),
    "prelu": lambda channels: nn.PReLU(num_parameters=channels),
    "swish": lambda channels: nn.SiLU(inplace=False),
}


def make_activation(
    name: str, channels: int, where: str = "frontend_conf"
) -> nn.Module:
    """Build an activation module by name.

    Args:
        name: One of :data:`ACTIVATIONS` (``"relu"``, ``"prelu"``, ``"swish"``).
        channels: Number of channels (used by ``"prelu"``).
        where: Config section named in error messages.

    Raises:
        ValueError: If ``name`` is not a known activation.
    """
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{where}: activation={name!r} is not supported; "
            f"allowed: {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name](channels)


def validate_resnet_config(
    widths: Sequence[int],
    blocks: Sequence[int],
    strides: Sequence[int],
    activation: str,
    where: str = "frontend_conf",
) -> None:
    """Check a ResNet trunk configuration.

    Raises:
        ValueError: Naming the offending key when ``widths``, ``blocks`` and
            ``strides`` are empty, differ in length or hold non-positive values,
            or when ``activation`` is unknown.
    """
    if len(widths) == 0:
        raise ValueError(f"{where}: widths must have at least one stage")
    for key, values in (("blocks", blocks), ("strides", strides)):
        if len(values) != len(widths):
            raise ValueError(
                f"{where}: {key} has {len(values)} entries but widths has "
                f"{len(widths)}; {key} and widths must have one entry per stage"
            )
    for key, values in (("widths", widths), ("blocks", blocks), ("strides", strides)):
        if any(v < 1 for v in values):
            raise ValueError(
                f"{where}: {key}={list(values)} must hold positive integers"
            )
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{where}: activation={activation!r} is not supported; "
            f"allowed: {sorted(ACTIVATIONS)}"
        )


def init_resnet_weights(module: nn.Module) -> None:
    """Initialise convolutions and BatchNorms as ResNets usually are.

    Every ``nn.Conv1d/2d/3d`` weight gets He-normal init with fan-out
    (``N(0, 2 / (k · C_out))``, k the kernel volume), BatchNorm weight 1 and
    bias 0 (He et al. 2016; the lineage's ResNet-18). ``nn.Linear`` layers are
    left to their own initialisation.

    Args:
        module: Root module; all sub-modules are visited.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def mask_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the positions beyond each sequence's length along the last axis.

    Args:
        x: (B, C, L) features.
        lengths: (B,) valid lengths.

    Returns:
        (B, C, L) with ``x[b, :, l] = 0`` for ``l >= lengths[b]``.
    """
    positions = torch.arange(x.size(-1), device=x.device)
    valid = positions[None, :] < lengths[:, None].to(x.device)
    return x * valid[:, None, :].to(x.dtype)


def check_input_lengths(
    owner: str, input_lengths: torch.Tensor, batch: int, length: int, unit: str
) -> None:
    """Check a front end's ``input_lengths`` against its input.

    Args:
        owner: The front end, named in the messages.
        input_lengths: (B,) valid length of every input.
        batch: B of the input.
        length: The input's padded length (samples or frames).
        unit: What ``length`` counts (``samples``, ``frames``).

    Raises:
        ValueError: ``input_lengths`` is not of shape (B,), or a length lies
            outside [0, length].
    """
    if input_lengths.shape != (batch,):
        raise ValueError(
            f"{owner}: input_lengths of shape "
            f"{tuple(input_lengths.shape)}; expected ({batch},)"
        )
    if batch > 0 and (input_lengths.min() < 0 or input_lengths.max() > length):
        raise ValueError(
            f"{owner}: input_lengths {input_lengths.tolist()} must "
            f"lie in [0, {length}] (the number of {unit} of the input)"
        )


def ceil_div(lengths: torch.Tensor, divisor: int) -> torch.Tensor:
    """``ceil(lengths / divisor)`` on integer tensors."""
    return torch.div(lengths + divisor - 1, divisor, rounding_mode="floor")


class BasicBlock(nn.Module):
    """ResNet basic block (two 3-tap convolutions and a shortcut), 1D or 2D.

    ``y = act2(bn2(conv2(act1(bn1(conv1(x))))) + shortcut(x))`` where
    ``shortcut`` is the identity, or a strided 1×1 convolution + BatchNorm when
    the stride or the width changes.

    Args:
        dim: 1 (sequences, (B, C, L)) or 2 (images, (B, C, H, W)).
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution and of the shortcut.
        activation: Activation name (see :data:`ACTIVATIONS`).
    """

    @typechecked
    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        activation: str = "relu",
    ):
        super().__init__()
        if dim not in _CONV:
            raise ValueError(f"BasicBlock: dim={dim} is not supported; allowed: 1, 2")
        conv, norm = _CONV[dim], _NORM[dim]
        self.dim = dim
        self.stride = stride
        self.conv1 = conv(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False
        )
        self.bn1 = norm(out_channels)
        self.act1 = make_activation(activation, out_channels)
        self.conv2 = conv(
            out_channels, out_channels, 3, stride=1, padding=1, bias=False
        )
        self.bn2 = norm(out_channels)
        self.act2 = make_activation(activation, out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv(in_channels, out_channels, 1, stride=stride, bias=False),
                norm(out_channels),
            )
        else:
            self.downsample = None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid output lengths of a 1D block: ``ceil(lengths / stride)``."""
        return ceil_div(lengths, self.stride)

    def forward(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (B, C_in, L) for ``dim=1`` or (B, C_in, H, W) for ``dim=2``; for
                1D with ``lengths``, positions ``>= lengths`` must be zero.
            lengths: (B,) valid input lengths (1D only). When given, positions
                beyond the valid output length are zeroed after each stage of
                the block, so padding never leaks into valid positions.

        Returns:
            (B, C_out, ceil(L/stride)) or (B, C_out, ceil(H/stride), ceil(W/stride)).
        """
        assert lengths is None or self.dim == 1, "lengths are for 1D blocks only"
        out_lengths = None if lengths is None else self.output_lengths(lengths)
        out = self.act1(self.bn1(self.conv1(x)))
        if out_lengths is not None:
            out = mask_time(out, out_lengths)
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        out = self.act2(out + residual)
        if out_lengths is not None:
            out = mask_time(out, out_lengths)
        return out


class ResNet(nn.Module):
    """ResNet trunk of :class:`BasicBlock` stages (ResNet-18 by default).

    Stage ``i`` holds ``blocks[i]`` blocks of width ``widths[i]``; its first
    block has stride ``strides[i]``. Stages are named ``layer1``, ``layer2``, …
    as in torchvision, so parameters read ``layer2.0.conv1.weight``. No stem,
    pooling or classifier: the front ends add those.

    Args:
        dim: 1 for a Conv1d trunk, 2 for a Conv2d trunk.
        in_channels: Channels of the stem output fed to the first stage.
        widths: Output channels per stage.
        blocks: Number of blocks per stage.
        strides: Stride of each stage's first block.
        activation: Activation name (see :data:`ACTIVATIONS`).
        where: Config section named in error messages.

    Raises:
        ValueError: For a bad stage configuration or activation (see
            :func:`validate_resnet_config`).
    """

    @typechecked
    def __init__(
        self,
        dim: int = 2,
        in_channels: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks: Sequence[int] = (2, 2, 2, 2),
        strides: Sequence[int] = (1, 2, 2, 2),
        activation: str = "relu",
        where: str = "frontend_conf",
    ):
        super().__init__()
        validate_resnet_config(widths, blocks, strides, activation, where)
        self.dim = dim
        self.strides = tuple(strides)
        self._output_size = widths[-1]
        channels = in_channels
        for i, (width, num, stride) in enumerate(zip(widths, blocks, strides)):
            stage = nn.Sequential(
                *[
                    BasicBlock(
                        dim,
                        channels if j == 0 else width,
                        width,
                        stride=stride if j == 0 else 1,
                        activation=activation,
                    )
                    for j in range(num)
                ]
            )
            self.add_module(f"layer{i + 1}", stage)
            channels = width
        self.num_stages = len(widths)
        init_resnet_weights(self)

    def output_size(self) -> int:
        """Channels of the trunk output (the last stage's width)."""
        return self._output_size

    def total_stride(self) -> int:
        """Product of the stage strides (per spatial/temporal axis)."""
        total = 1
        for stride in self.strides:
            total *= stride
        return total

    def stages(self) -> Tuple[nn.Sequential, ...]:
        """The stages ``layer1 … layerN`` in order."""
        return tuple(getattr(self, f"layer{i + 1}") for i in range(self.num_stages))

    def forward(
        self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Apply all stages.

        Args:
            x: (B, C_in, L) (1D) or (B, C_in, H, W) (2D).
            lengths: (B,) valid lengths along L (1D only; see
                :meth:`BasicBlock.forward`).

        Returns:
            Tuple of the output, (B, widths[-1], L') or (B, widths[-1], H', W'),
            and the valid output lengths (B,) (``None`` if ``lengths`` is None).
        """
        for stage in self.stages():
            for block in stage:
                x = block(x, lengths)
                if lengths is not None:
                    lengths = block.output_lengths(lengths)
        return x, lengths
