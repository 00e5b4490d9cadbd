"""Audio-visual preprocessing and training-time augmentation (DESIGN.md §3).

Implements the data pipeline of the MSRS paper's lineage (Auto-AVSR style):

* video (``uint8`` (T, H, W) greyscale mouth crops, 25 fps): random
  ``crop_size``×``crop_size`` crop and horizontal flip (p = ``flip_prob``) in
  training, centre crop otherwise; pixels scaled to [0, 1] and normalised
  with mean 0.421 and std 0.165;
* audio (raw 16 kHz waveform): babble noise mixed in training at an SNR drawn
  uniformly from ``noise_snrs`` (``None`` = clean), optionally at the fixed
  ``eval_snr`` otherwise; then z-normalised per utterance;
* adaptive time masking in training, for each modality independently:
  ``ceil(masks_per_second × duration)`` masks, each of a length drawn
  uniformly from 0 to ``max_mask_sec`` seconds at a uniform position. Masked
  video frames are replaced by the utterance's mean frame, masked audio
  samples are set to 0 (the utterance mean after z-normalisation). Masks are
  applied after normalisation.

Text is tokenised by :class:`espnet2.train.preprocessor.CommonPreprocessor`,
which this class composes (its RIR/noise options keep working on "speech").

Randomness: every training call draws one seed from numpy's global RNG
(which ESPnet seeds with ``seed + epoch`` in each DataLoader worker) and uses
a local ``numpy.random.Generator`` from it, so one seed gives identical
outputs. With ``train=False`` no augmentation is applied; the noise segment
for ``eval_snr`` is chosen by a generator seeded from the utterance id, so
evaluation is deterministic too.
"""

import argparse
import inspect
import logging
import math
import zlib
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import soundfile
from espnet2.train.preprocessor import AbsPreprocessor, CommonPreprocessor
from typeguard import typechecked

logger = logging.getLogger(__name__)

#: Default SNRs (dB) for babble noise in training; None means clean speech.
DEFAULT_NOISE_SNRS = (-5, 0, 5, 10, 15, 20, None)


PACK_MODALITIES = ("audio", "video", "av")


def mix_at_snr(
    speech: np.ndarray,
    noise: np.ndarray,
    snr_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Mix ``noise`` into ``speech`` at exactly ``snr_db``.

    The noise is cut from a random offset, cyclically tiled if shorter than
    the speech, and scaled so that
    ``10 log10(mean(speech²) / mean(scaled_noise²)) == snr_db``.

    Args:
        speech: (N,) float waveform.
        noise: (M,) float waveform, M ≥ 1, not all zero.
        snr_db: Signal-to-noise ratio in dB.
        rng: Source of the random offset.

    Returns:
        mixed: (N,) waveform with the dtype of ``speech``. All-zero speech is
        returned unchanged (its SNR is undefined).

    Raises:
        ValueError: ``speech``/``noise`` not 1-D, empty or silent noise, or a
            non-finite ``snr_db``.
    """
    speech = np.asarray(speech)
    noise = np.asarray(noise)
    if speech.ndim != 1 or noise.ndim != 1 or noise.size == 0:
        raise ValueError(
            f"mix_at_snr: speech and noise must be non-empty 1-D arrays, "
            f"got shapes {speech.shape} and {noise.shape}"
        )
    if not math.isfinite(snr_db):
        raise ValueError(f"mix_at_snr: snr_db must be finite, got {snr_db}")
    n = speech.shape[0]
    m = noise.shape[0]
    if m >= n:
        offset = int(rng.integers(0, m - n + 1))
        segment = noise[offset : offset + n]
    else:
        offset = int(rng.integers(0, m))
        segment = np.resize(np.roll(noise, -offset), n)
    segment = segment.astype(np.float64)
    speech64 = speech.astype(np.float64)
    speech_power = np.mean(speech64**2)
    noise_power = np.mean(segment**2)
    if noise_power <= 0.0:
        raise ValueError("mix_at_snr: the noise segment is silent (all zeros)")
    if speech_power <= 0.0:
        return speech.copy()
    scale = math.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    mixed = speech64 + scale * segment
    out_dtype = speech.dtype if speech.dtype.kind == "f" else np.float64
    return mixed.astype(out_dtype)


def _time_mask(
    x: np.ndarray,
    rate: float,
    masks_per_second: float,
    max_mask_sec: float,
    fill: Union[float, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """Adaptive time masking along axis 0 (in place); see the module docstring.

    Args:
        x: (T, ...) array.
        rate: Frames (or samples) per second of axis 0.
        masks_per_second: Masks per second of signal.
        max_mask_sec: Longest mask in seconds.
        fill: Value or (...)-shaped array written into masked steps.
        rng: Random generator.

    Returns:
        x, masked.
    """
    length = x.shape[0]
    num_masks = math.ceil(masks_per_second * length / rate - 1e-9)
    max_len = int(round(max_mask_sec * rate))
    for _ in range(num_masks):
        width = min(int(rng.integers(0, max_len + 1)), length)
        start = int(rng.integers(0, length - width + 1))
        x[start : start + width] = fill
    return x


def _common_conf(conf: Dict[str, Any]) -> Dict[str, Any]:
    """Check the ``preprocessor_conf`` keys that go to CommonPreprocessor.

    Raises:
        ValueError: ``fs`` (given as ``sample_rate``) or a key that neither
            AVPreprocessor nor CommonPreprocessor takes.
    """
    if "fs" in conf:
        raise ValueError(
            f"preprocessor_conf fs={conf['fs']}: preprocessor av takes the "
            "sampling rate as sample_rate (and passes it to CommonPreprocessor as fs)"
        )
    common = set(inspect.signature(CommonPreprocessor.__init__).parameters)
    common -= {"self", "train", "fs"}
    unknown = sorted(set(conf) - common)
    if unknown:
        own = sorted(set(inspect.signature(AVPreprocessor.__init__).parameters)
                     - {"self", "train", "common_conf"})
        raise ValueError(
            f"preprocessor_conf: unknown key(s) {unknown} of preprocessor av; "
            f"allowed: {own} and CommonPreprocessor's {sorted(common)}"
        )
    return conf


class AVPreprocessor(AbsPreprocessor):
    """Preprocessor for ASR, VSR and AVSR data ("speech", "video", "text").

    Composes ESPnet's :class:`~espnet2.train.preprocessor.CommonPreprocessor`
    through its public interface: every keyword argument that is not one of
    the keys below goes to it (the arguments ``ASRTask.build_preprocess_fn``
    passes to any preprocessor, and its options such as ``rir_scp`` and
    ``noise_scp``, which keep working on "speech"); it tokenises the text and
    applies its own speech options before the steps of this class. Each
    modality is processed when present, so the same class serves audio-only,
    video-only and audio-visual data.

    Args:
        train: Training mode (augmentation on) or not.
        video_name: Data name of the video.
        sample_rate: Audio sampling rate in Hz (babble noise must match);
            CommonPreprocessor's ``fs``.
        video_fps: Video frame rate (for mask lengths in frames).
        crop_size: Side of the square video crop.
        flip_prob: Probability of a horizontal flip in training.
        video_mean: Mean of pixel/255 subtracted from the video.
        video_std: Std of pixel/255 the video is divided by.
        masks_per_second: Time masks per second of signal in training
            (0 disables time masking).
        max_mask_sec: Longest time mask in seconds.
        babble_path: Babble noise wav (see :mod:`espnet_msrs.data_prep.noise`);
            None disables noise mixing.
        noise_snrs: SNRs (dB) to draw from in training; None entries = clean.
        eval_snr: Fixed SNR (dB) of babble noise with ``train=False``; None
            evaluates clean speech.
        modality: ``audio``, ``video`` or ``av``: pack those streams into one
            ``speech`` stream for the ``av_resnet`` front end (see
            :meth:`_pack`); None: no packing.
        av_tolerance: Largest audio/video length difference in frames that
            packing pads or trims away.
        **common_conf: Keyword arguments of CommonPreprocessor
            (``speech_name``, ``text_name``, ``token_type``, ``rir_scp``, ...).

    Output of ``__call__`` (per utterance):
        speech: (N,) float32, z-normalised; with ``modality`` set, the packed
            stream (T, D) float32 instead, and no ``video``.
        video: (T, crop_size, crop_size) float32, normalised.
        text: (L,) int64 token ids (if a tokenizer is configured).

    Examples (YAML)::

        preprocessor: av
        preprocessor_conf:
            modality: av
            crop_size: 88
            babble_path: dump/babble.wav
            noise_snrs: [-5, 0, 5, 10, 15, 20, null]
    """

    @typechecked
    def __init__(
        self,
        train: bool,
        video_name: str = "video",
        sample_rate: int = 16000,
        video_fps: Union[int, float] = 25,
        crop_size: int = 88,
        flip_prob: float = 0.5,
        video_mean: float = 0.421,
        video_std: float = 0.165,
        masks_per_second: Union[int, float] = 1.0,
        max_mask_sec: float = 0.4,
        babble_path: Optional[Union[str, Path]] = None,
        noise_snrs: Sequence[Optional[Union[int, float]]] = DEFAULT_NOISE_SNRS,
        eval_snr: Optional[Union[int, float]] = None,
        modality: Optional[str] = None,
        av_tolerance: int = 2,
        **common_conf: Any,
    ):
        super().__init__(train)
        self.train = train
        self.common = CommonPreprocessor(
            train=train, fs=sample_rate, **_common_conf(common_conf)
        )
        self.speech_name = self.common.speech_name
        self.text_name = self.common.text_name
        self._check("sample_rate", sample_rate, sample_rate > 0, "> 0")
        self._check("video_fps", video_fps, video_fps > 0, "> 0")
        self._check("crop_size", crop_size, crop_size > 0, "> 0")
        self._check("flip_prob", flip_prob, 0.0 <= flip_prob <= 1.0, "in [0, 1]")
        self._check("video_std", video_std, video_std > 0, "> 0")
        self._check(
            "masks_per_second", masks_per_second, masks_per_second >= 0, ">= 0"
        )
        self._check("max_mask_sec", max_mask_sec, max_mask_sec >= 0, ">= 0")
        if isinstance(noise_snrs, str) or len(noise_snrs) == 0:
            raise ValueError(
                f"preprocessor_conf noise_snrs must be a non-empty list of SNRs "
                f"in dB or null (clean), got {noise_snrs!r}"
            )
        for snr in noise_snrs:
            if snr is not None and not math.isfinite(snr):
                raise ValueError(
                    f"preprocessor_conf noise_snrs must hold finite numbers or "
                    f"null, got {noise_snrs!r}"
                )
        if eval_snr is not None:
            self._check("eval_snr", eval_snr, math.isfinite(eval_snr), "finite")
            if babble_path is None:
                raise ValueError(
                    f"preprocessor_conf eval_snr={eval_snr} needs babble_path"
                )

        if modality is not None and modality not in PACK_MODALITIES:
            raise ValueError(
                f"preprocessor_conf modality must be one of {PACK_MODALITIES} or "
                f"null (no packing), got {modality!r}"
            )
        self._check("av_tolerance", av_tolerance, av_tolerance >= 0, ">= 0")
        hop = sample_rate / float(video_fps)
        if modality in ("audio", "av") and hop != int(hop):
            raise ValueError(
                f"preprocessor_conf sample_rate/video_fps = {hop} must be an integer "
                "number of samples per video frame to pack audio with video"
            )
        self.modality = modality
        self.av_tolerance = av_tolerance
        self.hop_length = int(hop)
        self.video_name = video_name
        self.sample_rate = sample_rate
        self.video_fps = float(video_fps)
        self.crop_size = crop_size
        self.flip_prob = flip_prob
        self.video_mean = video_mean
        self.video_std = video_std
        self.masks_per_second = float(masks_per_second)
        self.max_mask_sec = max_mask_sec
        self.babble_path = None if babble_path is None else str(babble_path)
        self.noise_snrs = tuple(noise_snrs)
        self.eval_snr = eval_snr
        uses_babble = train or eval_snr is not None
        self.babble = (
            self._load_babble(self.babble_path)
            if uses_babble and self.babble_path is not None
            else None
        )

    @staticmethod
    def _check(key: str, value: object, ok: bool, allowed: str) -> None:
        if not ok:
            raise ValueError(f"preprocessor_conf {key} must be {allowed}, got {value}")

    def _load_babble(self, path: str) -> np.ndarray:
        """Read the babble wav as a mono float64 array at ``sample_rate``."""
        if not Path(path).is_file():
            raise ValueError(f"preprocessor_conf babble_path={path}: no such file")
        noise, rate = soundfile.read(path, dtype="float64", always_2d=True)
        if rate != self.sample_rate:
            raise ValueError(
                f"preprocessor_conf babble_path={path}: sample rate {rate} Hz, "
                f"expected sample_rate={self.sample_rate}"
            )
        noise = noise.mean(axis=1)
        if noise.size == 0 or not np.any(noise):
            raise ValueError(f"preprocessor_conf babble_path={path}: silent or empty")
        logger.info(
            f"Loaded babble noise path={path} seconds={noise.size / rate:.1f}"
        )
        return noise

    def _rng(self, uid: str) -> np.random.Generator:
        """Per-utterance generator: from the global RNG in training, else from uid."""
        if self.train:
            return np.random.default_rng(np.random.randint(0, 2**31 - 1))
        return np.random.default_rng(zlib.crc32(uid.encode("utf-8")))

    def _process_speech(
        self, uid: str, speech: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Noise, z-normalisation and time masking of a waveform (N,) -> (N,)."""
        if speech.ndim != 1 or speech.shape[0] == 0:
            raise ValueError(
                f"AVPreprocessor: uid={uid}: {self.speech_name} must be a non-empty "
                f"mono waveform (N,), got shape {speech.shape} "
                f"(set force_single_channel: true for multi-channel audio)"
            )
        x = speech.astype(np.float64)
        snr = None
        if self.babble is not None:
            if self.train:
                snr = self.noise_snrs[int(rng.integers(0, len(self.noise_snrs)))]
            else:
                snr = self.eval_snr
        if snr is not None:
            x = mix_at_snr(x, self.babble, float(snr), rng)
        x = (x - x.mean()) / max(x.std(), 1e-8)
        if self.train and self.masks_per_second > 0:
            _time_mask(
                x,
                self.sample_rate,
                self.masks_per_second,
                self.max_mask_sec,
                0.0,
                rng,
            )
        return x.astype(np.float32)

    def _process_video(
        self, uid: str, video: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Crop, flip, normalisation and time masking (T, H, W) -> (T, c, c)."""
        if video.ndim != 3 or video.shape[0] == 0:
            raise ValueError(
                f"AVPreprocessor: uid={uid}: {self.video_name} must be a greyscale "
                f"video (T, H, W) with T > 0, got shape {video.shape}"
            )
        _, height, width = video.shape
        c = self.crop_size
        if height < c or width < c:
            raise ValueError(
                f"AVPreprocessor: uid={uid}: {self.video_name} frames are "
                f"{height}x{width}, smaller than crop_size={c}"
            )
        if self.train:
            top = int(rng.integers(0, height - c + 1))
            left = int(rng.integers(0, width - c + 1))
        else:
            top, left = (height - c) // 2, (width - c) // 2
        v = video[:, top : top + c, left : left + c]
        if self.train and rng.random() < self.flip_prob:
            v = v[:, :, ::-1]
        v = (v.astype(np.float32) / 255.0 - self.video_mean) / self.video_std
        v = np.ascontiguousarray(v, dtype=np.float32)
        if self.train and self.masks_per_second > 0:
            _time_mask(
                v,
                self.video_fps,
                self.masks_per_second,
                self.max_mask_sec,
                v.mean(axis=0),
                rng,
            )
        return v

    def __call__(
        self, uid: str, data: Dict[str, Union[str, np.ndarray]]
    ) -> Dict[str, np.ndarray]:
        """Process one utterance.

        Args:
            uid: Utterance id (named in errors; seeds the eval noise offset).
            data: ``speech`` (N,) float, ``video`` (T, H, W) uint8 (or float
                pixel values in [0, 255]), ``text`` str; each is optional.

        Returns:
            The processed dict (see the class docstring).
        """
        data = dict(data)
        rng = self._rng(uid)  # before CommonPreprocessor draws from the global RNG
        if (
            self.modality == "video"
            and self.video_name not in data
            and np.ndim(data.get(self.speech_name, ())) == 3
        ):
            # VSR decoded by ESPnet's asr_inference: video.scp given as "speech".
            data[self.video_name] = data.pop(self.speech_name)
        video = data.pop(self.video_name, None)
        # CommonPreprocessor: its speech options (rir_scp, noise_scp, ...) and
        # the tokenizer. Without a tokenizer it would return the text as a str,
        # which its own return annotation rejects: raw text bypasses it then.
        untouched = {}
        if self.common.tokenizer is None:
            untouched = {k: v for k, v in data.items() if isinstance(v, str)}
        data = self.common(uid, {k: v for k, v in data.items() if k not in untouched})
        data.update(untouched)
        if self.speech_name in data:
            speech = np.asarray(data[self.speech_name])
            if speech.ndim == 2 and speech.shape[1] == 1:  # (N, 1) from ESPnet
                speech = speech[:, 0]
            data[self.speech_name] = self._process_speech(uid, speech, rng)
        if video is not None:
            data[self.video_name] = self._process_video(uid, np.asarray(video), rng)
        if self.modality is not None:
            data = self._pack(uid, data)
        return data

    def _pack(self, uid: str, data: Dict) -> Dict:
        """Pack audio and/or video into ``speech`` (T, D) at the video rate.

        Row t holds the ``hop_length`` samples of frame t (audio) followed by
        the ``crop_size²`` pixels of frame t (video); see
        :class:`espnet_msrs.asr.frontend.av_resnet_frontend.AVResNetFrontend`.
        Audio is zero-padded to whole frames; with both streams the audio is
        padded/trimmed to the video's T when they differ by at most
        ``av_tolerance`` frames, else a ValueError names the utterance.
        """
        need_audio = self.modality in ("audio", "av")
        need_video = self.modality in ("video", "av")
        for needed, name, what in (
            (need_audio, self.speech_name, "audio"),
            (need_video, self.video_name, "video"),
        ):
            if needed and name not in data:
                raise ValueError(
                    f"utterance {uid}: modality={self.modality} needs {what} "
                    f"(data name {name!r}), got only {sorted(data)}"
                )
        hop = self.hop_length
        parts = []
        video = data.pop(self.video_name) if need_video else None
        if need_audio:
            audio = np.asarray(data[self.speech_name], dtype=np.float32)
            n_frames = -(-len(audio) // hop)
            if video is not None:
                if abs(n_frames - len(video)) > self.av_tolerance:
                    raise ValueError(
                        f"utterance {uid}: audio has {n_frames} frames "
                        f"({len(audio)} samples / {hop}) but video has "
                        f"{len(video)} frames; the tolerance is "
                        f"{self.av_tolerance} frames (preprocessor_conf av_tolerance)"
                    )
                n_frames = len(video)
            padded = np.zeros(n_frames * hop, dtype=np.float32)
            keep = min(len(audio), n_frames * hop)
            padded[:keep] = audio[:keep]
            parts.append(padded.reshape(n_frames, hop))
        if video is not None:
            video = np.asarray(video, dtype=np.float32)
            parts.append(video.reshape(len(video), -1))
        data[self.speech_name] = np.concatenate(parts, axis=1)
        data.pop(self.video_name, None)
        return data


def _conf_with_defaults(cls: type, conf: Optional[Dict]) -> Dict[str, Any]:
    """``conf`` completed with the defaults of ``cls.__init__``."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **(conf or {})}


def check_av_packing(args: argparse.Namespace) -> None:
    """Check that the ``av_resnet`` front end reads what the ``av`` preprocessor packs.

    The preprocessor packs the streams its ``modality`` names into ``speech``
    (:meth:`AVPreprocessor._pack`) and the front end unpacks them by its own
    ``modality``, ``crop_size`` and ``hop_length``; a disagreement would only
    show later as a shape error (or, for equal widths, as wrong inputs). Called
    by the task's ``build_model`` before training.

    Args:
        args: The training configuration (``frontend``, ``frontend_conf``,
            ``use_preprocessor``, ``preprocessor``, ``preprocessor_conf``).

    Raises:
        ValueError: Naming the disagreeing keys and their values.
    """
    from espnet2.tasks.asr import frontend_choices, preprocessor_choices

    from espnet_msrs.asr.frontend.av_resnet_frontend import AVResNetFrontend

    frontend = getattr(args, "frontend", None)
    preprocessor = getattr(args, "preprocessor", None)
    if not getattr(args, "use_preprocessor", True):
        preprocessor = None
    front_cls = frontend_choices.get_class(frontend) if frontend else None
    pre_cls = preprocessor_choices.get_class(preprocessor) if preprocessor else None
    unpacks = front_cls is not None and issubclass(front_cls, AVResNetFrontend)
    pre_conf = (
        _conf_with_defaults(AVPreprocessor, getattr(args, "preprocessor_conf", None))
        if pre_cls is not None and issubclass(pre_cls, AVPreprocessor)
        else None
    )
    packs = pre_conf is not None and pre_conf["modality"] is not None
    if not unpacks and not packs:
        return
    if not unpacks:
        raise ValueError(
            f"preprocessor: {preprocessor} with preprocessor_conf modality="
            f"{pre_conf['modality']} packs the streams for frontend: av_resnet, "
            f"but frontend is {frontend!r}; set frontend: av_resnet or "
            "preprocessor_conf modality: null"
        )
    front_conf = _conf_with_defaults(
        AVResNetFrontend, getattr(args, "frontend_conf", None)
    )
    if not packs:
        found = (
            f"preprocessor: {preprocessor!r} (use_preprocessor="
            f"{getattr(args, 'use_preprocessor', True)})"
            if pre_conf is None
            else "preprocessor_conf modality: null (no packing)"
        )
        raise ValueError(
            f"frontend: av_resnet (frontend_conf modality={front_conf['modality']}) "
            f"reads the packed stream of preprocessor: av with the same modality, "
            f"but the config has {found}"
        )
    modality = front_conf["modality"]
    hop = pre_conf["sample_rate"] / float(pre_conf["video_fps"])
    checks = [("modality", front_conf["modality"], pre_conf["modality"], "modality")]
    if modality in ("video", "av"):
        checks.append(
            ("crop_size", front_conf["crop_size"], pre_conf["crop_size"], "crop_size")
        )
    if modality in ("audio", "av"):
        checks.append(
            ("hop_length", front_conf["hop_length"], hop, "sample_rate/video_fps")
        )
    for front_key, front_value, pre_value, pre_key in checks:
        if front_value != pre_value:
            shown = f"{pre_value:g}" if isinstance(pre_value, float) else pre_value
            raise ValueError(
                f"frontend_conf {front_key}={front_value} disagrees with "
                f"preprocessor_conf {pre_key}={shown}: the av_resnet front end "
                "unpacks what preprocessor: av packs, so both must say the same"
            )
