"""Unit tests for apps/markets/figures.py: each report figure builds, renders to PNG and rejects bad input."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from apps.markets import figures as mf
from apps.markets.stylized import acf, leverage
from shared.errors import ConfigError, DataError
from shared.report.figures import png_bytes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def _renders(fig: Figure) -> None:
    data = png_bytes(fig)
    assert data.startswith(PNG_MAGIC) and len(data) > 5000


def _returns(shape, seed, scale=0.01):
    return scale * np.random.default_rng(seed).standard_t(5, shape)


# ---------------------------------------------------------------- colours


def test_generator_colours_follow_palette_order_and_keep_black_for_real():
    colours = mf.generator_colours(["b", "a", "real", "c"])
    assert colours == {
        "b": mf.GENERATOR_PALETTE[0],
        "a": mf.GENERATOR_PALETTE[1],
        "real": mf.REAL_COLOUR,
        "c": mf.GENERATOR_PALETTE[2],
    }
    assert mf.REAL_COLOUR not in mf.GENERATOR_PALETTE
    many = mf.generator_colours([f"g{i}" for i in range(len(mf.GENERATOR_PALETTE) + 1)])
    assert many["g0"] == many[f"g{len(mf.GENERATOR_PALETTE)}"]  # cycles


# ---------------------------------------------------------------- fan chart


def test_fan_quantiles_hand_computed():
    # 5 paths, 2 days; with P = 5 the 25/50/75% quantiles fall exactly on order statistics 2, 3, 4.
    day1 = np.array([0.0, 0.1, -0.1, 0.2, -0.2])
    day2 = np.array([0.05, 0.0, 0.3, -0.1, 0.0])
    paths = np.stack([day1, day2], axis=1)  # (P, L) = (5, 2)
    got = mf.fan_quantiles(paths, start_value=50.0, quantiles=(0.25, 0.5, 0.75))
    v1 = np.sort(50.0 * np.exp(day1))  # values after day 1, sorted
    v2 = np.sort(50.0 * np.exp(day1 + day2))
    want = np.array([[v1[1], v2[1]], [v1[2], v2[2]], [v1[3], v2[3]]])
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_fan_quantiles_rows_ordered():
    q = mf.fan_quantiles(_returns((300, 40), 0), 100.0)
    assert q.shape == (len(mf.DEFAULT_QUANTILES), 40)
    assert np.all(np.diff(q, axis=0) >= 0)


def test_fan_quantiles_rejects_bad_quantiles_and_start():
    paths = _returns((10, 5), 0)
    with pytest.raises(ConfigError):
        mf.fan_quantiles(paths, 100.0, (0.5, 0.25))
    with pytest.raises(ConfigError):
        mf.fan_quantiles(paths, 100.0, (0.1, 1.5))
    with pytest.raises(ConfigError):
        mf.fan_quantiles(paths, -1.0)


def test_fan_chart_panels_bands_nested_and_median_plotted():
    paths = {
        "gan": _returns((200, 30), 1),
        "garch-t": _returns((200, 30), 2),
        "hs": _returns((200, 30), 3),
        "vae": _returns((200, 30), 4),
    }
    fig = mf.fan_chart(paths, start_value=100.0)
    axes = _visible_axes(fig)
    assert len(axes) == 4  # 3 per row: the 5th and 6th cells are hidden
    ax = axes[0]
    assert len(ax.collections) == 3  # 1-99, 5-95, 25-75
    spans = [(c.get_paths()[0].vertices[:, 1].min(), c.get_paths()[0].vertices[:, 1].max()) for c in ax.collections]
    for (lo_out, hi_out), (lo_in, hi_in) in zip(spans, spans[1:]):
        assert lo_out <= lo_in and hi_in <= hi_out
    median = ax.lines[0].get_ydata()
    want = mf.fan_quantiles(paths["gan"], 100.0)[3]
    np.testing.assert_allclose(median, np.concatenate([[100.0], want]))
    _renders(fig)


def test_fan_chart_with_dates_history_and_realised():
    length = 20
    dates = pd.bdate_range("2024-01-02", periods=length)
    history = pd.Series(np.linspace(90.0, 100.0, 30), index=pd.bdate_range(end="2023-12-29", periods=30))
    realised = pd.Series(100.0 + np.arange(8.0), index=dates[:8])
    fig = mf.fan_chart({"gan": _returns((100, length), 5)}, 100.0, dates=dates, history=history, realised=realised)
    ax = _visible_axes(fig)[0]
    assert len(ax.lines) == 4  # median, history, origin marker, realised
    _renders(fig)


def test_fan_chart_rejects_bad_input():
    with pytest.raises(ConfigError):
        mf.fan_chart({})
    with pytest.raises(DataError):
        mf.fan_chart({"a": _returns((10, 5), 0), "b": _returns((10, 6), 1)})  # different horizons
    with pytest.raises(DataError):
        mf.fan_chart({"a": _returns((10, 5), 0)}, dates=pd.bdate_range("2024-01-02", periods=4))
    with pytest.raises(DataError):
        mf.fan_chart({"a": _returns((10, 5, 2), 0)})  # portfolio paths must be (P, L)
    bad = _returns((10, 5), 0)
    bad[3, 2] = np.nan
    with pytest.raises(DataError):
        mf.fan_chart({"a": bad})
    with pytest.raises(DataError):  # dates given but history is indexed by position
        mf.fan_chart(
            {"a": _returns((10, 5), 0)}, dates=pd.bdate_range("2024-01-02", periods=5), history=pd.Series([99.0, 100.0])
        )


# ---------------------------------------------------------------- distributions


def test_return_distributions_two_panels_and_subsamples_large_input():
    gens = {"gan": _returns((300_001,), 1), "garch-t": _returns((50, 60, 2), 2)}  # any shape is pooled
    fig = mf.return_distributions(gens, _returns((2000, 2), 0), title="pooled", dashed={"garch-t"})
    left, right = _visible_axes(fig)
    assert left.get_yscale() == "log" and right.get_xscale() == "log" and right.get_yscale() == "log"
    assert [ln.get_linestyle() for ln in right.lines] == ["-", "--", "-"]  # gan, garch-t (dashed), real
    assert right.lines[-1].get_color() == mf.REAL_COLOUR
    assert np.all(np.diff(right.lines[-1].get_ydata()) >= 0)  # survival rises as the loss falls
    assert np.all(right.lines[-1].get_xdata() > 0)
    _renders(fig)


def test_return_distributions_rejects_nan_and_empty():
    bad = _returns((100,), 0)
    bad[5] = np.inf
    with pytest.raises(DataError):
        mf.return_distributions({"a": bad}, _returns((100,), 1))
    with pytest.raises(ConfigError):
        mf.return_distributions({}, _returns((100,), 1))


# ---------------------------------------------------------------- ACF and leverage


def test_acf_panels_single_and_multi_asset_match_stylized():
    real = _returns((400,), 0)
    fig = mf.acf_panels(real, {"gan": _returns((30, 50), 1)}, max_lag=20)
    axes = _visible_axes(fig)
    assert len(axes) == 3
    np.testing.assert_allclose(axes[1].lines[-1].get_ydata(), acf(np.abs(real), 20))
    _renders(fig)

    real3, gen3 = _returns((400, 3), 2), _returns((30, 50, 3), 3)
    fig = mf.acf_panels(real3, {"gan": gen3, "hs": _returns((10, 50, 3), 4)}, max_lag=10, dashed={"hs"})
    axes = _visible_axes(fig)
    assert len(axes) == 3
    real_line, gan_line = axes[2].lines[-1], axes[2].lines[1]  # lines: zero, gan, hs, real
    np.testing.assert_allclose(real_line.get_ydata(), np.mean([acf(real3[:, a] ** 2, 10) for a in range(3)], axis=0))
    np.testing.assert_allclose(gan_line.get_ydata(), np.mean([acf(gen3[:, :, a] ** 2, 10) for a in range(3)], axis=0))


def test_acf_panels_rejects_max_lag_at_or_beyond_length():
    with pytest.raises(ConfigError, match="max_lag"):
        mf.acf_panels(_returns((400,), 0), {"gan": _returns((5, 50), 1)}, max_lag=50)  # = path length
    with pytest.raises(ConfigError, match="max_lag"):
        mf.acf_panels(_returns((40,), 0), {"gan": _returns((5, 50), 1)}, max_lag=45)  # > real length
    with pytest.raises(ConfigError):
        mf.acf_panels(_returns((40,), 0), {"gan": _returns((5, 50), 1)}, max_lag=0)


def test_acf_and_leverage_reject_mismatched_shapes():
    with pytest.raises(DataError):
        mf.acf_panels(_returns((400, 2), 0), {"gan": _returns((5, 50), 1)}, max_lag=5)  # (T, A) vs (P, L)
    with pytest.raises(DataError):
        mf.acf_panels(_returns((400, 2), 0), {"gan": _returns((5, 50, 3), 1)}, max_lag=5)  # 2 vs 3 assets
    with pytest.raises(DataError):
        mf.leverage_panel(_returns((400,), 0), {"gan": _returns((50,), 1)}, max_lag=5)  # generated must be paths
    with pytest.raises(ConfigError):
        mf.leverage_panel(_returns((400,), 0), {}, max_lag=5)


def test_leverage_panel_one_axis_matches_stylized():
    real, gen = _returns((500, 2), 0), _returns((20, 80, 2), 1)
    fig = mf.leverage_panel(real, {"gan": gen}, max_lag=15)
    axes = _visible_axes(fig)
    assert len(axes) == 1
    np.testing.assert_allclose(axes[0].lines[-1].get_ydata(), np.mean([leverage(real[:, a], 15) for a in range(2)], 0))
    _renders(fig)


# ---------------------------------------------------------------- correlation


def _correlated(shape, rho, seed):
    rng = np.random.default_rng(seed)
    common = rng.standard_normal(shape[:-1] + (1,))
    return 0.01 * (np.sqrt(rho) * common + np.sqrt(1 - rho) * rng.standard_normal(shape))


def test_correlation_heatmaps_real_matrix_and_pooled_paths():
    real = _correlated((600, 4), 0.5, 0)
    gen = _correlated((40, 60, 4), 0.2, 1)
    fig = mf.correlation_heatmaps(real, {"gan": gen, "hs": _correlated((40, 60, 4), 0.0, 2)}, ["A", "B", "C", "D"])
    images = [ax for ax in _visible_axes(fig) if ax.images]
    assert len(images) == 3  # real + 2 generators
    assert len(_visible_axes(fig)) == 4  # + one shared colorbar
    off = ~np.eye(4, dtype=bool)
    shown = np.asarray(images[0].images[0].get_array().filled(np.nan))
    np.testing.assert_allclose(shown[off], np.corrcoef(real, rowvar=False)[off])
    per_path = np.mean([np.corrcoef(p, rowvar=False) for p in gen], axis=0)
    np.testing.assert_allclose(np.asarray(images[1].images[0].get_array().filled(np.nan))[off], per_path[off])
    assert [t.get_text() for t in images[0].get_yticklabels()] == ["A", "B", "C", "D"]
    clims = {im.images[0].get_clim() for im in images}
    assert len(clims) == 1  # one shared colour scale
    _renders(fig)


def test_correlation_heatmaps_rejects_bad_input():
    with pytest.raises(DataError):
        mf.correlation_heatmaps(_returns((100, 3), 0), {"gan": _returns((5, 20, 3), 1)}, ["A", "B"])  # 2 names
    with pytest.raises(DataError):
        mf.correlation_heatmaps(_returns((100, 1), 0), {"gan": _returns((5, 20, 1), 1)}, ["A"])  # one asset
    with pytest.raises(DataError):
        mf.correlation_heatmaps(_returns((100, 3), 0), {"gan": _returns((5, 20, 2), 1)}, ["A", "B", "C"])


# ---------------------------------------------------------------- VaR and ES


def _var_rows():
    rows = []
    for i, name in enumerate(["real", "gan", "garch-t"]):
        row = {"name": name}
        for level, base in (("95", 0.015), ("975", 0.019), ("99", 0.025)):
            for horizon, scale in (("1d", 1.0), ("10d", 3.0)):
                row[f"var_{level}_{horizon}"] = base * scale * (1 + 0.1 * i)
                row[f"es_{level}_{horizon}"] = 1.3 * base * scale * (1 + 0.1 * i)
        rows.append(row)
    rows[1]["es_99_10d"] = None  # missing values just leave a bar out
    return rows


def test_var_es_chart_two_panels_bars_per_level_and_generator():
    fig = mf.var_es_chart(_var_rows(), dashed={"garch-t"})
    one_day, ten_day = _visible_axes(fig)
    assert len(one_day.patches) == 3 * 3 * 2  # levels x rows x (VaR, ES)
    assert len(ten_day.patches) == 3 * 3 * 2 - 1
    assert [t.get_text() for t in one_day.get_xticklabels()] == ["95%", "97.5%", "99%"]
    heights = sorted(p.get_height() for p in one_day.patches)
    assert heights[0] == pytest.approx(0.015) and heights[-1] == pytest.approx(1.3 * 0.025 * 1.2)
    _renders(fig)


def test_var_es_chart_one_horizon_and_bad_rows():
    rows = [{"name": "gan", "var_99_1d": 0.03, "es_99_1d": 0.04}]
    fig = mf.var_es_chart(rows)
    assert len(_visible_axes(fig)) == 2
    _renders(fig)
    with pytest.raises(ConfigError):
        mf.var_es_chart([])
    with pytest.raises(DataError):
        mf.var_es_chart([{"name": "gan", "sharpe": 1.0}])  # no VaR/ES keys
    with pytest.raises(DataError):
        mf.var_es_chart([{"var_99_1d": 0.03}])  # no name
    with pytest.raises(DataError):
        mf.var_es_chart([{"name": "gan", "var_99_1d": "high"}])
