"""What the figure-writing tools share: matplotlib off-screen, one way to
save a figure, and the JSON of the plotted data next to it.

matplotlib is imported on use (:func:`pyplot`), so importing a tool does not
import it.
"""

import json
from pathlib import Path
from typing import Any, Optional


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, output: Path, title: Optional[str] = None, dpi: int = 120) -> None:
    """Give ``fig`` its ``title`` (if any), lay it out tightly, write it to
    ``output`` (folders created) and close it."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=dpi)
    pyplot().close(fig)


def write_plot_json(data: Any, output: Path, json_path: Optional[Path] = None) -> Path:
    """Write the plotted ``data`` as indented JSON to ``json_path`` (default:
    ``output`` with the suffix ``.json``); returns the path written."""
    json_path = json_path or output.with_suffix(".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return json_path
