"""Unit tests for the report page builder and its figure helpers (shared/report): every element renders, the
page is one self-contained file (figures as data URIs, nothing fetched over http), text is escaped, image-grid
geometry is right, saving is atomic, published rows are never highlighted, and metrics logs are read from JSONL.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from shared.errors import DataError
from shared.report import figures
from shared.report.page import Page, format_value

PNG = b"\x89PNG\r\n\x1a\n"


def _full_page() -> Page:
    rng = np.random.default_rng(0)
    page = Page("Demo report", subtitle="tiny run")
    page.section("Summary").text("First paragraph with **bold** and `code`.\n\n- one\n- two")
    page.callout("Tiny budget.", kind="warning")
    page.metrics({"valid": 0.9712345, "n": 12345, "tiny": 3e-6, "ok": True, "missing": None}, title="Scores")
    page.section("Tables").table(
        [{"model": "ours", "source": "measured", "kid": 0.02}, {"model": "paper", "source": "published", "kid": 0.01}],
        caption="Comparison",
        highlight={"kid": "min"},
    )
    page.section("Figures").figure(figures.line_plot({"a": [3, 2, 1]}, "x", "y", "t"), caption="Line")
    page.figure(figures.scatter_2d({"p": rng.normal(size=(50, 2))}, "s", centres=np.zeros((1, 2))))
    page.figure(figures.histograms({"h": rng.normal(size=200)}, bins=20, title="h", log=True))
    page.image_grid(rng.random((10, 1, 8, 8)), nrow=4, caption="Samples")
    page.image_grid(rng.random((4, 3, 8, 8)), nrow=2, labels=list("abcd"), row_labels=["r1", "r2"])
    page.code("x < y && z")
    page.provenance(command=["python", "-m", "apps.art", "--name", "a b"], config={"lr": 3e-4})
    return page


def test_page_renders_every_element_self_contained():
    out = _full_page().render()
    assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    for needle in (
        "<h1>Demo report</h1>",
        "<strong>bold</strong>",
        "<code>code</code>",
        "<li>two</li>",
        "callout warning",
        "0.9712",
        "12,345",
        "3.000e-06",
        "Table 1.",
        "Figure 1.",
        "<details>",
        "&#x27;a b&#x27;",
        "x &lt; y &amp;&amp; z",
        "Contents",
        "Generated ",
    ):
        assert needle in out, needle
    # One file: no external fetches of any kind; every image is an embedded data URI.
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', out)
    assert "url(" not in out and "@import" not in out and "<script" not in out
    srcs = re.findall(r'src="([^"]+)"', out)
    assert len(srcs) == 3 + 1 + 4  # 3 figures, 1 plain grid, 4 labelled cells
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


def test_html_is_escaped():
    evil = "<script>alert(1)</script>"
    page = Page(evil, subtitle=evil).section(evil).text(evil).metrics({evil: evil})
    page.table([{evil: evil}], caption=evil)
    out = page.render()
    assert "<script" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_published_rows_are_muted_and_never_best():
    rows = [
        {"model": "a", "source": "measured", "valid": 0.90, "loss": 2.0},
        {"model": "b", "source": "measured", "valid": 0.95, "loss": 2.0},
        {"model": "c", "source": "published", "valid": 0.99, "loss": 1.0},
    ]
    out = Page("t").table(rows, highlight={"valid": "max", "loss": "min"}).render()
    trs = re.findall(r"<tr[^>]*>.*?</tr>", out[out.index("<tbody>") :])
    bold = [re.findall(r'<td class="num best">([^<]*)<', tr) for tr in trs]
    assert bold == [["2"], ["0.95", "2"], []]  # tie on loss: both measured rows; the paper's row never
    assert trs[2].startswith('<tr class="muted muted-start">')
    assert "published figures, not measured" in out
    with pytest.raises(ValueError, match="highlight"):
        Page("t").table(rows, highlight={"nope": "max"})


def test_table_accepts_dataframe_and_formats():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"valid": [0.5, 0.25]}, index=pd.Index(["x", "y"], name="model"))
    out = Page("t").table(df, formats={"valid": "{:.1%}"}).render()
    assert "<th>model</th>" in out and ">50.0%<" in out and ">25.0%<" in out


def test_format_value():
    assert format_value(1234567) == "1,234,567"
    assert format_value(0.123456) == "0.1235"
    assert format_value(np.float32(2.5)) == "2.5"
    assert format_value(1.5e-7) == "1.500e-07"
    assert format_value(float("nan")) == "–" and format_value(None) == "–"
    assert format_value(False) == "no"


@pytest.mark.parametrize("n, nrow, rows, cols", [(10, 4, 3, 4), (1, None, 1, 1), (9, None, 3, 3), (3, 8, 1, 3)])
def test_image_grid_shape(n, nrow, rows, cols):
    h, w, scale, pad = 8, 6, 3, 1
    grid = figures.image_grid_array(np.random.rand(n, 1, h, w), nrow=nrow, pad=pad, scale=scale)
    assert grid.dtype == np.uint8
    assert grid.shape == (rows * (h * scale + pad) + pad, cols * (w * scale + pad) + pad, 3)


def test_image_grid_upscales_nearest_and_checks_range():
    img = np.zeros((1, 8, 8))
    img[0, 0, 0] = 1.0
    grid = figures.image_grid_array(img, pad=0)  # default scale: 8x8 -> 48x48 cells
    assert grid.shape == (48, 48, 3)
    assert (grid[:6, :6] == 255).all() and (grid[6:, :] == 0).all() and (grid[:, 6:] == 0).all()
    rgb = figures.image_grid_array(np.random.rand(2, 3, 4, 4), nrow=2, pad=0, scale=1)
    assert rgb.shape == (4, 8, 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        figures.image_grid_array(np.full((2, 1, 4, 4), 255.0))
    with pytest.raises(ValueError, match="N, C, H, W"):
        figures.image_grid_array(np.zeros((2, 5, 4, 4)))


def test_save_is_atomic_and_complete(tmp_path):
    path = _full_page().save(tmp_path / "run" / "report.html")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["report.html"]  # no temp files left behind
    assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")


def test_figure_closes_pyplot_figures_and_rejects_non_png():
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    Page("t").figure(fig)
    assert not plt.fignum_exists(fig.number)
    assert figures.png_bytes(np.zeros((4, 4, 3), np.uint8)).startswith(PNG)
    with pytest.raises(ValueError, match="PNG"):
        Page("t").figure(b"GIF89a")


def test_training_curves_reads_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / (s + 1), "phase": "train"}) for s in range(5)]
    lines.append(json.dumps({"step": 4, "loss": 9.0, "valid": 0.5}))  # a resumed run re-logs step 4
    path.write_text("\n".join(lines) + '\n{"step": 5, "lo')  # torn last line from a killed run
    fig = figures.training_curves(path)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss", "valid"]
    x, y = axes[0].lines[0].get_data()
    assert list(x) == [0, 1, 2, 3, 4] and y[-1] == 9.0
    assert figures.png_bytes(fig).startswith(PNG)
    with pytest.raises(ValueError, match="nope"):
        figures.training_curves(path, keys=["nope"])
    with pytest.raises(DataError):
        figures.training_curves(tmp_path / "missing.jsonl")
    path.write_text('{"step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(DataError, match=":2"):
        figures.training_curves(path)
