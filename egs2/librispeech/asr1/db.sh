#!/usr/bin/env bash
# Paths of the corpora on disk (read by local/data.sh). A value already in the
# environment wins, so `LIBRISPEECH=/data/LibriSpeech ./run.sh` works without editing.

# LibriSpeech (https://www.openslr.org/12): the folder that holds the unpacked
# sets train-clean-100/ train-clean-360/ train-other-500/ dev-clean/ dev-other/
# test-clean/ test-other/ (each <spk>/<chapter>/*.flac + *.trans.txt).
LIBRISPEECH=${LIBRISPEECH:-}

# Optional: the NOISEX-92 babble recording (babble.wav; any format and rate,
# resampled to 16 kHz) for stage 6: training augmentation and the noisy test
# sets. Empty: synthetic babble summed from the corpus' own utterances.
NOISEX_BABBLE=${NOISEX_BABBLE:-}
