#!/usr/bin/env bash
# Paths of the corpora on disk (read by local/data.sh). A value already in the
# environment wins, so `LRS3=/data/LRS3 ./run.sh` works without editing.

# LRS3 (https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrs3.html):
# the folder that holds pretrain/, trainval/ and test/ (<spk>/<id>.mp4 + .txt).
LRS3=${LRS3:-}

# Optional: landmark tree mirroring LRS3 (<dir>/<subset>/<spk>/<id>.pkl), e.g.
# the unpacked LRS3_landmarks.zip of the Auto-AVSR preparation. Empty: use
# `--local_data_opts "--detector mediapipe"` or stage 2 reports the videos.
LRS3_LANDMARKS=${LRS3_LANDMARKS:-}

# Optional: the NOISEX-92 babble recording (babble.wav; any format and rate,
# resampled to 16 kHz) for stage 6: training augmentation and the noisy test
# sets. Empty: synthetic babble summed from the corpus' own utterances.
NOISEX_BABBLE=${NOISEX_BABBLE:-}
