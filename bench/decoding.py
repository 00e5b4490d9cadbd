#!/usr/bin/env python3
"""Decoding-speed benchmark: real-time factor of one decoding job on the CPU.

Decodes test utterances the way stage 11 does — ESPnet's ``Speech2Text``
(joint CTC/attention beam search) behind :class:`AVSpeech2Text`, which
applies the model's own evaluation preprocessing — with one thread (one
decoding job per core; stage 11 runs ``--inference_nj`` of them), and
reports per model:

* the real-time factor (RTF) = CPU seconds of decoding ÷ seconds of speech,
  and the wall-clock RTF (which on a shared machine also counts waiting for
  a core), for ESPnet's batch beam search (``BatchBeamSearch``: the
  hypotheses of a step scored in one batch; ``Speech2Text`` selects it by
  itself when every scorer supports batches, as ours do) and for the plain
  ``BeamSearch`` that scores one hypothesis at a time, interleaved per
  utterance;
* the share of the preprocessing and the encoder (front end + encoder,
  ``asr_model.encode``) in the decoding time; the rest is the beam search.

Models (``--model NAME=CONFIG[:MODEL_FILE[:DECODE_CONFIG]]``, repeatable): a
training config with a trained checkpoint (e.g. the demo's
``exp/av_msrs_sparse/train/{config.yaml,valid.acc.ave.pth}``) decodes as in
the recipe (``maxlenratio`` etc. of its decode config); a config without a
checkpoint (e.g. a paper config) is built with random weights and a dummy
vocabulary of ``--vocab_size`` tokens, and since such a model seldom emits
``<eos>``, its hypotheses are made to run to the length a real transcript
has: ``maxlenratio`` = ``--tokens_per_second`` ÷ 25 (a fixed amount of
search work per second of speech). The decode config defaults to the
demo's ``conf/decode_asr_demo.yaml`` (beam 5) for the first model and to
the papers' ``conf/decode_asr.yaml`` (beam 40) otherwise, as the recipes
use them; give one to override.

Input: ``--data_dir`` with ``wav.scp`` and/or ``video.scp`` (the demo's
``dump/raw/test``); the first ``--num_utts`` utterances.

Usage::

    python bench/decoding.py --data_dir egs2/synthgrid/avsr1/dump/raw/test \\
        --model demo=egs2/synthgrid/avsr1/exp/av_msrs_sparse/train/config.yaml:egs2/synthgrid/avsr1/exp/av_msrs_sparse/train/valid.acc.ave.pth \\
        --model avsr_268m=conf/tuning/train_avsr.yaml --out exp/benchmark/decoding.json
"""

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

if __package__ in (None, ""):  # run as a script: python bench/decoding.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from bench import common  # noqa: E402
from espnet_msrs.utils.cli import parse_tool_args  # noqa: E402
from espnet_msrs.utils.data_dir import read_kv  # noqa: E402

logger = logging.getLogger(__name__)

FPS = 25.0
SAMPLE_RATE = 16000
DEMO_DECODE = common.REPO / "conf" / "decode_asr_demo.yaml"
PAPER_DECODE = common.REPO / "conf" / "decode_asr.yaml"
SEARCHES = ("batch", "plain")


@dataclasses.dataclass
class ModelSpec:
    """One model to decode (see ``--model``)."""

    name: str
    config: Path
    model_file: Optional[Path] = None
    decode_config: Optional[Path] = None

    @classmethod
    def parse(cls, text: str, first: bool) -> "ModelSpec":
        if "=" not in text:
            raise ValueError(f"--model {text!r}: expected NAME=CONFIG[:MODEL_FILE"
                             "[:DECODE_CONFIG]]")
        name, rest = text.split("=", 1)
        parts = rest.split(":")
        if len(parts) > 3 or not parts[0]:
            raise ValueError(f"--model {text!r}: expected NAME=CONFIG[:MODEL_FILE"
                             "[:DECODE_CONFIG]]")
        paths = [Path(p) if p else None for p in parts] + [None] * (3 - len(parts))
        for path in paths:
            if path is not None and not path.is_file():
                raise ValueError(f"--model {name}: {path} is not a file")
        decode = paths[2] or (DEMO_DECODE if first else PAPER_DECODE)
        return cls(name, paths[0], paths[1], decode)


def load_utterances(data_dir: Path, num_utts: int) -> List[Dict[str, Any]]:
    """The first ``num_utts`` utterances of ``data_dir`` (waveform and/or video)."""
    import soundfile

    from espnet_msrs.video.io import read_video

    wavs = read_kv(data_dir / "wav.scp") if (data_dir / "wav.scp").is_file() else {}
    videos = read_kv(data_dir / "video.scp") if (data_dir / "video.scp").is_file() else {}
    keys = list(videos or wavs)[:num_utts]
    if not keys:
        raise ValueError(f"--data_dir {data_dir}: no wav.scp or video.scp entries")
    utts = []
    for key in keys:
        utt: Dict[str, Any] = {"uid": key}
        if key in wavs:
            utt["speech"], rate = soundfile.read(
                common.resolve_scp_path(wavs[key], data_dir), dtype="float32")
            if rate != SAMPLE_RATE:
                raise ValueError(f"{wavs[key]}: {rate} Hz, expected {SAMPLE_RATE}")
        if key in videos:
            utt["video"] = read_video(
                common.resolve_scp_path(videos[key], data_dir), uid=key)
        utt["seconds"] = (len(utt["video"]) / FPS if "video" in utt
                          else len(utt["speech"]) / SAMPLE_RATE)
        utts.append(utt)
    return utts


def _random_weight_config(spec: ModelSpec, vocab_size: int, work: Path) -> Path:
    """A complete ``config.yaml`` (as training writes it) of a training YAML,
    with a dummy ``vocab_size`` word vocabulary."""
    from espnet_msrs.tasks.asr import MSRSASRTask

    token_list = work / f"{spec.name}_tokens.txt"
    token_list.write_text("\n".join(
        ["<blank>", "<unk>"] + [f"w{i}" for i in range(vocab_size - 3)] + ["<sos/eos>"]
    ) + "\n")
    args = MSRSASRTask.get_parser().parse_args([
        "--config", str(spec.config), "--token_list", str(token_list),
        "--token_type", "word", "--bpemodel", "none",
    ])
    conf = vars(args)
    conf["token_list"] = token_list.read_text().split()
    path = work / f"{spec.name}.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def build_decoders(spec: ModelSpec, vocab_size: int, tokens_per_second: float,
                   work: Path) -> Dict[str, Any]:
    """Two ``AVSpeech2Text`` of the model: batch and plain beam search."""
    from espnet.nets.batch_beam_search import BatchBeamSearch
    from espnet.nets.beam_search import BeamSearch

    from espnet_msrs.bin.avsr_inference import AVSpeech2Text

    decode = yaml.safe_load(spec.decode_config.read_text()) or {}
    if spec.model_file is None:
        config = _random_weight_config(spec, vocab_size, work)
        decode["maxlenratio"] = tokens_per_second / FPS
        decode["minlenratio"] = 0.0
    else:
        config = spec.config
    decoders = {}
    for search in SEARCHES:
        torch.manual_seed(0)  # the same random weights for both searches
        s2t = AVSpeech2Text(asr_train_config=str(config),
                            asr_model_file=None if spec.model_file is None
                            else str(spec.model_file),
                            device="cpu", batch_size=1, **decode)
        if not isinstance(s2t.speech2text.beam_search, BatchBeamSearch):
            raise ValueError(f"{spec.name}: ESPnet did not select BatchBeamSearch "
                             "(a scorer without batch support)")
        if search == "plain":
            s2t.speech2text.beam_search.__class__ = BeamSearch
        decoders[search] = s2t
    params = sum(p.numel() for p in decoders["batch"].speech2text.asr_model.parameters())
    return {"decoders": decoders, "decode": decode, "params": params,
            "random_weights": spec.model_file is None}


def decode_once(s2t: Any, utt: Dict[str, Any]) -> Dict[str, Any]:
    """Decode one utterance.

    Returns:
        CPU and wall seconds of the whole decoding (preprocessing, front end,
        encoder, beam search), CPU seconds of the preprocessing and encoder
        alone (a separate pass), and the best hypothesis' token ids.
    """
    data = {k: utt[k] for k in ("speech", "video") if k in utt}
    clock = common.CPUClock()
    packed = s2t.preprocess(utt["uid"], dict(data)) if s2t.preprocess else data
    speech = torch.as_tensor(packed["speech"]).unsqueeze(0)
    with torch.no_grad():
        s2t.speech2text.asr_model.encode(speech, torch.tensor([speech.size(1)]))
    encode = clock.elapsed()
    clock = common.CPUClock()
    nbest = s2t(uid=utt["uid"], **data)
    total = clock.elapsed()
    return {"cpu": total["cpu"], "wall": total["wall"], "encode_cpu": encode["cpu"],
            "token_ids": [int(t) for t in nbest[0][2]]}


def run_decoding(models: Sequence[ModelSpec], utts: List[Dict[str, Any]],
                 vocab_size: int, tokens_per_second: float, warmup: int,
                 work: Path) -> Dict[str, Any]:
    """Decode every utterance with every model and search, interleaved."""
    seconds = sum(u["seconds"] for u in utts)
    load_start = common.load_average()
    results: Dict[str, Any] = {}
    for spec in models:
        built = build_decoders(spec, vocab_size, tokens_per_second, work)
        decoders = built["decoders"]
        for utt in utts[:warmup]:
            for search in SEARCHES:
                decode_once(decoders[search], utt)
        samples: Dict[str, List[Dict[str, Any]]] = {s: [] for s in SEARCHES}
        for i, utt in enumerate(utts):
            for search in common.rotated(SEARCHES, i):
                samples[search].append(decode_once(decoders[search], utt))
            logger.info(f"decoding: model={spec.name} utt={i + 1}/{len(utts)} "
                        f"tokens={len(samples['batch'][-1]['token_ids'])}")
        entry: Dict[str, Any] = {
            "config": str(spec.config), "model_file": spec.model_file and str(spec.model_file),
            "decode_config": str(spec.decode_config), "decode": built["decode"],
            "params": built["params"], "random_weights": built["random_weights"],
        }
        for search in SEARCHES:
            s = samples[search]
            cpu, wall = sum(x["cpu"] for x in s), sum(x["wall"] for x in s)
            entry[search] = {
                "rtf": cpu / seconds, "rtf_wall": wall / seconds,
                "encoder_share": sum(x["encode_cpu"] for x in s) / cpu,
                "token_ids": [x["token_ids"] for x in s],
                "cpu_per_utt": common.summary([x["cpu"] for x in s]),
            }
        entry["batch_vs_plain"] = common.paired_ratio(
            [x["cpu"] for x in samples["plain"]], [x["cpu"] for x in samples["batch"]])
        results[spec.name] = entry
        del built, decoders
    machine = common.machine_info(load_average_start=load_start)
    return {"machine": machine, "utts": len(utts), "seconds": seconds,
            "utt_seconds": [u["seconds"] for u in utts], "models": results}


def format_result(result: Dict[str, Any]) -> str:
    lines = [common.machine_line(result["machine"]),
             f"{result['utts']} utterances, {result['seconds']:.1f} s of speech; "
             "one thread; RTF = CPU seconds / speech seconds (wall in brackets)"]
    for name, m in result["models"].items():
        d = m["decode"]
        weights = "random weights, hypotheses of a fixed length" if m["random_weights"] \
            else "trained"
        lines.append(
            f"{name}: {m['params'] / 1e6:.1f} M params ({weights}), beam "
            f"{d.get('beam_size')}, ctc_weight {d.get('ctc_weight')}: "
            f"batch beam search RTF {m['batch']['rtf']:.3f} ({m['batch']['rtf_wall']:.3f}), "
            f"preprocessing+encoder {100 * m['batch']['encoder_share']:.0f}%; plain beam "
            f"search RTF "
            f"{m['plain']['rtf']:.3f} ({m['plain']['rtf_wall']:.3f}); plain/batch "
            f"{m['batch_vs_plain']['median']:.2f} [{m['batch_vs_plain']['p25']:.2f}-"
            f"{m['batch_vs_plain']['p75']:.2f}]; tokens "
            f"{[len(t) for t in m['batch']['token_ids']]}")
    return "\n".join(lines)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="real-time factor of one CPU decoding job (ESPnet batch vs plain "
        "beam search) for trained or randomly initialised models")
    p.add_argument("--data_dir", type=Path, required=True,
                   help="data dir with wav.scp and/or video.scp (e.g. dump/raw/test)")
    p.add_argument("--model", action="append", required=True,
                   help="NAME=CONFIG[:MODEL_FILE[:DECODE_CONFIG]] (repeatable)")
    p.add_argument("--num_utts", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1,
                   help="utterances decoded once untimed per model first")
    p.add_argument("--vocab_size", type=int, default=5000,
                   help="vocabulary of models without a checkpoint")
    p.add_argument("--tokens_per_second", type=float, default=4.0,
                   help="hypothesis length of models without a checkpoint")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("exp/benchmark/decoding.json"))
    return p


def main(cmd: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Command-line entry point; returns the result written to ``--out``."""
    args = parse_tool_args(get_parser(), cmd)
    models = [ModelSpec.parse(m, i == 0) for i, m in enumerate(args.model)]
    if args.num_utts < 1 or args.threads < 1 or args.warmup < 0:
        raise ValueError("--num_utts and --threads must be >= 1, --warmup >= 0")
    utts = load_utterances(args.data_dir, args.num_utts)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="decoding.") as tmp:
            result = run_decoding(models, utts, args.vocab_size, args.tokens_per_second,
                                  args.warmup, Path(tmp))
    finally:
        torch.set_num_threads(threads)
    result["config"] = {k: (str(v) if isinstance(v, Path) else v)
                        for k, v in vars(args).items()}
    return common.write_result("decoding", args.out, result, format_result)


if __name__ == "__main__":
    main()
