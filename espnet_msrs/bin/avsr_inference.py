#!/usr/bin/env python3
"""Decode ASR, VSR or AVSR models: espnet2's ``asr_inference`` + a Python API.

Command line: exactly ``python -m espnet2.bin.asr_inference`` (beam search,
joint CTC/attention, n-best, batch and ``--model_tag`` options) after our
classes are registered, with ``--allow_variable_data_keys true`` by default
so that the ``video`` data name passes ESPnet's data-name check::

    python -m espnet_msrs.bin.avsr_inference --asr_train_config exp/x/config.yaml \
        --asr_model_file exp/x/valid.acc.ave.pth --output_dir exp/x/decode/test \
        --data_path_and_name_and_type dump/raw/test/wav.scp,speech,sound \
        --data_path_and_name_and_type dump/raw/test/video.scp,video,video

(for VSR give the video as ``video.scp,speech,video``).

Python: :class:`AVSpeech2Text` wraps ESPnet's ``Speech2Text``; it takes a
waveform, a video, or both, applies the model's own evaluation preprocessing
(``preprocessor: av``: z-normalisation, centre crop, normalisation, packing)
and decodes::

    s2t = AVSpeech2Text.from_pretrained("exp/x/packed/model.zip")
    text, tokens, token_ids, hyp = s2t(speech=wav, fs=rate, video=mouth_frames)[0]

Loading never runs code from a model file (issue 11): a packed model is
unpacked by :func:`espnet_msrs.utils.safe_load.unpack_packed_model` (no
member or ``meta.yaml`` entry outside the archive), and every model file is
checked with ``torch.load(weights_only=True)`` before ESPnet loads it — in
:class:`AVSpeech2Text` and on the command line (``--asr_model_file``,
``--lm_file``, ``--model_tag``).
"""

import logging
import sys
from typing import Any, Dict, List, Optional

import numpy as np

from espnet_msrs.register import register

logger = logging.getLogger(__name__)

#: ``Speech2Text`` arguments that name torch files ESPnet loads with
#: ``weights_only=False``.
TORCH_FILE_ARGS = ("asr_model_file", "lm_file", "ngram_file")


def check_model_files(kwargs: Dict[str, Any]) -> None:
    """Check each torch file among ``Speech2Text`` arguments (weights only).

    Raises:
        espnet_msrs.utils.safe_load.UnsafeFileError: A missing, truncated or
            code-carrying file (named).
    """
    from espnet_msrs.utils.safe_load import check_torch_file

    for key in TORCH_FILE_ARGS:
        path = kwargs.get(key)
        if path and str(path).endswith((".pth", ".pt")):
            check_torch_file(path, what=f"--{key}")


def model_sample_rate(train_args: Any) -> int:
    """Audio rate (Hz) a model was trained for: ``preprocessor_conf.sample_rate``
    of the ``av`` preprocessor, else ESPnet's ``frontend_conf.fs`` (16 kHz
    by default)."""
    import humanfriendly

    pre = getattr(train_args, "preprocessor_conf", None) or {}
    if getattr(train_args, "preprocessor", None) == "av" and "sample_rate" in pre:
        return int(pre["sample_rate"])
    fs = (getattr(train_args, "frontend_conf", None) or {}).get("fs", 16000)
    return int(humanfriendly.parse_size(fs) if isinstance(fs, str) else fs)


class AVSpeech2Text:
    """Audio / video / audio-visual front door to ESPnet's ``Speech2Text``.

    Args:
        **kwargs: Arguments of ``espnet2.bin.asr_inference.Speech2Text``
            (``asr_train_config``, ``asr_model_file``, ``beam_size``,
            ``ctc_weight``, ``device``, …).
    """

    def __init__(self, **kwargs: Any):
        register()
        from espnet2.bin.asr_inference import Speech2Text
        from espnet2.tasks.asr import ASRTask

        check_model_files(kwargs)
        self.speech2text = Speech2Text(**kwargs)
        self.preprocess = ASRTask.build_preprocess_fn(
            self.speech2text.asr_train_args, train=False
        )
        self.sample_rate = model_sample_rate(self.speech2text.asr_train_args)

    @classmethod
    def from_pretrained(
        cls,
        model_tag: Optional[str] = None,
        cachedir: Optional[str] = None,
        **kwargs: Any,
    ):
        """Build from a packed zip/tar or a model-zoo name, unpacked safely
        (:func:`espnet_msrs.utils.safe_load.unpack_packed_model`) into
        ``cachedir`` (default: ``espnet_model_zoo``'s cache)."""
        if model_tag is not None:
            from espnet_msrs.utils.safe_load import unpack_packed_model

            kwargs.update(**unpack_packed_model(model_tag, cachedir))
        return cls(**kwargs)

    def __call__(
        self,
        speech: Optional[np.ndarray] = None,
        video: Optional[np.ndarray] = None,
        uid: str = "utt",
        fs: Optional[int] = None,
    ) -> List:
        """Decode one utterance.

        Args:
            speech: Waveform (N,), for audio and audio-visual models.
            video: Mouth crops (T, H, W) uint8 at 25 fps, for visual and
                audio-visual models.
            uid: Name used in error messages.
            fs: Rate of ``speech`` in Hz; audio at another rate than the
                model's (:attr:`sample_rate`) is resampled, with a warning.
                None: ``speech`` is at the model's rate already.

        Returns:
            ESPnet's n-best list of (text, tokens, token_ids, hypothesis).
        """
        data = {}
        if speech is not None:
            speech = np.asarray(speech)
            if fs is not None and int(fs) != self.sample_rate:
                from espnet_msrs.data_prep.audio import resample

                logger.warning(
                    f"utterance {uid}: audio at {fs} Hz, the model expects "
                    f"{self.sample_rate} Hz: resampled"
                )
                speech = resample(speech, int(fs), self.sample_rate).astype(speech.dtype)
            data["speech"] = speech
        if video is not None:
            data["video"] = np.asarray(video)
        if not data:
            raise ValueError(f"utterance {uid}: give speech, video or both")
        if self.preprocess is not None:
            data = self.preprocess(uid, data)
        return self.speech2text(data["speech"])


def safe_inference_argv(argv: List[str]) -> List[str]:
    """Check the model files an ``asr_inference`` command line names.

    ``--asr_model_file``/``--lm_file``/``--ngram_file`` are checked with
    ``weights_only=True``; a ``--model_tag`` is unpacked with
    :func:`espnet_msrs.utils.safe_load.unpack_packed_model` and replaced by
    the files it holds (ESPnet's own unpacking checks nothing).

    Returns:
        The command line to hand to ESPnet.

    Raises:
        espnet_msrs.utils.safe_load.UnsafeFileError: A file that must not
            be loaded (named).
    """
    import argparse

    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for key in ("model_tag",) + TORCH_FILE_ARGS:
        parser.add_argument(f"--{key}", default=None)
    args, _ = parser.parse_known_args(argv)
    if args.model_tag:
        from espnet_msrs.utils.safe_load import unpack_packed_model

        files = unpack_packed_model(args.model_tag)
        out, skip = [], False
        for a in argv:
            if skip:
                skip = False
                continue
            if a == "--model_tag":
                skip = True
                continue
            if a.startswith("--model_tag="):
                continue
            out.append(a)
        for key, value in files.items():
            out += [f"--{key}", value]
        argv = out
        args, _ = parser.parse_known_args(argv)
    check_model_files(vars(args))
    return argv


def main(cmd=None):
    register()
    from espnet2.bin.asr_inference import main as espnet_main

    from espnet_msrs.utils.safe_load import UnsafeFileError

    argv = list(sys.argv[1:] if cmd is None else cmd)
    if not any(a.startswith("--allow_variable_data_keys") for a in argv):
        argv += ["--allow_variable_data_keys", "true"]
    try:
        argv = safe_inference_argv(argv)
    except UnsafeFileError as e:
        sys.exit(f"avsr_inference: {e}")
    espnet_main(argv)


if __name__ == "__main__":
    main()
