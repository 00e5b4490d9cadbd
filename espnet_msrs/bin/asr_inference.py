#!/usr/bin/env python3
"""Decode with espnet2's ASR inference after registering espnet_msrs classes.

Same options and outputs as ``python -m espnet2.bin.asr_inference``; models
trained with espnet_msrs are plain ESPnet models once our classes are
registered (masks are folded into the weights before a model is final).
Model files are checked before ESPnet loads them (see
:func:`espnet_msrs.bin.avsr_inference.safe_inference_argv`).
"""

import sys

from espnet_msrs.register import register


def get_parser():
    register()
    from espnet2.bin.asr_inference import get_parser as espnet_get_parser

    return espnet_get_parser()


def main(cmd=None):
    register()
    from espnet2.bin.asr_inference import main as espnet_main

    from espnet_msrs.bin.avsr_inference import safe_inference_argv
    from espnet_msrs.utils.safe_load import UnsafeFileError

    try:
        argv = safe_inference_argv(list(sys.argv[1:] if cmd is None else cmd))
    except UnsafeFileError as e:
        sys.exit(f"asr_inference: {e}")
    espnet_main(argv)


if __name__ == "__main__":
    main()
