"""Values ESPnet's trainer logs every ``log_interval`` batches, read back from ``train.log``.

ESPnet writes lines such as
``3epoch:train:21-40batch: iter_time=..., loss=12.3, grad_norm_enc0_ffn=0.8``;
this module turns them into a series over the global step, for plots
(:mod:`espnet_msrs.bin.plot_grad_norm`) and studies (``egs2/synthgrid/study1``).
"""

import re
from pathlib import Path
from typing import Dict, List, Tuple, Union

_INTERVAL = re.compile(r"(\d+)epoch:train:(\d+)-(\d+)batch: (.*)$")
# key=value; ESPnet sometimes drops the ", " between two fields.
_FIELD = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*)=(-?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf))"
)


def interval_series(path: Union[str, Path], key: str) -> List[Tuple[int, int, float]]:
    """(epoch, global step, value) of ``key`` for every logged interval.

    The global step is the interval's last batch plus the batches of the
    earlier epochs (each epoch's last logged batch); a resumed run's repeated
    intervals keep their last value. Sorted by epoch, then step.
    """
    points: Dict[Tuple[int, int], float] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        match = _INTERVAL.search(line)
        if not match:
            continue
        fields = dict(_FIELD.findall(match.group(4)))
        if key in fields:
            points[(int(match.group(1)), int(match.group(3)))] = float(fields[key])
    batches: Dict[int, int] = {}
    for epoch, end in points:
        batches[epoch] = max(batches.get(epoch, 0), end)
    offsets, total = {}, 0
    for epoch in sorted(batches):
        offsets[epoch] = total
        total += batches[epoch]
    return sorted((e, offsets[e] + end, v) for (e, end), v in points.items())
