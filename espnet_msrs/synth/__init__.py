"""Synthetic GRID-like audio-visual corpus: espeak-ng speech, rendered faces.

* :mod:`espnet_msrs.synth.tts` — espeak-ng through ctypes: audio with phoneme
  and word timings.
* :mod:`espnet_msrs.synth.face` — 25 fps greyscale talking faces whose mouth
  follows visemes of the phoneme timeline, with 68-point landmarks.
* :mod:`espnet_msrs.synth.grid_corpus` — the corpus generator
  (CLI: ``python -m espnet_msrs.bin.make_synthgrid``).
"""
