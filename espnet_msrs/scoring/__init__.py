"""Stage-12 scoring: WER/CER (sclite where installed, jiwer otherwise) and
``RESULTS.md`` tables.

Nothing here imports espnet2, so scoring stays fast and runs without it.
"""
