"""Visual front end: 3D convolution stem + per-frame 2D ResNet-18.

The VSR/AVSR front end of MSRS (Fernandez-Lopez et al., Interspeech 2024,
Sec. 3: "a 3D convolutional layer, a 2D ResNet-18") in the Auto-AVSR lineage
(Ma et al., "Visual speech recognition for multiple languages", 2022; Ma et
al., "Auto-AVSR", ICASSP 2023)::

    (B, T, H, W) grey mouth crops
      -> Conv3d(1 -> 64, kernel 5×7×7, stride 1×2×2, pad 2×3×3) + BN3d + act
      -> MaxPool3d(1×3×3, stride 1×2×2, pad 0×1×1)           (B, 64, T, H/4, W/4)
      -> 2D ResNet-18 on every frame                          (B·T, 512, H/32, W/32)
      -> global average pool                                  (B, T, 512)

The only temporal operation is the stem's 5-frame convolution; the output has
one 512-dim vector per input frame (25 fps). With the default sizes the front
end has ≈11.2 M parameters (15.7 k in the stem convolution).

Padding: frames at or beyond an utterance's length are zeroed before the stem
(so they act exactly like the stem's own temporal zero padding), the ResNet is
only run on valid frames, and padded output frames are zero. A valid frame's
output therefore never depends on the padding (in training mode the stem's
BatchNorm statistics still see the zeroed frames).
"""

from typing import Sequence, Tuple

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from torch import nn
from typeguard import typechecked

from espnet_msrs.layers.resnet import (
    ResNet,
    check_input_lengths,
    init_resnet_weights,
    make_activation,
    validate_resnet_config,
)


class VideoResNetFrontend(AbsFrontend):
    """3D-conv + 2D ResNet visual front end (the video branch of ``frontend: av_resnet``).

    Args:
        stem_channels: Output channels of the 3D convolution stem.
        widths: Channels of the ResNet stages.
        blocks: Basic blocks per stage.
        strides: Spatial stride of each stage's first block.
        activation: ``"swish"`` (the Auto-AVSR lineage, default), ``"prelu"``
            or ``"relu"``; used in the stem and in every block.

    Raises:
        ValueError: If ``widths``/``blocks``/``strides`` differ in length or
            hold non-positive values, or ``activation`` is unknown; or
            ``stem_channels`` < 1.
    """

    @typechecked
    def __init__(
        self,
        stem_channels: int = 64,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks: Sequence[int] = (2, 2, 2, 2),
        strides: Sequence[int] = (1, 2, 2, 2),
        activation: str = "swish",
    ):
        super().__init__()
        validate_resnet_config(widths, blocks, strides, activation)
        if stem_channels < 1:
            raise ValueError(
                f"frontend_conf: stem_channels={stem_channels} must be positive"
            )
        self.stem_conv = nn.Conv3d(
            1,
            stem_channels,
            kernel_size=(5, 7, 7),
            stride=(1, 2, 2),
            padding=(2, 3, 3),
            bias=False,
        )
        self.stem_norm = nn.BatchNorm3d(stem_channels)
        self.stem_act = make_activation(activation, stem_channels)
        self.stem_pool = nn.MaxPool3d(
            kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)
        )
        self.trunk = ResNet(
            dim=2,
            in_channels=stem_channels,
            widths=widths,
            blocks=blocks,
            strides=strides,
            activation=activation,
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        init_resnet_weights(self.stem_conv)
        init_resnet_weights(self.stem_norm)

    def output_size(self) -> int:
        """Feature dimension D of the output (the last stage's width)."""
        return self.trunk.output_size()

    def forward(
        self, input: torch.Tensor, input_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of grey mouth-crop videos frame by frame.

        Args:
            input: (B, T, H, W) or (B, T, 1, H, W) float frames, normalised
                (e.g. 88×88, mean 0.421 / std 0.165 removed).
            input_lengths: (B,) number of valid frames per video.

        Returns:
            Tuple of features (B, T, D) (zero at padded frames) and the
            unchanged lengths (B,).

        Raises:
            ValueError: For a wrong input rank, channel count or dtype, or a
                length outside [0, T].
        """
        x = input
        if x.dim() == 5:
            if x.size(2) != 1:
                raise ValueError(
                    f"VideoResNetFrontend: input of shape {tuple(x.shape)} has "
                    f"{x.size(2)} channels; expected grey frames (B, T, 1, H, W)"
                )
            x = x.squeeze(2)
        if x.dim() != 4:
            raise ValueError(
                f"VideoResNetFrontend: input of shape {tuple(input.shape)}; "
                "expected (B, T, H, W) or (B, T, 1, H, W)"
            )
        if not x.is_floating_point():
            raise ValueError(
                f"VideoResNetFrontend: input dtype {x.dtype}; expected normalised "
                "float frames"
            )
        batch, frames = x.shape[:2]
        check_input_lengths("VideoResNetFrontend", input_lengths, batch, frames, "frames")

        valid = torch.arange(frames, device=x.device)[None, :] < input_lengths[
            :, None
        ].to(x.device)  # (B, T)
        x = x * valid[:, :, None, None].to(x.dtype)
        x = self.stem_conv(x.unsqueeze(1))  # (B, C, T, H/2, W/2)
        x = self.stem_pool(self.stem_act(self.stem_norm(x)))  # (B, C, T, H/4, W/4)
        x = x.transpose(1, 2)  # (B, T, C, H', W')
        if not bool(valid.any()):
            return x.new_zeros(batch, frames, self.output_size()), input_lengths
        y, _ = self.trunk(x[valid])  # (N_valid, D, H'', W'')
        y = self.pool(y).flatten(1)  # (N_valid, D)
        out = y.new_zeros(batch, frames, y.size(1))
        out[valid] = y
        return out, input_lengths
