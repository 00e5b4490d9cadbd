#!/usr/bin/env python3
"""Cost of the mask updates of the MSRS Table 4 baselines (SET, RigL, GMP, CHASE).

Issue 13 asks that mask updates add at most 5 % to the average step time over
an update interval.  For each method this builds the same Conformer +
Transformer ESPnet model (768 wide, 2 encoder / 1 decoder blocks, 8 × 150
frames of 512-dim input, as ``bench/train_step``), trains it with the
method's :class:`~espnet_msrs.sparsity.masked_training.MaskedTraining` (the
shared mask mechanism, paper defaults, sparsity 0.4) under AdamW with
gradient clipping, and times, round-robin in one process, ordinary training
steps and steps at which the strategy updates the masks (the method's step
counter is set so that the next step is an update step).  Reported, per
method: the median ordinary step, the median update step, their difference
(the update's cost) and::

    overhead = (update step − ordinary step) / (update_interval · ordinary step)

the relative increase of the average step time over one update interval.
Usage::

    python bench/mask_update_cost.py [--device cuda] [--out exp/bench/mask_update_cost.json]
"""

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine_info, machine_line  # noqa: E402
from espnet_msrs.utils import atomic  # noqa: E402
from espnet_msrs.utils.runtime import setup_logging  # noqa: E402

logger = logging.getLogger(__name__)

METHODS = ("set", "rigl", "gmp", "chase")


def build_model(width: int, heads: int, units: int, enc_blocks: int, dec_blocks: int,
                input_size: int, vocab: int, seed: int) -> torch.nn.Module:
    """The benchmark's ESPnet model (``model: msrs``-free: the method is
    attached by hand, as the task does)."""
    from espnet2.asr.ctc import CTC
    from espnet2.asr.espnet_model import ESPnetASRModel

    from espnet_msrs.asr.decoder.transformer_decoder import MSRSTransformerDecoder
    from espnet_msrs.asr.encoder.conformer_encoder import MSRSConformerEncoder

    torch.manual_seed(seed)
    encoder = MSRSConformerEncoder(
        input_size, output_size=width, attention_heads=heads, linear_units=units,
        num_blocks=enc_blocks, input_layer="linear", macaron_style=True,
        rel_pos_type="latest", pos_enc_layer_type="rel_pos",
        selfattention_layer_type="rel_selfattn", activation_type="swish",
        use_cnn_module=True, cnn_module_kernel=31,
    )
    decoder = MSRSTransformerDecoder(vocab, width, attention_heads=heads,
                                     linear_units=units, num_blocks=dec_blocks)
    return ESPnetASRModel(
        vocab_size=vocab, token_list=[str(i) for i in range(vocab)], frontend=None,
        specaug=None, normalize=None, preencoder=None, encoder=encoder,
        postencoder=None, decoder=decoder, ctc=CTC(vocab, width), joint_network=None,
        ctc_weight=0.1,
    )


def measure(method: str, args: argparse.Namespace, device: torch.device
            ) -> Dict[str, Any]:
    """Ordinary and update steps of one method (see the module docstring)."""
    from espnet_msrs.sparsity.method_choices import build_sparse_method

    model = build_model(args.output_size, args.attention_heads, args.linear_units,
                        args.encoder_blocks, args.decoder_blocks, args.input_size,
                        args.vocab_size, args.seed)
    conf = {"mode": method, "sparsity": args.sparsity}
    if args.update_interval:
        conf["update_interval"] = args.update_interval
        if method == "chase":
            conf["channel_interval"] = args.update_interval
    sparse, selection = build_sparse_method(conf, seed=args.seed)
    sparse.setup(model, selection, seed=args.seed)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.03)
    sparse.attach_optimizers([optimizer])
    interval = sparse.strategy.update_interval
    rounds = args.repeats + 1
    # a run long enough that every timed step lies before the methods' end
    # fractions (RigL: 0.75 of training)
    sparse.start(model, steps_per_epoch=10 * (2 * rounds + 2) * interval, max_epoch=1)
    gen = torch.Generator().manual_seed(args.seed + 1)
    batch = {
        "speech": torch.randn(args.batch_size, args.frames, args.input_size,
                              generator=gen),
        "speech_lengths": torch.full((args.batch_size,), args.frames, dtype=torch.long),
        "text": torch.randint(1, args.vocab_size - 1, (args.batch_size, args.tokens),
                              generator=gen),
        "text_lengths": torch.full((args.batch_size,), args.tokens, dtype=torch.long),
    }
    batch = {k: v.to(device) for k, v in batch.items()}

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss, _, _ = model(**batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    plain: List[float] = []
    update: List[float] = []
    for r in range(rounds):  # round 0 is the warm-up of both kinds
        sparse.steps = 2 * (r + 1) * interval  # next step: not an update step
        p = step()
        sparse.steps = (2 * (r + 1) + 1) * interval - 1  # next: an update step
        before = sparse.mask_updates
        u = step()
        if sparse.mask_updates != before + 1:
            raise RuntimeError(f"{method}: the timed update step did not update the masks")
        if r > 0:
            plain.append(p)
            update.append(u)
    p, u = statistics.median(plain), statistics.median(update)
    return {
        "update_interval": interval,
        "step_s": plain,
        "update_step_s": update,
        "median_step_s": p,
        "median_update_step_s": u,
        "update_cost_s": u - p,
        "overhead": (u - p) / (interval * p),
        "sparsity": sparse.mask_state.sparsity(),
    }


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sparsity", type=float, default=0.4)
    parser.add_argument("--update_interval", type=int, default=None,
                        help="override the methods' ΔT (default: the papers')")
    parser.add_argument("--output_size", type=int, default=768)
    parser.add_argument("--attention_heads", type=int, default=12)
    parser.add_argument("--linear_units", type=int, default=3072)
    parser.add_argument("--encoder_blocks", type=int, default=2)
    parser.add_argument("--decoder_blocks", type=int, default=1)
    parser.add_argument("--input_size", type=int, default=512)
    parser.add_argument("--vocab_size", type=int, default=5000)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--tokens", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("exp/bench/mask_update_cost.json"))
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    args = get_parser().parse_args(cmd)
    setup_logging(logging.INFO)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    result: Dict[str, Any] = {"machine": machine_info(device), "config": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "methods": {}}
    for method in args.methods:
        entry = measure(method, args, device)
        result["methods"][method] = entry
        logger.info(
            f"mask_update_cost: method={method} update_interval={entry['update_interval']} "
            f"step_s={entry['median_step_s']:.3f} update_cost_s={entry['update_cost_s']:.3f} "
            f"overhead={100 * entry['overhead']:.2f}%"
        )
    atomic.write_json(args.out, result, indent=1)
    logger.info(f"mask_update_cost: {machine_line(result['machine'])} -> {args.out}")
    return result


if __name__ == "__main__":
    main()
