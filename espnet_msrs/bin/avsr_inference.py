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
    text, tokens, token_ids, hyp = s2t(speech=wav16k, video=mouth_frames)[0]
"""

from typing import Any, List, Optional

import numpy as np

from espnet_msrs.register import register


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

        self.speech2text = Speech2Text(**kwargs)
        self.preprocess = ASRTask.build_preprocess_fn(
            self.speech2text.asr_train_args, train=False
        )

    @classmethod
    def from_pretrained(cls, model_tag: Optional[str] = None, **kwargs: Any):
        """Build from a model-zoo name or a packed zip (after a safety check)."""
        if model_tag is not None:
            from pathlib import Path

            from espnet_model_zoo.downloader import ModelDownloader

            if Path(model_tag).exists():
                from espnet_msrs.utils.safe_extract import check_archive

                check_archive(model_tag)
            kwargs.update(**ModelDownloader().download_and_unpack(model_tag))
        return cls(**kwargs)

    def __call__(
        self,
        speech: Optional[np.ndarray] = None,
        video: Optional[np.ndarray] = None,
        uid: str = "utt",
    ) -> List:
        """Decode one utterance.

        Args:
            speech: 16 kHz waveform (N,), for audio and audio-visual models.
            video: Mouth crops (T, H, W) uint8 at 25 fps, for visual and
                audio-visual models.
            uid: Name used in error messages.

        Returns:
            ESPnet's n-best list of (text, tokens, token_ids, hypothesis).
        """
        data = {}
        if speech is not None:
            data["speech"] = np.asarray(speech)
        if video is not None:
            data["video"] = np.asarray(video)
        if not data:
            raise ValueError(f"utterance {uid}: give speech, video or both")
        if self.preprocess is not None:
            data = self.preprocess(uid, data)
        return self.speech2text(data["speech"])


def main(cmd=None):
    register()
    import sys

    from espnet2.bin.asr_inference import main as espnet_main

    argv = list(sys.argv[1:] if cmd is None else cmd)
    if not any(a.startswith("--allow_variable_data_keys") for a in argv):
        argv += ["--allow_variable_data_keys", "true"]
    espnet_main(argv)


if __name__ == "__main__":
    main()
