#!/usr/bin/env python3
"""Plot the L2 gradient norm vs training step of several runs (MSRS Fig. 1).

MSRS Fig. 1 shows the gradient norm of the first encoder feed-forward layer
of several VSR trainings (no clipping, clipping, MSRS, LayerScale, ...) to
show exploding and vanishing gradients.  Our trainer reports that norm as
``grad_norm_enc0_ffn`` (``--grad_norm_params``) next to ESPnet's total
``grad_norm``; this tool reads it back from each run's tensorboard events
(``<exp>/tensorboard/train``, one point per ``--log_interval`` steps) or, if
there are none, from ESPnet's ``train.log`` lines
(``3epoch:train:41-60batch: ..., grad_norm_enc0_ffn=0.045, ...``), and draws
the runs side by side (one panel per run, shared logarithmic y axis) or
overlaid, plus a JSON file with the plotted data::

    python -m espnet_msrs.bin.plot_grad_norm \\
        --run dense=exp/asr_dense --run msrs=exp/asr_msrs/mask_search \\
        --output fig1.png [--key grad_norm_enc0_ffn] [--layout overlay]

Steps are ESPnet's global iteration counts (tensorboard) or, from a log, the
batch index plus the number of batches of the previous epochs; ESPnet's
per-epoch means are left out.  If a run was resumed, later points of the same
step replace earlier ones.
"""

import argparse
import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet_msrs.utils.cli import parse_tool_args, tool_parser
from espnet_msrs.utils.figures import pyplot, save_figure, write_plot_json
from espnet_msrs.utils.train_log import interval_series

logger = logging.getLogger(__name__)

DEFAULT_KEY = "grad_norm_enc0_ffn"
LAYOUTS = ("side_by_side", "overlay")


def read_train_log(path: Path, key: str) -> Tuple[List[int], List[float]]:
    """Per-interval values of ``key`` from an ESPnet ``train.log``.

    Args:
        path: The log file.
        key: Stats key (e.g. ``grad_norm_enc0_ffn``).

    Returns:
        (steps, values), ascending steps.
    """
    series = interval_series(path, key)
    return [step for _, step, _ in series], [v for _, _, v in series]


def read_tensorboard(path: Path, key: str) -> Tuple[List[int], List[float]]:
    """Per-interval scalar ``key`` from the tensorboard event files in ``path``.

    ESPnet also writes each epoch's mean under the same tag, at the epoch's
    last step, right after an ``iter_epoch`` marker; those points are left
    out, so the curve holds per-step (per ``--log_interval``) values only.
    """
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    events = EventAccumulator(str(path), size_guidance={SCALARS: 0})
    events.Reload()
    tags = events.Tags().get("scalars", [])
    if key not in tags:
        return [], []
    epoch_marks: Dict[int, float] = {}
    if "iter_epoch" in tags:
        for mark in events.Scalars("iter_epoch"):
            epoch_marks[mark.step] = min(mark.wall_time,
                                         epoch_marks.get(mark.step, math.inf))
    points = {}
    for event in events.Scalars(key):
        if event.wall_time >= epoch_marks.get(event.step, math.inf):
            continue  # an epoch mean, not a step value
        points[event.step] = float(event.value)
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def resolve_source(path: Path) -> Tuple[str, Path]:
    """(``"tensorboard"`` | ``"log"``, path) of a run given as a directory or file.

    A directory is searched for ``tensorboard/train`` (an ESPnet experiment),
    then for event files in it, then for ``train.log``; a file is a log.

    Raises:
        ValueError: Nothing readable is found.
    """
    path = Path(path)
    if path.is_file():
        return "log", path
    if path.is_dir():
        if any((path / "tensorboard" / "train").glob("events.out.tfevents.*")):
            return "tensorboard", path / "tensorboard" / "train"
        if any(path.glob("events.out.tfevents.*")):
            return "tensorboard", path
        if (path / "train.log").is_file():
            return "log", path / "train.log"
    raise ValueError(
        f"run {str(path)!r}: no tensorboard events (tensorboard/train/ or "
        "events.out.tfevents.*) and no train.log found"
    )


def parse_run(spec: str) -> Tuple[str, Path]:
    """``label=path`` or ``path`` (label = the directory name)."""
    if "=" in spec:
        label, path = spec.split("=", 1)
        if not label:
            raise ValueError(f"--run {spec!r}: empty label")
        return label, Path(path)
    path = Path(spec)
    name = path.parent.name if path.suffix == ".log" else path.name
    return name or spec, path


def collect(runs: Sequence[Tuple[str, Path]], key: str) -> List[Dict]:
    """Read every run; returns JSON-ready dicts (label, source, steps, values)."""
    out = []
    for label, path in runs:
        kind, source = resolve_source(path)
        reader = read_tensorboard if kind == "tensorboard" else read_train_log
        steps, values = reader(source, key)
        if not steps:
            raise ValueError(f"run {label!r}: no {key!r} values in {str(source)!r}")
        out.append({"label": label, "source": str(source), "format": kind,
                    "steps": steps, "values": values})
    return out


def plot(data: List[Dict], key: str, output: Path, layout: str = "side_by_side",
         log_y: bool = True, clip: Optional[float] = None,
         title: Optional[str] = None) -> None:
    """Draw the runs (one panel each, or overlaid) into a PNG."""
    plt = pyplot()

    panels = len(data) if layout == "side_by_side" else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.0 * panels + 1.0, 3.2),
                             sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(data):
        ax = axes[0][i if layout == "side_by_side" else 0]
        values = [v if v is not None and math.isfinite(v) else float("nan")
                  for v in run["values"]]
        ax.plot(run["steps"], values, color=colors[i % len(colors)],
                linewidth=1.0, label=run["label"])
        if layout == "side_by_side":
            ax.set_title(run["label"])
    for ax in axes[0]:
        ax.set_xlabel("step")
        if log_y:
            ax.set_yscale("log")
        if clip is not None:
            ax.axhline(clip, color="grey", linestyle="--", linewidth=0.8)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"L2 gradient norm ({key})")
    if layout == "overlay":
        axes[0][0].legend()
    save_figure(fig, output, title)


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser("Gradient norm vs step of several runs (MSRS Fig. 1 layout)")
    parser.add_argument("--run", action="append", required=True,
                        help="[label=]path: an ESPnet experiment dir (its "
                        "tensorboard/train or train.log), an event dir or a log")
    parser.add_argument("--output", type=Path, required=True, help="PNG file")
    parser.add_argument("--json", type=Path, default=None,
                        help="data file (default: the PNG path with .json)")
    parser.add_argument("--key", default=DEFAULT_KEY,
                        help="stats key, e.g. grad_norm (ESPnet's total norm)")
    parser.add_argument("--layout", choices=LAYOUTS, default="side_by_side")
    parser.add_argument("--linear_y", action="store_true",
                        help="linear instead of logarithmic y axis")
    parser.add_argument("--clip", type=float, default=None,
                        help="draw the gradient-clipping threshold")
    parser.add_argument("--title", default=None)
    return parser


def main(cmd: Optional[Sequence[str]] = None) -> Dict:
    """Command-line entry point; returns the JSON data written."""
    args = parse_tool_args(get_parser(), cmd)
    runs = [parse_run(spec) for spec in args.run]
    data = collect(runs, args.key)
    plot(data, args.key, args.output, args.layout, not args.linear_y, args.clip,
         args.title)
    for run in data:  # strict JSON: non-finite values become null
        run["values"] = [v if math.isfinite(v) else None for v in run["values"]]
    result = {"key": args.key, "layout": args.layout, "runs": data}
    json_path = write_plot_json(result, args.output, args.json)
    for run in data:
        logger.info(f"plot_grad_norm: run={run['label']} points={len(run['steps'])} "
                     f"source={run['source']}")
    logger.info(f"plot_grad_norm: png={args.output} json={json_path}")
    return result


if __name__ == "__main__":
    main()
