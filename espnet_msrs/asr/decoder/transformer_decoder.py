"""Transformer decoder with per-group dense / LR-SMS low-rank linears and
optional LayerScale.

LR-SMS eq. 2 counts blocks inside the decoder on their own (b = 0 … B−1 over
the decoder's B blocks); MHSA covers both self- and source-attention
projections, FFN both feed-forward linears.  Mechanism and policy are shared
with :class:`espnet_msrs.asr.encoder.conformer_encoder.MSRSConformerEncoder`.
"""

from typing import List, Union

from espnet2.asr.decoder.transformer_decoder import TransformerDecoder
from typeguard import typechecked

from espnet_msrs.layers.layer_scale import apply_layer_scale
from espnet_msrs.layers.linear_groups import convert_block_linears
from espnet_msrs.utils.signature import merge_init_signature


class MSRSTransformerDecoder(TransformerDecoder):
    """espnet2 Transformer decoder + LR-SMS low-rank linears + LayerScale.

    Args:
        vocab_size: Output vocabulary size (given by ESPnet's task).
        encoder_output_size: Encoder width (given by ESPnet's task).
        mhsa_linear: ``dense`` | ``lowrank`` for self- and
            source-attention projections.
        ffn_linear: ``dense`` | ``lowrank`` for the FFN linears.
        mhsa_alpha: α or [α_i, α_f] (eq. 2) for MHSA layers.
        ffn_alpha: α or [α_i, α_f] (eq. 2) for FFN layers.
        layer_scale: LayerScale on self-attention, source-attention and FFN.
        layer_scale_init: Its initial value.
        lowrank_init: ``svd`` or ``kaiming`` for ``lowrank`` groups (see the
            encoder).
        **kwargs: Every argument of espnet2's ``TransformerDecoder``.
    """

    @typechecked
    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        mhsa_linear: str = "dense",
        ffn_linear: str = "dense",
        mhsa_alpha: Union[float, List[float]] = 1.0,
        ffn_alpha: Union[float, List[float]] = 1.0,
        layer_scale: bool = False,
        layer_scale_init: float = 1e-4,
        lowrank_init: str = "svd",
        **kwargs,
    ):
        super().__init__(vocab_size, encoder_output_size, **kwargs)
        self.linear_plan = convert_block_linears(
            self.decoders,
            {"mhsa": mhsa_linear, "ffn": ffn_linear},
            {"mhsa": mhsa_alpha, "ffn": ffn_alpha},
            where="decoder_conf",
            lowrank_init=lowrank_init,
        )
        self.layer_scale_params = (
            apply_layer_scale(self.decoders, encoder_output_size, layer_scale_init)
            if layer_scale
            else []
        )


merge_init_signature(MSRSTransformerDecoder, TransformerDecoder)
