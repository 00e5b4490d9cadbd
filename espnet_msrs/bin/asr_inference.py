#!/usr/bin/env python3
"""Decode with espnet2's ASR inference after registering espnet_msrs classes.

Same options and outputs as ``python -m espnet2.bin.asr_inference``; models
trained with espnet_msrs are plain ESPnet models once our classes are
registered (masks are folded into the weights before a model is final).
"""

from espnet_msrs.register import register


def get_parser():
    register()
    from espnet2.bin.asr_inference import get_parser as espnet_get_parser

    return espnet_get_parser()


def main(cmd=None):
    register()
    from espnet2.bin.asr_inference import main as espnet_main

    espnet_main(cmd)


if __name__ == "__main__":
    main()
