"""What the benchmarks in ``bench/`` share: the machine record, summaries of
repeated measurements, ratios measured side by side, the scp paths of the
data they read, and how a result is written (JSON, printed report, log line).

Every benchmark interleaves the things it compares round-robin in one
process and reports ratios of measurements taken in the same round, so that a
machine shared with other jobs slows every variant alike; absolute figures
are labelled with the machine, the date and the load they were measured
under (:func:`machine_info`). Results are written as JSON by
:func:`espnet_msrs.utils.atomic.write_json`.
"""

import datetime
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from espnet_msrs.utils.atomic import write_json
from espnet_msrs.utils.machine import cpu_model

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


def summary(samples: Sequence[float]) -> Dict[str, Any]:
    """Median, quartiles, extremes and the samples themselves."""
    ordered = sorted(samples)
    quartiles = (
        statistics.quantiles(ordered, n=4, method="inclusive")
        if len(ordered) > 1
        else [ordered[0]] * 3
    )
    return {
        "median": statistics.median(ordered),
        "p25": quartiles[0],
        "p75": quartiles[2],
        "min": ordered[0],
        "max": ordered[-1],
        "n": len(ordered),
        "samples": list(samples),
    }


def paired_ratio(values: Sequence[float], reference: Sequence[float]) -> Dict[str, float]:
    """Median and quartiles of the per-round ratios ``values / reference``."""
    ratios = [v / r for v, r in zip(values, reference)]
    quartiles = (
        statistics.quantiles(ratios, n=4, method="inclusive")
        if len(ratios) > 1
        else [ratios[0]] * 3
    )
    return {"median": statistics.median(ratios), "p25": quartiles[0], "p75": quartiles[2]}


def rotated(names: Sequence[str], round_index: int) -> List[str]:
    """``names`` starting at position ``round_index`` (round-robin order)."""
    k = round_index % len(names)
    return list(names[k:]) + list(names[:k])


class CPUClock:
    """Wall time and CPU time of this process and of its finished children.

    Children are DataLoader workers: their CPU time is counted once they have
    exited and been joined (``RUSAGE_CHILDREN``), which ESPnet's per-epoch
    iterators do at the end of each epoch.
    """

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()
        self.children = self._children()

    @staticmethod
    def _children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def elapsed(self) -> Dict[str, float]:
        """``wall``, ``cpu`` (this process) and ``children_cpu`` seconds since start."""
        return {
            "wall": time.perf_counter() - self.wall,
            "cpu": time.process_time() - self.cpu,
            "children_cpu": self._children() - self.children,
        }


def load_average() -> Optional[List[float]]:
    """The 1-, 5- and 15-minute load averages now (None where the OS has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def machine_info(
    device: Optional[torch.device] = None,
    load_average_start: Optional[List[float]] = None,
) -> Dict[str, Any]:
    """Host, CPU, threads, library versions, load average and git revision.

    Args:
        device: The device measured on (default CPU).
        load_average_start: :func:`load_average` when the measurement started,
            recorded as ``load_average_start``.
    """
    device = device or torch.device("cpu")
    info: Dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        import espnet

        info["espnet"] = espnet.__version__
    except ImportError:  # pragma: no cover - espnet is a dependency
        pass
    try:
        import av

        info["pyav"] = av.__version__
    except ImportError:  # pragma: no cover - PyAV is a dependency
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    if hasattr(os, "getloadavg"):
        info["load_average"] = list(os.getloadavg())
    try:
        info["git_revision"] = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        info["git_revision"] = None
    info["load_average_start"] = load_average_start
    return info


def machine_line(machine: Dict[str, Any]) -> str:
    """One line naming the machine, the date and the load."""
    load = machine.get("load_average_start") or machine.get("load_average")
    load_text = "" if not load else f", load average {load[0]:.1f} at start"
    gpu = f", {machine['gpu']}" if "gpu" in machine else ""
    return (
        f"machine: {machine['cpu']} ({machine['logical_cpus']} logical CPUs, "
        f"{machine['torch_threads']} torch threads){gpu}, torch {machine['torch']}, "
        f"{machine['date']}{load_text}, git {machine.get('git_revision')}"
    )


def resolve_scp_path(path: str, data_dir: Path) -> Path:
    """An scp path: absolute, relative to the current directory or to a
    folder above ``data_dir`` (recipes write paths relative to the recipe)."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate.resolve()
    for parent in data_dir.resolve().parents:
        if (parent / candidate).exists():
            return (parent / candidate).resolve()
    raise ValueError(f"{data_dir}: {path} not found (relative to the current "
                     f"directory or to a folder above {data_dir})")


def write_result(
    name: str,
    out: Path,
    result: Dict[str, Any],
    describe: Callable[[Dict[str, Any]], str],
) -> Dict[str, Any]:
    """Write ``result`` as JSON to ``out``, then print ``describe(result)`` and
    log where the JSON went."""
    write_json(out, result)
    sys.stdout.write(describe(result) + "\n")
    logger.info(f"{name}: json={out}")
    return result


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding,
                        _dilation, transposed, _output_padding, _groups, output_mask,
                        out_shape=None) -> int:
    """FLOPs of ``aten.convolution_backward``, grouped convolutions included.

    The gradient of the input and that of the weight each take as many
    multiply-adds as the forward convolution (whose weight shape
    ``(C_out, C_in / groups, *k)`` already accounts for the groups). torch's
    own formula ignores ``groups`` and counts a depthwise convolution's
    backward as a dense convolution's (C_in times too much).
    """
    from torch.utils.flop_counter import conv_flop_count

    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed=transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def flop_counter() -> "torch.utils.flop_counter.FlopCounterMode":
    """torch's ``FlopCounterMode`` (matrix products and convolutions, from their
    shapes; multiply-add = 2 FLOPs) with the grouped-convolution backward fixed."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(
        display=False,
        custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop},
    )
