"""bench/plot.py: the charts of a same-process table (one panel per case,
TFLOP/s against S, one line per series the run timed)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import plot  # noqa: E402

matplotlib = pytest.importorskip("matplotlib")

ROWS = [
    {"case": "softmax_d128", "S": 16384, "attn_mlir": 351.1, "flex": 415.9,
     "sdpa_flash": 307.1, "sdpa_cudnn": 535.8, "flex_first_call_s": 3.2},
    {"case": "softmax_d128", "S": 4096, "attn_mlir": 333.2, "flex": 408.6,
     "sdpa_flash": 290.0, "sdpa_cudnn": 564.4},
    {"case": "rbf_d128", "S": 4096, "attn_mlir": 189.8, "flex": 217.8},
    {"case": "rbf_d128", "S": 16384, "attn_mlir": 197.6, "flex": 263.3},
    {"case": "alibi_d128", "S": 1024, "attn_mlir": 120.5,
     "baseline": 118.0},
]


def test_rows_grouped_by_case_and_sorted_by_s():
    cases = plot.by_case(ROWS)
    assert list(cases) == ["softmax_d128", "rbf_d128", "alibi_d128"]
    assert cases["softmax_d128"]["attn_mlir"] == [(4096, 333.2),
                                                  (16384, 351.1)]
    # Only the series a row has; the first-call seconds are no series.
    assert list(cases["rbf_d128"]) == ["attn_mlir", "flex"]
    assert list(cases["alibi_d128"]) == ["attn_mlir", "baseline"]
    assert list(plot.by_case(ROWS, {"rbf_d128"})) == ["rbf_d128"]


def test_figure_has_a_panel_per_case_and_a_line_per_series():
    fig = plot.figure(ROWS, "backward")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["softmax_d128", "rbf_d128",
                                                   "alibi_d128"]
    lines = {line.get_label(): line for line in visible[0].get_lines()}
    assert set(lines) == {"attn-mlir", "sdpa-flash", "sdpa-cudnn", "flex"}
    assert list(lines["flex"].get_xdata()) == [4096, 16384]
    assert list(lines["flex"].get_ydata()) == [408.6, 415.9]
    assert [line.get_label() for line in visible[2].get_lines()] == [
        "attn-mlir", "attn-mlir (baseline)"]
    assert fig._suptitle.get_text() == "backward"
    matplotlib.pyplot.close(fig)


def test_no_rows_is_an_error():
    with pytest.raises(ValueError, match="no bench rows to plot for"):
        plot.figure(ROWS, only={"causal_d64"})


def test_command_line_writes_a_png(tmp_path, capsys):
    results = tmp_path / "run.json"
    results.write_text(json.dumps({"checks": [], "bench": ROWS}))
    out = tmp_path / "chart.png"
    plot.main([str(results), "--out", str(out), "--only",
               "softmax_d128,rbf_d128"])
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
    assert f"wrote {out} (2 cases)" in capsys.readouterr().out
