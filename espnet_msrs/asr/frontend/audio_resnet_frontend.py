"""Audio front end: 1D ResNet-18 on the raw waveform, 25 frames per second.

The ASR front end of LR-SMS ("a 1D ResNet front-end" on raw, per-utterance
z-normalised waveforms) and the audio branch of the AVSR front end of MSRS
(Fernandez-Lopez et al., Interspeech 2024, Sec. 3), in the lineage of Ma et
al., "End-to-end audio-visual speech recognition with conformers" (ICASSP
2021) and Auto-AVSR (ICASSP 2023)::

    (B, N) 16 kHz waveform, zero-padded to a multiple of 640 samples
      -> Conv1d(1 -> 64, kernel 80, stride 4) + BN1d + act    (B, 64, N/4)
      -> 1D ResNet-18, stage strides 1/2/2/2                   (B, 512, N/32)
      -> AvgPool1d(kernel 20, stride 20)                       (B, 512, N/640)
      -> (B, ceil(N/640), 512)

Total stride: ``first_stride · prod(strides) · pool = 4 · 8 · 20 = 640``
samples = 40 ms, i.e. 25 fps, one frame per video frame. The average-pool size
is derived as ``hop_length / (first_stride · prod(strides))`` and must be an
integer. With the default sizes the front end has ≈3.9 M parameters.

Lengths: the lineage trims the waveform to a multiple of 640 samples (floor);
here the waveform is zero-padded instead, so an utterance of ``n`` samples
gives exactly ``ceil(n / 640)`` frames. The stem pads ``(k - s) // 2`` samples
on the left and the rest of ``k - s`` on the right (38 + 38 by default), so
every layer maps a multiple of its stride to an exact quotient.

Padding: samples beyond an utterance's length are zeroed, and features beyond
its valid length are zeroed before every convolution (see
:mod:`espnet_msrs.layers.resnet`), so each utterance's output equals that of
the utterance zero-padded to ``640·ceil(n/640)`` samples and processed alone
(up to BatchNorm statistics in training mode). Padded output frames are zero.
"""

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from torch import nn
from typeguard import typechecked

from espnet_msrs.layers.resnet import (
    ResNet,
    ceil_div,
    check_input_lengths,
    init_resnet_weights,
    make_activation,
    mask_time,
    validate_resnet_config,
)


class AudioResNetFrontend(AbsFrontend):
    """1D ResNet raw-waveform front end (the audio branch of ``frontend: av_resnet``).

    Args:
        stem_channels: Output channels of the first convolution.
        widths: Channels of the ResNet stages.
        blocks: Basic blocks per stage.
        strides: Temporal stride of each stage's first block.
        activation: ``"swish"`` (the Auto-AVSR lineage, default), ``"prelu"``
            or ``"relu"``; used in the stem and in every block.
        first_kernel: Kernel size (samples) of the first convolution.
        first_stride: Stride (samples) of the first convolution.
        hop_length: Samples per output frame (640 = 40 ms at 16 kHz, 25 fps).

    Raises:
        ValueError: For a bad stage configuration or activation; a
            non-positive ``stem_channels``/``first_stride``/``hop_length``;
            ``first_kernel < first_stride``; or a ``hop_length`` that is not a
            multiple of ``first_stride · prod(strides)``.
    """

    @typechecked
    def __init__(
        self,
        stem_channels: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks: Sequence[int] = (2, 2, 2, 2),
        strides: Sequence[int] = (1, 2, 2, 2),
        activation: str = "swish",
        first_kernel: int = 80,
        first_stride: int = 4,
        hop_length: int = 640,
    ):
        super().__init__()
        validate_resnet_config(widths, blocks, strides, activation)
        for key, value in (
            ("stem_channels", stem_channels),
            ("first_stride", first_stride),
            ("hop_length", hop_length),
        ):
            if value < 1:
                raise ValueError(f"frontend_conf: {key}={value} must be positive")
        if first_kernel < first_stride:
            raise ValueError(
                f"frontend_conf: first_kernel={first_kernel} must be >= "
                f"first_stride={first_stride}"
            )
        trunk_stride = first_stride
        for stride in strides:
            trunk_stride *= stride
        if hop_length % trunk_stride != 0:
            raise ValueError(
                f"frontend_conf: hop_length={hop_length} must be a multiple of "
                f"first_stride·prod(strides)={trunk_stride}"
            )
        self.hop_length = hop_length
        self.first_stride = first_stride
        self.stem_padding = (
            (first_kernel - first_stride) // 2,
            first_kernel - first_stride - (first_kernel - first_stride) // 2,
        )
        self.stem_conv = nn.Conv1d(
            1, stem_channels, kernel_size=first_kernel, stride=first_stride, bias=False
        )
        self.stem_norm = nn.BatchNorm1d(stem_channels)
        self.stem_act = make_activation(activation, stem_channels)
        self.trunk = ResNet(
            dim=1,
            in_channels=stem_channels,
            widths=widths,
            blocks=blocks,
            strides=strides,
            activation=activation,
        )
        self.pool_size = hop_length // trunk_stride
        self.pool = nn.AvgPool1d(kernel_size=self.pool_size, stride=self.pool_size)
        init_resnet_weights(self.stem_conv)
        init_resnet_weights(self.stem_norm)

    def output_size(self) -> int:
        """Feature dimension D of the output (the last stage's width)."""
        return self.trunk.output_size()

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames per utterance: ``ceil(lengths / hop_length)``."""
        return ceil_div(lengths, self.hop_length)

    def forward(
        self, input: torch.Tensor, input_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of waveforms at one frame per ``hop_length`` samples.

        Args:
            input: (B, N) or (B, N, 1) float waveform, z-normalised per utterance.
            input_lengths: (B,) number of valid samples per utterance.

        Returns:
            Tuple of features (B, ceil(N/hop_length), D) (zero at padded frames)
            and frame lengths ``ceil(input_lengths / hop_length)`` (B,).

        Raises:
            ValueError: For a wrong input rank or dtype, or a length outside
                [0, N].
        """
        x = input
        if x.dim() == 3 and x.size(2) == 1:
            x = x.squeeze(2)
        if x.dim() != 2:
            raise ValueError(
                f"AudioResNetFrontend: input of shape {tuple(input.shape)}; "
                "expected a mono waveform (B, N) or (B, N, 1)"
            )
        if not x.is_floating_point():
            raise ValueError(
                f"AudioResNetFrontend: input dtype {x.dtype}; expected a float "
                "(z-normalised) waveform"
            )
        batch, samples = x.shape
        check_input_lengths("AudioResNetFrontend", input_lengths, batch, samples, "samples")

        out_lengths = self.output_lengths(input_lengths)
        frames = -(-samples // self.hop_length)
        # Zero the batch padding, then pad to a whole number of frames.
        x = mask_time(x.unsqueeze(1), input_lengths)  # (B, 1, N)
        x = F.pad(x, (0, frames * self.hop_length - samples))
        # Every utterance is processed as if zero-padded to whole frames.
        lengths = torch.div(
            out_lengths * self.hop_length, self.first_stride, rounding_mode="floor"
        )
        x = self.stem_conv(F.pad(x, self.stem_padding))  # (B, C, N'/s)
        x = mask_time(self.stem_act(self.stem_norm(x)), lengths)
        x, lengths = self.trunk(x, lengths)  # (B, D, frames · pool_size)
        x = self.pool(x)  # (B, D, frames)
        x = mask_time(x, out_lengths).transpose(1, 2)  # (B, frames, D)
        return x, out_lengths
