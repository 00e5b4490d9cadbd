#!/usr/bin/env python3
"""Gather scored decodings into RESULTS.md files (recipe stage 12).

Example::

    python -m espnet_msrs.bin.make_results --exp_root exp --tag av_msrs_sparse \\
        --tag_out exp/av_msrs_sparse/RESULTS.md --out RESULTS.md \\
        --test_sets test --snrs -7.5 -2.5 2.5 7.5 12.5
    python -m espnet_msrs.bin.make_results --print_table exp/av_msrs_sparse/RESULTS.md

Layout read (written by stages 9–12 of ``avsr.sh``)::

    <exp_root>/<tag>/train/<model_file>           the decoded model
    <exp_root>/<tag>/mask_search/mask.pth         MSRS mask (if any)
    <exp_root>/<tag>/mask_search/sparsity_report.json
    <exp_root>/<tag>/decode_<inference_tag>/<set>/score/result.json

A decoded set named ``<test>_snr<SNR>`` is the test set ``<test>`` with
babble noise at ``SNR`` dB, any other name is a clean test set. The
RESULTS.md (:func:`espnet_msrs.scoring.results.make_results_md`) holds the
WER-versus-SNR table in the layout of MSRS Table 3 (rows = models, columns
= −7.5 … 12.5 dB and clean), WER/CER per set, and per model the number of
parameters, non-zeros, sparsity over all parameters and over the prunable
(MSRS-masked) weights, and the ranks of LR-SMS factorised layers — all
measured on the decoded model file itself. ``--tag_out`` gets the rows of
``--tag`` only, ``--out`` those of every experiment under ``--exp_root``.
"""

import argparse
import logging
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from espnet_msrs.scoring.results import load_result, make_results_md
from espnet_msrs.utils.cli import parse_tool_args, tool_parser

logger = logging.getLogger(__name__)
_SNR_SET = re.compile(r"^(?P<test>.+)_snr(?P<snr>[-+]?[0-9]+(?:\.[0-9]+)?)$")
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
MHSA_PATTERN = re.compile(r"(self_attn|src_attn|attn)\.")
FFN_PATTERN = re.compile(r"feed_forward")


def split_set_name(name: str, test_sets: Optional[Sequence[str]] = None):
    """``"test_snr-7.5"`` -> ("test", -7.5); ``"test"`` -> ("test", "clean")."""
    match = _SNR_SET.match(name)
    if match and (not test_sets or match.group("test") in test_sets):
        return match.group("test"), float(match.group("snr"))
    return name, "clean"


def _set_order(name: str, test_sets: Optional[Sequence[str]]):
    """Sort key: each test set, clean first, then by increasing SNR."""
    test, snr = split_set_name(name, test_sets)
    return (test, 0 if snr == "clean" else 1, 0.0 if snr == "clean" else snr)


def model_facts(model_file: Path, mask_file: Optional[Path] = None) -> Dict[str, Any]:
    """Parameters, zeros and low-rank ranks of a saved ESPnet model.

    Args:
        model_file: A state dict (``*.pth``) of the model.
        mask_file: MSRS ``mask.pth``; its weights are the prunable ones.

    Returns:
        ``n_params``, ``n_nonzero``, ``sparsity_all``, ``sparsity_prunable``
        (None without a mask) and ``ranks`` ({"mhsa": [...], "ffn": [...]}
        or None).
    """
    import torch

    from espnet_msrs.sparsity.report import sparsity_report
    from espnet_msrs.utils.safe_load import load_torch_file

    state = load_torch_file(model_file, what="decoded model", mmap=True)
    params = {
        k: v
        for k, v in state.items()
        if torch.is_tensor(v) and v.is_floating_point() and not k.endswith(_BUFFERS)
    }
    prunable = None
    if mask_file is not None and mask_file.is_file():
        from espnet_msrs.sparsity.mask_file import load_masks

        prunable = [n for n in load_masks(mask_file) if n in params]
    report = sparsity_report(params, prunable=prunable if prunable is not None else ())
    n = report["all_params"]["numel"]
    zeros_all = sum(int((v == 0).sum()) for v in params.values())
    ranks: Dict[str, List[int]] = {}
    for name, tensor in params.items():
        if name.endswith("lowrank_v.weight"):
            group = "mhsa" if MHSA_PATTERN.search(name) else (
                "ffn" if FFN_PATTERN.search(name) else "other")
            ranks.setdefault(group, []).append(int(tensor.shape[0]))
    return {
        "n_params": n,
        "n_nonzero": n - zeros_all,
        "sparsity_all": zeros_all / n if n else 0.0,
        "sparsity_prunable": report["prunable"]["sparsity"] if prunable else None,
        "ranks": ranks or None,
    }


def _env(root: Path) -> Dict[str, str]:
    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = "unknown"
    return {
        "git_sha": sha or "unknown",
        "espnet": version("espnet"),
        "torch": version("torch"),
        "espnet_msrs": version("espnet_msrs"),
        "host": platform.node(),
    }


def collect(
    exp_root: Path,
    tags: Optional[Sequence[str]] = None,
    test_sets: Optional[Sequence[str]] = None,
    model_file: str = "valid.acc.ave.pth",
) -> Dict[str, List[Dict[str, Any]]]:
    """Rows for :func:`make_results_md` from the experiments under ``exp_root``.

    Args:
        exp_root: ``exp`` directory.
        tags: Experiments to include (default: every one with a decoding).
        test_sets: Names of the clean test sets (to parse ``<test>_snr<SNR>``).
        model_file: Model file name under ``<tag>/train``.

    Returns:
        ``{"snr_rows": [...], "test_rows": [...], "model_rows": [...],
        "broken": [...]}``; an experiment whose files cannot be read is
        listed in ``broken`` as ``{"name": tag, "error": why}`` (logged as
        an error) and the others are still collected.
    """
    snr_rows, test_rows, model_rows, broken = [], [], [], []
    tag_dirs = sorted(p for p in exp_root.iterdir() if p.is_dir()) if exp_root.is_dir() else []
    if tags is not None:
        tag_dirs = [exp_root / t for t in tags]
    for tag_dir in tag_dirs:
        rows: Dict[str, List[Dict[str, Any]]] = {"snr": [], "test": [], "model": []}
        try:
            _collect_tag(tag_dir, test_sets, model_file, rows)
        except (ValueError, OSError, KeyError, TypeError) as e:
            logger.error(f"experiment {tag_dir.name}: skipped, it is broken: {e}")
            broken.append({"name": tag_dir.name, "error": str(e)})
            continue
        snr_rows += rows["snr"]
        test_rows += rows["test"]
        model_rows += rows["model"]
    return {"snr_rows": snr_rows, "test_rows": test_rows, "model_rows": model_rows,
            "broken": broken}


def _collect_tag(
    tag_dir: Path,
    test_sets: Optional[Sequence[str]],
    model_file: str,
    rows: Dict[str, List[Dict[str, Any]]],
) -> None:
    """Rows of one experiment into ``rows`` (raises on a broken one)."""
    decodes = sorted(d for d in tag_dir.glob("decode_*") if d.is_dir())
    results = {
        d: sorted(d.glob("*/score/result.json")) for d in decodes
    }
    results = {d: r for d, r in results.items() if r}
    if not results:
        return
    tag = tag_dir.name
    model = tag_dir / "train" / model_file
    facts: Dict[str, Any] = {}
    if model.exists():
        facts = model_facts(model, tag_dir / "mask_search" / "mask.pth")
        rows["model"].append({"name": tag, **facts})
    else:
        logger.warning(f"{model} not found: no parameter counts for {tag}")
    for decode, files in results.items():
        files = sorted(files, key=lambda f: _set_order(f.parent.parent.name, test_sets))
        by_test: Dict[str, Dict[Any, float]] = {}
        for f in files:
            set_name = f.parent.parent.name
            test, snr = split_set_name(set_name, test_sets)
            result = load_result(f)
            name = tag if len(results) == 1 else f"{tag} ({decode.name})"
            rows["test"].append({"model": name, "test_set": set_name, **result})
            by_test.setdefault(test, {})[snr] = result["wer"]
        for test, wers in sorted(by_test.items()):
            name = tag if len(results) == 1 else f"{tag} ({decode.name})"
            if len(by_test) > 1:
                name += f" / {test}"
            rows["snr"].append({"name": name, "wer": wers, "n_params": facts.get("n_params")})


def print_table(path: Path) -> None:
    """Print the WER-versus-SNR section of a RESULTS.md to stdout."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, inside = [], False
    for line in lines:
        if line.startswith("## "):
            inside = "SNR" in line
        if inside and line.strip():
            out.append(line)
    print(f"{path}:\n" + "\n".join(out))


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser("Write RESULTS.md from scored decodings (MSRS Table 3 layout)")
    parser.add_argument("--exp_root", default="exp", help="Experiments root")
    parser.add_argument("--tag", default=None, help="Experiment of --tag_out")
    parser.add_argument("--tag_out", default=None, help="RESULTS.md of --tag")
    parser.add_argument("--out", default=None, help="RESULTS.md of every experiment")
    parser.add_argument("--test_sets", nargs="*", default=None, help="Clean test set names")
    parser.add_argument("--snrs", nargs="*", type=float, default=None,
                        help="SNRs of the noisy sets (informational)")
    parser.add_argument("--model_file", default="valid.acc.ave.pth",
                        help="Model file name under <tag>/train")
    parser.add_argument("--print_table", default=None,
                        help="Only print the WER/SNR table of this RESULTS.md")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = parse_tool_args(get_parser(), cmd)
    if args.print_table:
        print_table(Path(args.print_table))
        return
    if args.tag_out and not args.tag:
        raise ValueError("--tag_out needs --tag")
    exp_root = Path(args.exp_root)
    env = _env(Path(__file__).resolve().parents[2])
    # Every experiment first: a broken one is listed there, never stops the rest.
    if args.out:
        rows = collect(exp_root, None, args.test_sets, args.model_file)
        make_results_md(args.out, env, title="RESULTS (all experiments)", **rows)
    if args.tag_out:
        rows = collect(exp_root, [args.tag], args.test_sets, args.model_file)
        if rows["broken"]:
            raise ValueError(
                f"experiment {args.tag} is broken: {rows['broken'][0]['error']}"
            )
        if not rows["test_rows"]:
            raise ValueError(f"no scored decoding under {exp_root / args.tag}")
        make_results_md(args.tag_out, env, title=f"RESULTS: {args.tag}", **rows)


if __name__ == "__main__":
    main(sys.argv[1:])
