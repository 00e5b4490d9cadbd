#!/usr/bin/env python3
"""Check a packed model: safe unpacking, model-zoo loading, one decoding (stage 13).

Example::

    python -m espnet_msrs.bin.check_packed_model --zip exp/x/packed/model.zip \\
        --data_dir dump/raw/test --modality av --inference_config conf/decode.yaml \\
        --reference_hyp exp/x/decode/test/text --out exp/x/packed/check.json

Steps (issue 5, item 5):

1. the archive is checked *before* anything is unpacked
   (:func:`espnet_msrs.utils.safe_load.check_packed_archive`): it must open
   (a truncated zip is named), no member may escape the target directory
   (ESPnet's own ``unpack`` writes members wherever their names point), and
   every ``meta.yaml`` entry must be a file of the archive (not an absolute
   or ``..`` path to a file elsewhere);
2. ``espnet_model_zoo``'s ``ModelDownloader`` unpacks the zip into a
   temporary cache, exactly as a user of the zoo would, and every model file
   is loaded with ``torch.load(weights_only=True)`` before ESPnet loads it:
   a pickle payload is refused, never run;
3. after ``import espnet_msrs``, ESPnet's ``Speech2Text`` (through
   :class:`espnet_msrs.bin.avsr_inference.AVSpeech2Text`, which applies the
   model's own evaluation preprocessing) decodes one utterance of
   ``--data_dir`` (``--uid``, default the first), with the decoding options
   of ``--inference_config``;
4. the hypothesis is compared with the one stage 11 wrote for the same
   utterance (``--reference_hyp``): they must be equal (the same model, the
   same beam search), unless ``--allow_mismatch true``.

The outcome is written to ``--out`` (JSON) and the exit status is non-zero
on any failure.
"""

import argparse
import inspect
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from espnet2.utils.types import str2bool

from espnet_msrs.utils import atomic
from espnet_msrs.utils.data_dir import read_kv
from espnet_msrs.utils.cli import tool_parser
from espnet_msrs.utils.runtime import setup_logging

logger = logging.getLogger(__name__)
MODALITIES = ("audio", "video", "av")


def _decode_options(inference_config: Optional[str]) -> Dict[str, Any]:
    """Keyword arguments of ``Speech2Text`` found in a decoding config."""
    if not inference_config:
        return {}
    import yaml
    from espnet2.bin.asr_inference import Speech2Text

    with open(inference_config, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    accepted = set(inspect.signature(Speech2Text.__init__).parameters) - {"self"}
    ignored = sorted(set(conf) - accepted)
    if ignored:
        logger.info(f"decoding options not used by Speech2Text: {ignored}")
    return {k: v for k, v in conf.items() if k in accepted}


def check_packed_model(
    zip_path: str,
    data_dir: str,
    modality: str,
    inference_config: Optional[str] = None,
    reference_hyp: Optional[str] = None,
    uid: Optional[str] = None,
    cache_dir: Optional[str] = None,
    allow_mismatch: bool = False,
) -> Dict[str, Any]:
    """Run the check (see the module docstring).

    Returns:
        The report: ``zip``, ``uid``, ``hyp``, ``reference_hyp``, ``match``,
        ``unpacked`` (files given by the model zoo), ``seconds``.

    Raises:
        ValueError: An unsafe archive, a bad argument, or a hypothesis that
            differs from ``reference_hyp`` (unless ``allow_mismatch``).
    """
    import soundfile

    from espnet_msrs.utils.safe_load import unpack_packed_model

    if modality not in MODALITIES:
        raise ValueError(f"--modality={modality!r}; allowed: {MODALITIES}")
    if cache_dir is None:
        with tempfile.TemporaryDirectory(prefix="espnet_msrs_zoo_") as tmp:
            return check_packed_model(zip_path, data_dir, modality, inference_config,
                                      reference_hyp, uid, tmp, allow_mismatch)
    start = time.monotonic()
    zip_path = str(Path(zip_path).resolve())
    cache = Path(cache_dir)
    files = unpack_packed_model(zip_path, cache)
    logger.info(f"archive and model files checked; unpacked into {cache}: {sorted(files)}")

    from espnet_msrs.bin.avsr_inference import AVSpeech2Text

    data = Path(data_dir)
    texts = read_kv(data / "text", allow_empty_value=True)
    uid = uid or next(iter(texts))
    if uid not in texts:
        raise ValueError(f"--uid {uid} is not in {data / 'text'}")
    speech = video = rate = None
    if modality in ("audio", "av"):
        speech, rate = soundfile.read(read_kv(data / "wav.scp")[uid], dtype="float32")
    if modality in ("video", "av"):
        from espnet_msrs.video.io import read_video

        video = read_video(read_kv(data / "video.scp")[uid], uid=uid)
    s2t = AVSpeech2Text(**files, device="cpu", **_decode_options(inference_config))
    nbest = s2t(speech=speech, video=video, uid=uid, fs=rate)
    hyp = nbest[0][0] if nbest else ""
    report: Dict[str, Any] = {
        "zip": zip_path,
        "unpacked": {k: str(v) for k, v in files.items()},
        "uid": uid,
        "reference_text": texts[uid],
        "hyp": hyp,
        "reference_hyp": None,
        "match": None,
    }
    if reference_hyp:
        ref = read_kv(reference_hyp, allow_empty_value=True).get(uid)
        report["reference_hyp"] = ref
        report["match"] = ref is not None and " ".join(ref.split()) == " ".join(hyp.split())
    report["seconds"] = round(time.monotonic() - start, 2)
    logger.info(
        f"packed-model decoding: uid={uid} hyp={hyp!r} stage11_hyp="
        f"{report['reference_hyp']!r} match={report['match']} ref={texts[uid]!r}"
    )
    if report["match"] is False and not allow_mismatch:
        raise ValueError(
            f"the packed model decodes {uid} as {hyp!r}, stage 11 wrote "
            f"{report['reference_hyp']!r}"
        )
    return report


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser(
        "Check a packed ESPnet model zip: safe unpack with espnet_model_zoo "
        "and decode one utterance with Speech2Text"
    )
    parser.add_argument("--zip", required=True, help="Packed model (espnet2.bin.pack)")
    parser.add_argument("--data_dir", required=True, help="Data dir with the utterance")
    parser.add_argument("--modality", required=True, choices=MODALITIES)
    parser.add_argument("--inference_config", default=None, help="Decoding config (yaml)")
    parser.add_argument("--reference_hyp", default=None,
                        help="Stage-11 hypotheses (text) to compare with")
    parser.add_argument("--uid", default=None, help="Utterance (default: the first)")
    parser.add_argument("--cache_dir", default=None,
                        help="Model-zoo cache (default: a new temporary dir)")
    parser.add_argument("--allow_mismatch", type=str2bool, default=False,
                        help="Do not fail when the hypothesis differs from stage 11")
    parser.add_argument("--out", default=None, help="Report (JSON)")
    return parser


def main(cmd: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(cmd)
    from espnet_msrs.register import register

    register()
    import espnet2.tasks.asr  # noqa: F401  (registers our classes)

    setup_logging(logging.INFO)
    try:
        report = check_packed_model(
            args.zip, args.data_dir, args.modality, args.inference_config,
            args.reference_hyp, args.uid, args.cache_dir, args.allow_mismatch,
        )
    except ValueError as e:
        logger.error(f"packed model check failed: {e}")
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            atomic.write_json(args.out, {"ok": False, "error": str(e)})
        return 1
    report["ok"] = True
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(args.out, report)
    logger.info(f"packed model check passed: {args.zip}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
