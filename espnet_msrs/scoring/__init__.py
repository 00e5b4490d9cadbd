"""Stage-12 scoring: WER/CER (own scorer and sclite) and ``RESULTS.md`` tables.

Nothing here imports espnet2, so scoring stays fast and runs without it.
"""
