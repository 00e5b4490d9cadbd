#!/usr/bin/env python3
"""Train an ASR, VSR or AVSR model (audio and/or lip video) with espnet_msrs.

The same task as :mod:`espnet_msrs.bin.asr_train` (espnet2's ASR task + MSRS
options); data names ``speech`` (wav, type ``sound``), ``video`` (mp4/npy,
type ``video``) and ``text``.  With ``frontend: av_resnet`` and
``preprocessor: av`` (same ``modality``) the preprocessor packs the inputs
into one 25 fps ``speech`` stream, so the trained model is a plain
``ESPnetASRModel``::

    python -m espnet_msrs.bin.avsr_train --config conf/tuning/train_avsr_tiny.yaml \
        --train_data_path_and_name_and_type dump/raw/train/wav.scp,speech,sound \
        --train_data_path_and_name_and_type dump/raw/train/video.scp,video,video \
        --train_data_path_and_name_and_type dump/raw/train/text,text,text ...
"""

from espnet_msrs.bin.asr_train import get_parser, main  # noqa: F401

if __name__ == "__main__":
    main()
