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

:func:`align_lengths` makes the two streams frame-synchronous before fusion:
both front ends produce 25 fps, but the audio and video of an utterance may
differ by a frame or two (rounding of the waveform length, a dropped frame).
"""

from typing import Optional, Sequence, Tuple

import torch
from torch import nn
from typeguard import typechecked

#: How the common length of an utterance is chosen by :func:`align_lengths`.
REFERENCES = ("video", "audio", "min")


def _fit_time(x: torch.Tensor, own: torch.Tensor, common: torch.Tensor, total: int):
    """Zero frames >= own/common length and cut/zero-pad the time axis to ``total``."""
    keep = torch.minimum(own, common).to(x.device)
    if x.size(1) >= total:
        x = x[:, :total]
    else:
        x = torch.cat([x, x.new_zeros(x.size(0), total - x.size(1), *x.shape[2:])], 1)
    valid = torch.arange(total, device=x.device)[None, :] < keep[:, None]
    return x * valid.view(*valid.shape, *([1] * (x.dim() - 2))).to(x.dtype)


def align_lengths(
    a: torch.Tensor,
    a_lens: torch.Tensor,
    v: torch.Tensor,
    v_lens: torch.Tensor,
    tolerance: int = 2,
    uids: Optional[Sequence[str]] = None,
    reference: str = "video",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bring the audio and video streams of a batch to a common length.

    Per utterance the common length is the video length (``reference="video"``,
    the lineage's choice: audio is cut or padded to the video), the audio
    length (``"audio"``) or the shorter of the two (``"min"``). The other
    stream is trimmed, or zero-padded, to it; frames beyond the common length
    are zero in both outputs.

    Args:
        a: (B, T_a, D_a) audio frames.
        a_lens: (B,) valid audio frames.
        v: (B, T_v, D_v) video frames.
        v_lens: (B,) valid video frames.
        tolerance: Largest allowed ``|a_lens - v_lens|`` per utterance.
        uids: Optional utterance ids (B,) used in error messages.
        reference: ``"video"``, ``"audio"`` or ``"min"`` (see above).

    Returns:
        Tuple of audio (B, T, D_a), video (B, T, D_v) and common lengths (B,),
        with ``T = max(common lengths)``.

    Raises:
        ValueError: If an utterance's lengths differ by more than ``tolerance``
            (naming the utterance, by uid or batch index, and both lengths), or
            for inconsistent batch sizes, a negative tolerance or an unknown
            ``reference``.
    """
    if reference not in REFERENCES:
        raise ValueError(
            f"align_lengths: reference={reference!r}; allowed: {REFERENCES}"
        )
    if tolerance < 0:
        raise ValueError(f"align_lengths: tolerance={tolerance} must be >= 0")
    batch = a.size(0)
    if (
        v.size(0) != batch
        or a_lens.shape != (batch,)
        or v_lens.shape != (batch,)
        or (uids is not None and len(uids) != batch)
    ):
        raise ValueError(
            f"align_lengths: inconsistent batch: audio {tuple(a.shape)}, video "
            f"{tuple(v.shape)}, a_lens {tuple(a_lens.shape)}, v_lens "
            f"{tuple(v_lens.shape)}, uids {None if uids is None else len(uids)}"
        )
    a_lens = a_lens.to(v_lens.device)
    bad = ((a_lens - v_lens).abs() > tolerance).nonzero().flatten().tolist()
    if bad:
        details = "; ".join(
            f"utterance {uids[i] if uids is not None else f'at batch index {i}'}: "
            f"audio has {int(a_lens[i])} frames, video has {int(v_lens[i])} frames"
            for i in bad[:5]
        )
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(
            f"audio and video lengths differ by more than tolerance={tolerance} "
            f"frames: {details}{more}"
        )
    if reference == "video":
        lens = v_lens
    elif reference == "audio":
        lens = a_lens
    else:
        lens = torch.minimum(a_lens, v_lens)
    total = int(lens.max()) if batch > 0 else 0
    return _fit_time(a, a_lens, lens, total), _fit_time(v, v_lens, lens, total), lens


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

    align_lengths = staticmethod(align_lengths)

    def forward(
        self,
        audio: torch.Tensor,
        video: torch.Tensor,
        lengths: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Fuse frame-synchronous audio and video features.

        Args:
            audio: (B, T, D_a) audio frames.
            video: (B, T, D_v) video frames (same T; see :func:`align_lengths`).
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
                f"(B, T, {self.video_input_size}); align them with align_lengths"
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
