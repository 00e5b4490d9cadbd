#!/usr/bin/env python3
"""Train an ASR model with espnet_msrs classes (MSRS / LR-SMS / LayerScale).

Exactly espnet2's ``asr_train`` (same options, same outputs) with our classes
registered and the MSRS options added (``--msrs_conf``, ``--grad_norm_params``,
``--optim2``/``--scheduler2`` for the mask logits during a mask search)::

    python -m espnet_msrs.bin.asr_train --config conf/tuning/train_lr_sms.yaml ...
"""

from espnet_msrs.register import register


def get_parser():
    register()
    from espnet_msrs.tasks.asr import MSRSASRTask

    return MSRSASRTask.get_parser()


def main(cmd=None):
    r"""espnet_msrs ASR training (``--help`` lists every option)."""
    register()
    from espnet_msrs.tasks.asr import MSRSASRTask

    MSRSASRTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
