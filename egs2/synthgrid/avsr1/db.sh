# db.sh — corpus location of the synthetic GRID-like corpus (generated at stage 1
# by local/data.sh; relative paths are relative to this recipe directory).
SYNTHGRID=${SYNTHGRID:-downloads/synthgrid}

# Optional: the NOISEX-92 babble recording (babble.wav; any format and rate,
# resampled to 16 kHz) for stage 6: training augmentation and the noisy test
# sets. Empty: synthetic babble summed from the corpus' own utterances.
NOISEX_BABBLE=${NOISEX_BABBLE:-}
