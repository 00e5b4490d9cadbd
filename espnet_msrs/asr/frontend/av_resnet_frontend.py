"""Audio, visual or audio-visual ResNet front end on a packed 25 fps stream.

One ESPnet front end for ASR, VSR and AVSR (MSRS / LR-SMS papers, Sec. 3):
``modality: audio`` is the 1D ResNet-18 on the raw z-normalised waveform,
``video`` the 3D-conv + 2D ResNet-18 on 88×88 mouth crops, ``av`` both,
concatenated frame by frame and fused by a 2-layer MLP (8192 hidden units).

Packed input (our design, so that the trained model is a plain
``ESPnetASRModel`` that ESPnet's own ``Speech2Text``/``asr_inference``/model
zoo build and decode): :class:`espnet_msrs.train.av_preprocessor.AVPreprocessor`
turns an utterance's waveform and video into one ``speech`` array of shape
``(T, D)`` at the video frame rate (25 fps), where each row holds, in this
order, the ``hop_length`` (640) audio samples of that 40 ms frame (if audio
is used) and the ``crop_size²`` pixels of the normalised video frame (if
video is used).  ESPnet batches, pads and sorts it by ``T`` like any feature
sequence; this front end unpacks it:

    speech (B, T, D) -> audio (B, T·640) -> AudioResNetFrontend -> (B, T, 512)
                     -> video (B, T, 88, 88) -> VideoResNetFrontend -> (B, T, 512)
    av: concat (B, T, 1024) -> MLPFusion -> (B, T, fusion output_size)

Output lengths equal the number of frames T for every modality.
"""

from typing import Dict, Optional, Tuple

import torch
from espnet2.asr.frontend.abs_frontend import AbsFrontend
from typeguard import typechecked

from espnet_msrs.asr.frontend.audio_resnet_frontend import AudioResNetFrontend
from espnet_msrs.asr.frontend.mlp_fusion import MLPFusion
from espnet_msrs.asr.frontend.video_resnet_frontend import VideoResNetFrontend

MODALITIES = ("audio", "video", "av")


def packed_dim(modality: str, crop_size: int, hop_length: int) -> int:
    """Width D of a packed frame for a modality."""
    if modality not in MODALITIES:
        raise ValueError(f"modality={modality!r}; allowed: {MODALITIES}")
    return (hop_length if modality in ("audio", "av") else 0) + (
        crop_size * crop_size if modality in ("video", "av") else 0
    )


class AVResNetFrontend(AbsFrontend):
    """``frontend: av_resnet`` — ResNet front end(s) on a packed A/V stream.

    Args:
        modality: ``audio`` (ASR), ``video`` (VSR) or ``av`` (AVSR).
        crop_size: Side of the (square) video frames in the packed input.
        hop_length: Audio samples per video frame (16 kHz / 25 fps = 640).
        audio_conf: Keyword arguments of :class:`AudioResNetFrontend`.
        video_conf: Keyword arguments of :class:`VideoResNetFrontend`.
        fusion_conf: Keyword arguments of :class:`MLPFusion` (``av`` only;
            ``hidden_units`` default 8192, ``output_size`` = encoder width).
    """

    @typechecked
    def __init__(
        self,
        modality: str = "av",
        crop_size: int = 88,
        hop_length: int = 640,
        audio_conf: Optional[Dict] = None,
        video_conf: Optional[Dict] = None,
        fusion_conf: Optional[Dict] = None,
    ):
        super().__init__()
        self.input_dim = packed_dim(modality, crop_size, hop_length)
        if crop_size < 1 or hop_length < 1:
            raise ValueError(
                f"frontend_conf: crop_size={crop_size} and hop_length={hop_length} "
                "must be >= 1"
            )
        self.modality = modality
        self.crop_size = crop_size
        self.hop_length = hop_length
        self.audio_frontend = None
        self.video_frontend = None
        self.fusion = None
        if modality in ("audio", "av"):
            self.audio_frontend = AudioResNetFrontend(
                hop_length=hop_length, **(audio_conf or {})
            )
        if modality in ("video", "av"):
            self.video_frontend = VideoResNetFrontend(**(video_conf or {}))
        if modality == "av":
            conf = dict(fusion_conf or {})
            conf.setdefault("audio_input_size", self.audio_frontend.output_size())
            conf.setdefault("video_input_size", self.video_frontend.output_size())
            self.fusion = MLPFusion(**conf)
        elif fusion_conf:
            raise ValueError(
                f"frontend_conf.fusion_conf is only used with modality=av "
                f"(got modality={modality})"
            )

    def output_size(self) -> int:
        if self.fusion is not None:
            return self.fusion.output_size()
        if self.audio_frontend is not None:
            return self.audio_frontend.output_size()
        return self.video_frontend.output_size()

    def unpack(
        self, speech: torch.Tensor
    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(B, T, D) -> audio (B, T·hop) or None, video (B, T, H, W) or None."""
        if speech.dim() != 3 or speech.size(-1) != self.input_dim:
            raise ValueError(
                f"av_resnet front end (modality={self.modality}) expects packed "
                f"input (B, T, {self.input_dim}); got {tuple(speech.shape)}. "
                "Use preprocessor: av with the same modality/crop_size."
            )
        b, t, _ = speech.shape
        audio = video = None
        offset = 0
        if self.audio_frontend is not None:
            audio = speech[..., : self.hop_length].reshape(b, t * self.hop_length)
            offset = self.hop_length
        if self.video_frontend is not None:
            video = speech[..., offset:].reshape(b, t, self.crop_size, self.crop_size)
        return audio, video

    def forward(
        self, input: torch.Tensor, input_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Packed (B, T, D) + lengths (B,) -> features (B, T, output_size()), lengths."""
        audio, video = self.unpack(input)
        feats = []
        if audio is not None:
            a, a_lens = self.audio_frontend(audio, input_lengths * self.hop_length)
            feats.append(a)
        if video is not None:
            v, _ = self.video_frontend(video, input_lengths)
            feats.append(v)
        if self.fusion is not None:
            out = self.fusion(feats[0], feats[1], input_lengths)
        else:
            out = feats[0]
        return out, input_lengths
