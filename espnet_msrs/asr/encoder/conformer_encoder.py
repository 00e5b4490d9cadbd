"""Conformer encoder with per-group dense / LR-SMS low-rank linears and
optional LayerScale.

* LR-SMS (Fernandez-Lopez et al., "Full-Rank No More"): eq. 1 (SVD init) and
  eq. 2 (linear layer-wise rank) for the MHSA and FFN linears.
* LayerScale (Touvron et al., ICCV 2021), as combined with MSRS in MSRS Table 1.

The class subclasses espnet2's :class:`ConformerEncoder`: ESPnet builds and
initialises the dense blocks, then :func:`convert_block_linears` swaps the
chosen linears (``espnet_msrs.layers.linear_groups``).  MSRS masks (and the
other sparse-training methods) are applied to any model by ``--msrs_conf``,
not here.
With every group ``dense`` and ``layer_scale: false`` the module is exactly
espnet2's encoder (same parameter names and outputs).
"""

from typing import List, Union

from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from typeguard import typechecked

from espnet_msrs.layers.layer_scale import apply_layer_scale
from espnet_msrs.layers.linear_groups import convert_block_linears
from espnet_msrs.utils.signature import merge_init_signature


class MSRSConformerEncoder(ConformerEncoder):
    """espnet2 Conformer encoder + LR-SMS low-rank linears + LayerScale.

    Args:
        input_size: Input dimension (given by ESPnet's task).
        mhsa_linear: ``dense`` | ``lowrank`` for every attention
            projection (q, k, v, out, pos).
        ffn_linear: ``dense`` | ``lowrank`` for both linears of
            both feed-forward modules.
        mhsa_alpha: α or [α_i, α_f] of eq. 2 for MHSA layers (low rank only).
        ffn_alpha: α or [α_i, α_f] of eq. 2 for FFN layers (low rank only).
        layer_scale: Add a learnable per-channel scale to every residual
            branch (macaron FFN, self-attention, convolution, FFN).
        layer_scale_init: Its initial value (near zero; default 1e-4, our choice:
            the MSRS paper gives no value, CaiT uses 1e-1…1e-6 by depth).
        lowrank_init: ``svd`` (LR-SMS eq. 1 from the dense init; ESPnet's
            ``init:`` says which dense init) or ``kaiming`` (both factors
            He-normal, LR-SMS Fig. 4's baseline) for ``lowrank`` groups.
        **kwargs: Every argument of espnet2's ``ConformerEncoder``
            (``output_size``, ``attention_heads``, ``linear_units``,
            ``num_blocks``, ``input_layer``, …).
    """

    @typechecked
    def __init__(
        self,
        input_size: int,
        mhsa_linear: str = "dense",
        ffn_linear: str = "dense",
        mhsa_alpha: Union[float, List[float]] = 1.0,
        ffn_alpha: Union[float, List[float]] = 1.0,
        layer_scale: bool = False,
        layer_scale_init: float = 1e-4,
        lowrank_init: str = "svd",
        **kwargs,
    ):
        super().__init__(input_size, **kwargs)
        self.linear_plan = convert_block_linears(
            self.encoders,
            {"mhsa": mhsa_linear, "ffn": ffn_linear},
            {"mhsa": mhsa_alpha, "ffn": ffn_alpha},
            where="encoder_conf",
            lowrank_init=lowrank_init,
        )
        self.layer_scale_params = (
            apply_layer_scale(self.encoders, self.output_size(), layer_scale_init)
            if layer_scale
            else []
        )


merge_init_signature(MSRSConformerEncoder, ConformerEncoder)
