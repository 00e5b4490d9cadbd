"""Early audio-visual fusion: concatenation + 2-layer MLP.

MSRS (Fernandez-Lopez et al., Interspeech 2024, Sec. 3 "AVSR architecture
details"): "Audiovisual frontend outputs are concatenated and fed into a
2-layer MLP with 8,192 units and 768/1,024 outputs." As in the Auto-AVSR
lineage (Ma et al., ICASSP 2023) the MLP is::

    [audio ; video] (B, T, D_a + D_v)
      -> Linear(D_a + D_v, 8192) -> BatchNorm1d(8192) -> ReLU
      -> Linear(8192, output_size)                         (B, T, output_size)

Normalisation: BatchNorm over the hidden channels, computed on the valid
frames only when ``lengths`` are given (padded frames never enter the batch
statistics and their outputs are zero). Activation: ReLU, as in the lineage.
With the default sizes (512 + 512 -> 8192 -> 768) the MLP has ≈14.7 M
parameters.

Both streams arrive frame-synchronous: the ``av`` preprocessor packs audio
and video of an utterance at the video's frame count (``av_tolerance``).
"""

from typing import Optional

import torch
from torch import nn
from typeguard import typechecked

class MLPFusion(nn.Module):
    """Concatenate audio and video frames and mix them with a 2-layer MLP.

    Args:
        audio_input_size: D_a, the audio front end's output size.
        video_input_size: D_v, the video front end's output size.
        hidden_units: Width of the hidden layer (8192 in the paper).
        output_size: Output size (the encoder's input, 768/1024 in the paper).

    Raises:
        ValueError: If a size is not positive.
    """

    @typechecked
    def __init__(
        self,
        audio_input_size: int = 512,
        video_input_size: int = 512,
        hidden_units: int = 8192,
        output_size: int = 768,
    ):
        super().__init__()
        for key, value in (
            ("audio_input_size", audio_input_size),
            ("video_input_size", video_input_size),
            ("hidden_units", hidden_units),
            ("output_size", output_size),
        ):
            if value < 1:
                raise ValueError(f"fusion_conf: {key}={value} must be positive")
        self.audio_input_size = audio_input_size
        self.video_input_size = video_input_size
        self._output_size = output_size
        self.fc1 = nn.Linear(audio_input_size + video_input_size, hidden_units)
        self.norm = nn.BatchNorm1d(hidden_units)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(hidden_units, output_size)

    def output_size(self) -> int:
        """Feature dimension of the fused output."""
        return self._output_size

    def forward(
        self,
        audio: torch.Tensor,
        video: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Fuse frame-synchronous audio and video features.

        Args:
            audio: (B, T, D_a) audio frames.
            video: (B, T, D_v) video frames (the same T).
            lengths: Optional (B,) valid frames. When given, only valid frames
                go through the MLP (and into the BatchNorm statistics) and
                padded output frames are zero; otherwise all B·T frames do.

        Returns:
            (B, T, output_size) fused frames.

        Raises:
            ValueError: If the shapes do not match each other or the config.
        """
        if (
            audio.dim() != 3
            or video.dim() != 3
            or audio.shape[:2] != video.shape[:2]
            or audio.size(2) != self.audio_input_size
            or video.size(2) != self.video_input_size
        ):
            raise ValueError(
                f"MLPFusion: audio {tuple(audio.shape)} and video "
                f"{tuple(video.shape)} must be (B, T, {self.audio_input_size}) and "
                f"(B, T, {self.video_input_size}) with the same B and T"
            )
        x = torch.cat([audio, video], dim=-1)  # (B, T, D_a + D_v)
        batch, frames = x.shape[:2]
        if lengths is None:
            valid = torch.ones(batch, frames, dtype=torch.bool, device=x.device)
        else:
            if lengths.shape != (batch,):
                raise ValueError(
                    f"MLPFusion: lengths of shape {tuple(lengths.shape)}; "
                    f"expected ({batch},)"
                )
            valid = torch.arange(frames, device=x.device)[None, :] < lengths[
                :, None
            ].to(x.device)
        if not bool(valid.any()):
            return x.new_zeros(batch, frames, self._output_size)
        h = self.act(self.norm(self.fc1(x[valid])))  # (N_valid, hidden)
        y = self.fc2(h)  # (N_valid, output_size)
        out = y.new_zeros(batch, frames, self._output_size)
        out[valid] = y
        return out
