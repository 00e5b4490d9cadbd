"""Tests of espnet_msrs/utils/figures.py: saving a figure and its JSON."""

import json

from espnet_msrs.utils.figures import pyplot, save_figure, write_plot_json


def test_save_figure_writes_the_png_in_new_folders_and_closes_it(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = tmp_path / "a" / "b" / "fig.png"
    save_figure(fig, out, title="a title", dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig._suptitle.get_text() == "a title"
    assert fig.number not in plt.get_fignums()


def test_write_plot_json_next_to_the_figure_or_where_asked(tmp_path):
    data = {"runs": [{"label": "x", "values": [1.5, None]}]}
    beside = write_plot_json(data, tmp_path / "fig.png")
    assert beside == tmp_path / "fig.json"
    assert json.loads(beside.read_text(encoding="utf-8")) == data
    asked = write_plot_json(data, tmp_path / "fig.png", tmp_path / "sub" / "d.json")
    assert asked == tmp_path / "sub" / "d.json"
    assert asked.read_text(encoding="utf-8") == json.dumps(data, indent=1) + "\n"
