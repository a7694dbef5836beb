"""Figures of the markets report: scenario fans, return distributions, stylized facts, correlations and VaR/ES.

Each public function validates its inputs (numpy, pandas or CPU torch) and returns a `matplotlib.figure.Figure` built
with the house helpers of `shared.report.figures` (no pyplot), ready for `Page.figure`. Colours are the same in every
figure: real data is black, and generator i (in the order of the dict or rows passed) gets the i-th house palette
colour (`generator_colours`); names in the optional `dashed` set (classical baselines) are drawn dashed (hatched in
bar charts). Shapes: real returns (T,) or (T, A); generated paths (P, L) or (P, L, A); portfolio paths (P, L).
Multi-panel figures put one legend below the panels so it never covers data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import matplotlib.colors
import matplotlib.dates
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from apps.markets.arrays import finite_array
from apps.markets.stylized import acf, leverage
from shared.errors import ConfigError, DataError
from shared.report.figures import PALETTE, _log_y, new_figure, style

REAL = "real"  # label (and var_es_chart row name) of the real data, always drawn in black
REAL_COLOUR = "#000000"
GENERATOR_PALETTE = [c for c in PALETTE if c != REAL_COLOUR]  # black is reserved for real data
DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
MAX_POINTS = 200_000  # pooled returns are subsampled to this many for the distribution plots
BAND_ALPHA = 0.2  # per fan band; nested bands stack, so inner ones look darker
_VAR_ES_KEY = re.compile(r"^(var|es)_(95|975|99)_(1d|10d)$")
_LEVELS = {"95": "95%", "975": "97.5%", "99": "99%"}
_HORIZONS = {"1d": "1-day horizon", "10d": "10-day horizon"}


# ---------------------------------------------------------------- colours, layout, validation


def generator_colours(names: Iterable[str]) -> dict[str, str]:
    """Stable colour per generator: the i-th name gets the i-th house palette colour (black is kept for real data);
    more than 7 names cycle. A name equal to "real" is black."""
    out, i = {}, 0
    for n in map(str, names):
        if n == REAL:
            out[n] = REAL_COLOUR
        elif n not in out:
            out[n] = GENERATOR_PALETTE[i % len(GENERATOR_PALETTE)]
            i += 1
    return out


def _linestyle(name: str, dashed: set[str]) -> str:
    return "--" if name in dashed else "-"


def _named(by_name, what: str) -> dict[str, object]:
    if not isinstance(by_name, Mapping) or not by_name:
        raise ConfigError(f"{what} is empty; pass a dict {{generator name: array}} with at least one generator")
    return {str(k): v for k, v in by_name.items()}


def _dashed(dashed) -> set[str]:
    return {str(n) for n in (dashed or ())}


def _returns_pair(real, generated_by_name) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Validate real returns and generated paths; return real (T, A) and {name: (P, L, A)} with one A."""
    r = finite_array(real, "real", (1, 2))
    r2 = r[:, None] if r.ndim == 1 else r  # (T, A)
    gens = {}
    for name, g in _named(generated_by_name, "generated_by_name").items():
        g = finite_array(g, f"generated {name!r}", (2, 3))
        if g.ndim != r.ndim + 1:
            raise DataError(
                f"real {r.shape} and generated {name!r} {g.shape} do not match; use real (T,) with paths (P, L), "
                "or real (T, A) with paths (P, L, A)"
            )
        g = g[..., None] if g.ndim == 2 else g  # (P, L, A)
        if g.shape[2] != r2.shape[1]:
            raise DataError(f"real has {r2.shape[1]} assets but {name!r} has {g.shape[2]}; pass the same assets")
        gens[name] = g
    return r2, gens


def _outside_legend(fig: Figure, handles: list, where: str = "lower center") -> None:
    """One legend for the whole figure, outside the panels (constrained layout makes room for it)."""
    ncols = min(len(handles), 8) if where == "lower center" else 1
    fig.legend(handles=handles, loc=f"outside {where}", ncols=ncols)


def _line_handles(names: Iterable[str], colours: dict[str, str], dashed: set[str]) -> list[Line2D]:
    handles = [Line2D([], [], color=REAL_COLOUR, linewidth=1.8, label=REAL)]
    for n in names:
        handles.append(Line2D([], [], color=colours[n], linestyle=_linestyle(n, dashed), label=n))
    return handles


def _grid(n: int, ncols: int, panel: tuple[float, float], **kw) -> tuple[Figure, list]:
    """A styled figure with n panels on a grid of `ncols` columns; spare cells hidden. Where a spare cell sits
    below a panel, that panel gets its x tick labels back (shared axes hide them on all but the bottom row)."""
    ncols = min(n, ncols)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), squeeze=False, **kw)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for i in range(n):
        if i + ncols >= n:  # nothing visible below this panel
            axes.flat[i].xaxis.set_tick_params(which="both", labelbottom=True)
    return fig, list(axes.flat[:n])


def _bottom(i: int, n: int, ncols: int) -> bool:
    return i + min(n, ncols) >= n


def _log_x(ax) -> None:
    # Log x with plain tick labels ("0.5", "2", "10"), like the house _log_y.
    ax.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_formatter(plain)
    few = lo > 0 and hi > 0 and math.log10(hi / lo) <= 1.5
    ax.xaxis.set_minor_formatter(plain if few else matplotlib.ticker.NullFormatter())


# ---------------------------------------------------------------- fan chart of portfolio value


def _check_quantiles(quantiles) -> np.ndarray:
    q = np.asarray(quantiles, dtype=np.float64).ravel()
    if q.size == 0 or not np.all(np.isfinite(q)) or q.min() < 0 or q.max() > 1 or np.any(np.diff(q) <= 0):
        raise ConfigError(f"quantiles must be strictly increasing numbers in [0, 1], got {tuple(quantiles)}")
    return q


def fan_quantiles(paths, start_value: float = 100.0, quantiles=DEFAULT_QUANTILES) -> np.ndarray:
    """Quantiles over paths of the portfolio value V_t = start_value * exp(r_1 + ... + r_t), t = 1..L.

    paths: (P, L) daily portfolio log returns. Returns (Q, L): row i holds the quantiles[i] of V_t across paths.
    Computed on the cumulative log return and mapped through exp (monotone, so at the order statistics this is
    exactly the quantile of V; between them it interpolates geometrically) to stay finite for wild paths.
    """
    x = finite_array(paths, "paths", (2,))
    q = _check_quantiles(quantiles)
    if not (np.isfinite(start_value) and start_value > 0):
        raise ConfigError(f"start_value must be a positive number, got {start_value!r}")
    cum = np.cumsum(x, axis=1)  # (P, L) cumulative log return
    return start_value * np.exp(np.quantile(cum, q, axis=0))  # (Q, L)


def _band_labels(q: np.ndarray) -> tuple[list[str], str | None]:
    """Labels of the nested bands (outer first) and of the middle line (None when Q is even)."""
    bands = [f"{100 * q[j]:g}-{100 * q[-1 - j]:g}% of paths" for j in range(len(q) // 2)]
    mid = None
    if len(q) % 2:
        m = q[len(q) // 2]
        mid = "median" if m == 0.5 else f"{100 * m:g}% quantile"
    return bands, mid


def _series(s, name: str) -> pd.Series:
    if not isinstance(s, pd.Series):
        s = pd.Series(np.asarray(s, dtype=np.float64).ravel())
    finite_array(s.to_numpy(dtype=np.float64), name)
    return s


def _number(v: float) -> str:
    """60.6147 -> "60.61", 100.0 -> "100", 12345.678 -> "12,345.68"."""
    return f"{v:,.2f}".rstrip("0").rstrip(".")


def _fan_axes_x(dates, length: int, history: pd.Series | None) -> tuple[object, np.ndarray]:
    """x of the origin and of days 1..L: dates when given (origin = last history date, else one business day
    before the first date), else day numbers 0..L."""
    if dates is None:
        return 0, np.arange(1, length + 1)
    try:
        idx = pd.DatetimeIndex(dates)
    except (TypeError, ValueError) as e:
        raise DataError(f"dates could not be read as dates ({e}); pass a pandas DatetimeIndex of length L") from e
    if len(idx) != length:
        raise DataError(f"dates has {len(idx)} entries but the paths have L={length} days; pass one date per day")
    origin = history.index[-1] if history is not None else idx[0] - pd.offsets.BDay(1)
    return origin, idx.to_numpy()


def _series_x(s: pd.Series, name: str, dates, before: bool) -> np.ndarray:
    """x of history (ending at the origin) or realised (starting the day after it)."""
    if dates is None:
        n = len(s)
        return np.arange(-n + 1, 1) if before else np.arange(1, n + 1)
    if not isinstance(s.index, pd.DatetimeIndex):
        raise DataError(f"{name} needs a DatetimeIndex when dates are given; pass a Series indexed by date")
    return s.index.to_numpy()


def fan_chart(
    paths_by_name: dict[str, np.ndarray],
    start_value: float = 100.0,
    dates=None,
    history: pd.Series | None = None,
    quantiles=DEFAULT_QUANTILES,
    realised: pd.Series | None = None,
) -> Figure:
    """Fan of simulated portfolio value, one panel per generator (up to 3 per row, shared axes).

    paths_by_name: {name: (P, L) daily portfolio log returns}, all with the same L; V = start_value * exp(cumsum).
    Bands pair quantiles from the outside in (q[0]-q[-1], q[1]-q[-2], ...), with the middle quantile as a line.
    dates: optional DatetimeIndex of the L simulated days (else day numbers, 0 = origin). history: real portfolio
    value up to and including the origin (black); it should end at start_value. realised: real value on the days
    after the origin (black dashed), cut to the simulated horizon. With dates, both need a DatetimeIndex.
    """
    named = _named(paths_by_name, "paths_by_name")
    q = _check_quantiles(quantiles)
    fans = {n: fan_quantiles(p, start_value, q) for n, p in named.items()}  # name -> (Q, L)
    n_paths = {n: np.shape(p)[0] for n, p in named.items()}
    lengths = sorted({f.shape[1] for f in fans.values()})
    if len(lengths) > 1:
        raise DataError(f"paths have different lengths {lengths}; simulate every generator over the same L days")
    length = lengths[0]
    history = None if history is None else _series(history, "history")
    realised = None if realised is None else _series(realised, "realised")
    hx = None if history is None else _series_x(history, "history", dates, before=True)
    origin, x = _fan_axes_x(dates, length, history)
    xs = np.concatenate([np.asarray([origin], dtype=x.dtype), x])  # (L + 1,) origin first
    if realised is not None:
        rx = _series_x(realised, "realised", dates, before=False)
        keep = rx <= x[-1]
        realised, rx = realised[keep], rx[keep]
    colours = generator_colours(named)
    band_labels, mid_label = _band_labels(q)

    fig, axes = _grid(len(fans), 3, (3.2, 2.7), sharex=True, sharey=True)
    with style():
        for i, (ax, (name, fan)) in enumerate(zip(axes, fans.items())):
            v = np.concatenate([np.full((len(q), 1), float(start_value)), fan], axis=1)  # (Q, L + 1)
            for j in range(len(q) // 2):  # outer band first; the inner ones stack on top and look darker
                ax.fill_between(xs, v[j], v[-1 - j], color=colours[name], alpha=BAND_ALPHA, linewidth=0)
            if mid_label:
                ax.plot(xs, v[len(q) // 2], color=colours[name], linewidth=1.4)
            if history is not None:
                ax.plot(hx, history.to_numpy(), color=REAL_COLOUR, linewidth=1.2)
                ax.axvline(xs[0], color="#888888", linewidth=0.7, linestyle=":")
            if realised is not None and len(realised):
                ax.plot(rx, realised.to_numpy(), color=REAL_COLOUR, linewidth=1.2, linestyle="--")
            ax.set_axisbelow(True)  # grid under the bands
            ax.set_title(f"{name} ({n_paths[name]:,} paths)", color=colours[name])
            if i % 3 == 0:
                ax.set_ylabel(f"portfolio value (start = {_number(start_value)})")
            if _bottom(i, len(fans), 3):
                ax.set_xlabel("date" if dates is not None else "trading days after origin")
            if dates is not None:
                locator = matplotlib.dates.AutoDateLocator(minticks=3, maxticks=7)
                ax.xaxis.set_major_locator(locator)
                ax.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
        grey = "#555555"
        handles = [
            Patch(facecolor=grey, alpha=1 - (1 - BAND_ALPHA) ** (j + 1), linewidth=0, label=lab)
            for j, lab in enumerate(band_labels)
        ]
        if mid_label:
            handles.append(Line2D([], [], color=grey, linewidth=1.4, label=mid_label))
        if history is not None:
            handles.append(Line2D([], [], color=REAL_COLOUR, linewidth=1.2, label="history (real)"))
        if realised is not None and len(realised):
            handles.append(Line2D([], [], color=REAL_COLOUR, linewidth=1.2, linestyle="--", label="realised (real)"))
        _outside_legend(fig, handles)
    return fig


# ---------------------------------------------------------------- return distributions


def _pooled(x, name: str, rng: np.random.Generator) -> np.ndarray:
    """Any-shape returns pooled to (N,), subsampled without replacement to at most MAX_POINTS, in percent."""
    arr = finite_array(x, name, (1, 2, 3)).ravel()
    if arr.size < 2:
        raise DataError(f"{name} has {arr.size} return(s); pass at least 2 to plot a distribution")
    if arr.size > MAX_POINTS:
        arr = rng.choice(arr, MAX_POINTS, replace=False)
    return 100.0 * arr


def _density(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram density per unit of x, normalised by all of x (mass outside the edges is not shown); empty
    bins are NaN so a log axis leaves gaps instead of plunging to zero."""
    counts, _ = np.histogram(x, bins=edges)
    dens = counts / (x.size * np.diff(edges))
    return np.where(counts > 0, dens, np.nan)


def _loss_survival(x: np.ndarray, top: float = 0.2, points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Empirical P(loss > l) at the largest losses l = -x > 0 with P <= `top`, thinned to ~`points` log-spaced
    ranks. Returns (losses descending, survival); empty when there is no positive loss."""
    losses = np.sort(-x[x < 0])[::-1]  # (K,) largest first
    k = min(losses.size, int(top * x.size))
    if k < 1:
        return np.array([]), np.array([])
    ranks = np.unique(np.geomspace(1, k, min(points, k)).astype(np.int64))  # 1-based ranks
    return losses[ranks - 1], ranks / x.size


def return_distributions(
    returns_by_name: dict[str, np.ndarray], real: np.ndarray, title: str = "", dashed: set[str] | None = None
) -> Figure:
    """Daily return distributions: density on log y (left) and the loss tail P(loss > x) on log-log axes (right).

    returns_by_name: {name: returns of any shape, pooled}; real: real returns, pooled (black). Each is subsampled
    to at most MAX_POINTS (fixed seed). Histogram bins are shared, spanning the 0.01%-99.99% quantiles of all
    series; the tail panel shows losses (-return > 0) with survival probability <= 20%, all in percent.
    """
    rng = np.random.default_rng(0)
    gens = {n: _pooled(v, f"returns {n!r}", rng) for n, v in _named(returns_by_name, "returns_by_name").items()}
    r = _pooled(real, "real", rng)
    dashed = _dashed(dashed)
    colours = generator_colours(gens)
    every = [r, *gens.values()]
    lo = min(np.quantile(s, 1e-4) for s in every)
    hi = max(np.quantile(s, 1 - 1e-4) for s in every)
    edges = np.linspace(lo, hi, 81) if hi > lo else np.linspace(lo - 0.5, hi + 0.5, 81)

    fig, (left, right) = new_figure(1, 2, figsize=(9.0, 3.6))
    with style():
        for name, s in [*gens.items(), (REAL, r)]:  # real last, on top
            kw = {"color": colours.get(name, REAL_COLOUR), "linestyle": _linestyle(name, dashed)}
            kw["linewidth"] = 1.8 if name == REAL else 1.3
            left.stairs(_density(s, edges), edges, **kw)
            loss, surv = _loss_survival(s)
            if loss.size:
                right.plot(loss, surv, **kw)
        _log_y(left)
        left.set(xlabel="daily log return (%)", ylabel="density (per 1% return)", title="Distribution (log scale)")
        _log_y(right)
        _log_x(right)
        right.set(xlabel="loss x = -daily log return (%)", ylabel="P(loss > x)", title="Left tail (log-log)")
        if title:
            fig.suptitle(title, fontsize=11, fontweight="bold")
        _outside_legend(fig, _line_handles(gens, colours, dashed))
    return fig


# ---------------------------------------------------------------- autocorrelation and leverage


def _check_max_lag(max_lag, real: np.ndarray, gens: dict[str, np.ndarray]) -> int:
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)) or max_lag < 1:
        raise ConfigError(f"max_lag must be a positive integer, got {max_lag!r}")
    shortest = min([real.shape[0], *(g.shape[1] for g in gens.values())])
    if max_lag >= shortest:
        raise ConfigError(
            f"max_lag={max_lag} must be below the shortest series (real T={real.shape[0]}, path lengths "
            f"{sorted({g.shape[1] for g in gens.values()})}); use max_lag <= {shortest - 1}"
        )
    return int(max_lag)


def _rows(x: np.ndarray) -> np.ndarray:
    """(T, A) -> (A, T) or (P, L, A) -> (P * A, L): one row per series, so a mean over rows is the mean over
    assets (and paths, each asset with the same weight)."""
    return x.T if x.ndim == 2 else x.transpose(0, 2, 1).reshape(-1, x.shape[1])


def _lag_curves(stat, real: np.ndarray, gens: dict[str, np.ndarray], max_lag: int, f=lambda v: v) -> dict:
    """{REAL: curve, name: curve}: stat (acf or leverage) of f(returns), mean over assets and paths, (max_lag,)."""
    out = {REAL: stat(_rows(f(real)), max_lag)}
    for name, g in gens.items():
        out[name] = stat(_rows(f(g)), max_lag)
    return out


def _draw_lag_curves(ax, curves: dict, colours: dict[str, str], dashed: set[str]) -> None:
    lags = np.arange(1, len(curves[REAL]) + 1)
    ax.axhline(0.0, color="#888888", linewidth=0.8)
    for name, c in curves.items():
        if name != REAL:
            ax.plot(lags, c, color=colours[name], linestyle=_linestyle(name, dashed), linewidth=1.3)
    ax.plot(lags, curves[REAL], color=REAL_COLOUR, linewidth=1.8)  # real on top


def _averaged(real: np.ndarray, gens: dict[str, np.ndarray]) -> str:
    assets = real.shape[1]
    paths = sorted({g.shape[0] for g in gens.values()})
    over = f"{assets} assets and " if assets > 1 else ""
    return f"mean over {over}{'/'.join(map(str, paths))} paths"


def acf_panels(
    real: np.ndarray, generated_by_name: dict[str, np.ndarray], max_lag: int = 250, dashed: set[str] | None = None
) -> Figure:
    """Autocorrelation of r, |r| and r^2 at lags 1..max_lag (stylized.acf), real in black.

    real (T,) / (T, A); each generated (P, L) / (P, L, A). Multi-asset: the ACF is averaged over assets, and for
    generated paths over paths too. max_lag must be below T and every L.
    """
    r, gens = _returns_pair(real, generated_by_name)
    max_lag = _check_max_lag(max_lag, r, gens)
    dashed = _dashed(dashed)
    colours = generator_colours(gens)
    panels = [("r", lambda v: v), ("|r|", np.abs), ("r\u00b2", np.square)]

    fig, axes = new_figure(1, 3, figsize=(9.6, 3.2), sharex=True)
    with style():
        for i, (ax, (label, f)) in enumerate(zip(axes, panels)):
            _draw_lag_curves(ax, _lag_curves(acf, r, gens, max_lag, f), colours, dashed)
            ax.set(title=f"ACF of {label}", xlabel="lag (trading days)")
            if i == 0:
                ax.set_ylabel("autocorrelation")
        fig.suptitle(f"Autocorrelation of daily log returns ({_averaged(r, gens)})", fontsize=10)
        _outside_legend(fig, _line_handles(gens, colours, dashed))
    return fig


def leverage_panel(
    real: np.ndarray, generated_by_name: dict[str, np.ndarray], max_lag: int = 60, dashed: set[str] | None = None
) -> Figure:
    """Leverage effect corr(r_t, r_{t+k}^2) at k = 1..max_lag (stylized.leverage), real in black.

    Same shapes and averaging as `acf_panels`; negative values at small k mean falls raise later volatility.
    """
    r, gens = _returns_pair(real, generated_by_name)
    max_lag = _check_max_lag(max_lag, r, gens)
    dashed = _dashed(dashed)
    colours = generator_colours(gens)

    fig, ax = new_figure(figsize=(7.2, 3.4))
    with style():
        _draw_lag_curves(ax, _lag_curves(leverage, r, gens, max_lag), colours, dashed)
        ax.set(
            title=f"Leverage effect ({_averaged(r, gens)})",
            xlabel="lag k (trading days)",
            ylabel="corr(r$_t$, r$_{t+k}^2$)",
        )
        _outside_legend(fig, _line_handles(gens, colours, dashed), where="right upper")
    return fig


# ---------------------------------------------------------------- cross-asset correlation


def _mean_path_corr(g: np.ndarray) -> np.ndarray:
    """Mean over paths of per-path correlation matrices, (P, L, A) -> (A, A). An asset constant within a path
    counts as uncorrelated there (the diagonal stays 1), so a collapsed generator shows up instead of failing."""
    d = g - g.mean(axis=1, keepdims=True)  # (P, L, A)
    cov = d.transpose(0, 2, 1) @ d  # (P, A, A)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))  # (P, A)
    den = sd[:, :, None] * sd[:, None, :]
    corr = np.divide(cov, den, out=np.zeros_like(cov), where=den > 1e-300).mean(axis=0)
    np.fill_diagonal(corr, 1.0)
    return corr


def correlation_heatmaps(real: np.ndarray, generated_by_name: dict[str, np.ndarray], assets: Sequence[str]) -> Figure:
    """Cross-asset correlation of daily returns: real first, then each generator (up to 4 panels per row).

    real (T, A); each generated (P, L, A), its matrix the mean of the per-path matrices. One diverging colour
    scale for all panels, symmetric about 0 and spanning the largest off-diagonal |correlation| (rounded up to
    0.1); the diagonal is grey. Asset names label the axes when A <= 25. Each generator's title gives its mean
    |difference| from real over the off-diagonal entries.
    """
    r, gens = _returns_pair(real, generated_by_name)
    n_assets = r.shape[1]
    if n_assets < 2:
        raise DataError(f"correlations need at least 2 assets, got real {np.shape(real)}; pass (T, A) with A >= 2")
    names = [str(a) for a in assets]
    if len(names) != n_assets:
        raise DataError(f"assets has {len(names)} names but the returns have {n_assets} columns; pass one per column")
    if r.shape[0] < 3 or np.any(r.std(axis=0) <= 0):
        raise DataError("real returns need at least 3 days and no constant asset to compute correlations")
    mats = {REAL: _mean_path_corr(r[None])}
    mats.update({n: _mean_path_corr(g) for n, g in gens.items()})
    off = ~np.eye(n_assets, dtype=bool)
    vmax = max(0.1, min(1.0, math.ceil(10 * max(np.abs(m[off]).max() for m in mats.values()) - 1e-9) / 10))
    colours = generator_colours(gens)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="#d9d9d9")  # the diagonal (always 1) in grey

    fig, axes = _grid(len(mats), 4, (2.45, 2.45), sharex=True, sharey=True)
    with style():
        for ax, (name, m) in zip(axes, mats.items()):
            im = ax.imshow(np.where(off, m, np.nan), cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
            ax.grid(False)
            title = name if name == REAL else f"{name}\nmean |\u0394\u03c1| = {np.abs(m - mats[REAL])[off].mean():.3f}"
            ax.set_title(title, color=colours.get(name, REAL_COLOUR), fontsize=9)
            if n_assets <= 25:
                size = 7 if n_assets <= 12 else 5.5
                ax.set_xticks(range(n_assets), names, rotation=90, fontsize=size)
                ax.set_yticks(range(n_assets), names, fontsize=size)
            else:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.colorbar(im, ax=axes, shrink=0.8, label="correlation of daily returns")
    return fig


# ---------------------------------------------------------------- VaR and ES


def _var_es_table(rows) -> tuple[list[str], dict]:
    """Validate rows; return names and {(measure, level, horizon): (N,) values, NaN where missing}."""
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)) or not rows:
        raise ConfigError("rows is empty; pass a list of dicts like {'name': 'garch-t', 'var_99_1d': 0.031}")
    names = []
    for row in rows:
        if not isinstance(row, Mapping) or "name" not in row:
            raise DataError(f"each row must be a dict with a 'name' key, got {row!r:.80}")
        names.append(str(row["name"]))
    if len(set(names)) != len(names):
        raise DataError(f"row names repeat ({names}); give each generator one row")
    table: dict[tuple[str, str, str], np.ndarray] = {}
    for j, row in enumerate(rows):
        for key, value in row.items():
            m = _VAR_ES_KEY.match(str(key))
            if not m or value is None:
                continue
            try:
                v = float(value)
            except (TypeError, ValueError) as e:
                raise DataError(f"row {names[j]!r}: {key}={value!r} is not a number; pass losses as fractions") from e
            if math.isinf(v):
                raise DataError(f"row {names[j]!r}: {key} is infinite; check the scenario returns")
            table.setdefault(m.groups(), np.full(len(rows), np.nan))[j] = v
    table = {k: v for k, v in table.items() if np.isfinite(v).any()}
    if not table:
        raise DataError("rows hold no VaR/ES values; expected keys like var_99_1d, es_975_10d (losses as fractions)")
    return names, table


def var_es_chart(rows: list[dict], dashed: set[str] | None = None) -> Figure:
    """VaR and ES of each generator at each confidence level, 1-day (left) and 10-day (right) horizons.

    rows: [{"name": ..., "var_95_1d": 0.021, "es_95_1d": ..., "var_99_10d": ...}] with keys (var|es)_(95|975|99)_
    (1d|10d) holding positive losses as fractions of portfolio value (missing or None: no bar). One bar group per
    level, one bar per row: the solid part is the VaR, the light part on top reaches the ES. A row named "real"
    (e.g. historical VaR of the real portfolio) is black.
    """
    names, table = _var_es_table(rows)
    dashed = _dashed(dashed)
    colours = generator_colours(names)
    levels = [lv for lv in _LEVELS if any(k[1] == lv for k in table)]
    width = 0.8 / len(names)
    nan = np.full(len(names), np.nan)

    fig, axes = new_figure(1, 2, figsize=(9.0, 3.4))
    with style():
        for ax, (horizon, title) in zip(axes, _HORIZONS.items()):
            ax.set_title(title)
            ax.set_xlabel("confidence level")
            ax.grid(axis="x", visible=False)
            if not any(k[2] == horizon for k in table):
                ax.text(0.5, 0.5, f"no {title} figures", transform=ax.transAxes, ha="center", color="#6b7178")
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            for i, lv in enumerate(levels):
                var, es = table.get(("var", lv, horizon), nan), table.get(("es", lv, horizon), nan)
                for j, name in enumerate(names):
                    x = i + (j - (len(names) - 1) / 2) * width
                    c = colours[name]
                    hatch = "////" if name in dashed else None
                    if np.isfinite(es[j]):
                        ax.bar(
                            x,
                            es[j],
                            0.92 * width,
                            facecolor=matplotlib.colors.to_rgba(c, 0.3),
                            edgecolor=c,
                            linewidth=0.8,
                        )
                    if np.isfinite(var[j]):
                        ax.bar(x, var[j], 0.92 * width, facecolor=c, edgecolor="white", linewidth=0, hatch=hatch)
            ax.set_xticks(range(len(levels)), [_LEVELS[lv] for lv in levels])
            ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
            ax.set_ylabel("loss (% of portfolio value)")
        handles = [
            Patch(facecolor=colours[n], edgecolor="white", hatch="////" if n in dashed else None, label=n)
            for n in names
        ]
        handles.append(Patch(facecolor="#777777", label="VaR (solid)"))
        handles.append(
            Patch(facecolor=matplotlib.colors.to_rgba("#777777", 0.3), edgecolor="#777777", label="ES (light)")
        )
        _outside_legend(fig, handles)
    return fig
