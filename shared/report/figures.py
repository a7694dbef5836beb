"""Matplotlib figures for report pages, in one house style, plus image-grid assembly and PNG encoding.

Every helper builds a `matplotlib.figure.Figure` directly and renders it with the Agg canvas, so nothing here
touches pyplot's global figure registry, opens a window or depends on the session's backend; a figure that is
dropped is simply garbage-collected. Apps call `line_plot`, `training_curves`, `scatter_2d` and `histograms`
for the usual plots, `new_figure` when they need a plot of their own in the same look, `image_grid_array` to
tile sample images (N, C, H, W) into one uint8 picture, and `png_bytes` to encode a figure or array for
`shared.report.page.Page`.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Iterable, Mapping
from contextlib import contextmanager

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from shared.errors import DataError
from shared.training.metrics_log import read_records

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and still distinct in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]

STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "axes.edgecolor": "#444444",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "font.size": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
    "lines.markersize": 3.5,
}

DPI = 110


@contextmanager
def style():
    """Apply the house rcParams inside the block (figures read them when their artists are created)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] | None = None, squeeze: bool = True, **kw):
    """A styled (Figure, axes) pair like `plt.subplots` (same `squeeze` rule and keywords), without pyplot."""
    with style():
        fig = Figure(figsize=figsize or STYLE["figure.figsize"], layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=squeeze, **kw)
    return fig, axes


def _log_y(ax) -> None:
    # Log y with plain tick labels ("0.6", "2", "100") instead of mathtext powers like 6x10^-1.
    ax.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter() if _decades(ax) > 1.5 else plain)


def _decades(ax) -> float:
    lo, hi = ax.get_ylim()
    return math.log10(hi / lo) if lo > 0 and hi > 0 else 0.0


def _array(x) -> np.ndarray:
    # torch tensors (possibly on GPU, possibly requiring grad) without importing torch here.
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def line_plot(
    series: Mapping[str, object],
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
    logx: bool = False,
) -> Figure:
    """One line per entry. A value is either a tuple `(x, y)` of equal-length 1-D arrays or a 1-D array of y
    plotted against 0..n-1. Short series (<= 30 points) get markers so single evaluations stay visible."""
    fig, ax = new_figure()
    with style():
        for name, v in series.items():
            if isinstance(v, tuple) and len(v) == 2:
                x, y = _array(v[0]).ravel(), _array(v[1]).ravel()
            else:
                y = _array(v).ravel()
                x = np.arange(len(y))
            if len(x) != len(y):
                raise ValueError(f"series {name!r}: x has {len(x)} points but y has {len(y)}")
            ax.plot(x, y, label=str(name), marker="o" if len(y) <= 30 else None)
        if logy:
            _log_y(ax)
        if logx:
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        if len(series) > 1:
            ax.legend()
    return fig


def _is_scalar(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ema(y: np.ndarray, beta: float) -> np.ndarray:
    # Bias-corrected exponential moving average (as in Adam / TensorBoard smoothing).
    out, acc = np.empty_like(y), 0.0
    for i, v in enumerate(y):
        acc = beta * acc + (1 - beta) * v
        out[i] = acc / (1 - beta ** (i + 1))
    return out


def training_curves(
    source: str | os.PathLike | Iterable[Mapping],
    keys: Iterable[str] | None = None,
    x: str = "step",
    smooth: float = 0.0,
    logy: bool | Iterable[str] = False,
) -> Figure:
    """One panel per metric key against `x` (default "step").

    `source` is a path to a .jsonl metrics log or an iterable of records (dicts with `x` and scalar keys).
    `keys` defaults to every numeric key seen. A resumed run may log a step twice: the later record wins.
    `smooth` in [0, 1) draws an EMA over the faint raw curve. `logy` is a bool or the keys to show on log y.
    """
    records = read_records(source) if isinstance(source, (str, os.PathLike)) else [dict(r) for r in source]
    if not records:
        raise DataError("no metric records to plot; has the run logged anything yet?")
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth}")
    seen = list(dict.fromkeys(k for r in records for k, v in r.items() if k != x and _is_scalar(v)))
    keys = seen if keys is None else list(keys)
    missing = [k for k in keys if k not in seen]
    if missing or not keys:
        raise ValueError(f"no numeric values for {missing or 'any key'}; keys with values: {seen}")
    log_keys = set(keys) if logy is True else set(logy or ())

    ncols = min(len(keys), 3)
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(3.3 * ncols, 2.5 * nrows), squeeze=False)
    with style():
        for ax in axes.flat[len(keys) :]:
            ax.set_visible(False)
        for i, (key, ax) in enumerate(zip(keys, axes.flat)):
            points: dict[float, float] = {}
            for r in records:  # later records overwrite earlier ones at the same step
                if _is_scalar(r.get(key)) and _is_scalar(r.get(x)):
                    points[r[x]] = r[key]
            xs = np.array(sorted(points), dtype=float)
            ys = np.array([points[s] for s in sorted(points)], dtype=float)
            colour = PALETTE[i % len(PALETTE)]
            if smooth > 0 and len(ys) >= 50:  # EMA over a few evaluation points would only add lag
                ax.plot(xs, ys, color=colour, alpha=0.25, linewidth=1.0)
                ax.plot(xs, _ema(ys, smooth), color=colour)
            else:
                ax.plot(xs, ys, color=colour, marker="o" if len(ys) <= 30 else None)
            if key in log_keys:
                _log_y(ax)
            ax.set_title(key)
            if i // ncols == nrows - 1 or i + ncols >= len(keys):
                ax.set_xlabel(x)
    return fig


def scatter_2d(
    points: Mapping[str, object], title: str = "", centres=None, xlabel: str = "", ylabel: str = "", equal: bool = True
) -> Figure:
    """Overlaid 2-D point clouds, each value an (N, 2) array; `centres` (K, 2) are drawn as black crosses
    (e.g. the modes of a Gaussian mixture). Large clouds are drawn small and translucent so density shows."""
    fig, ax = new_figure(figsize=(4.8, 4.4) if equal else None)
    with style():
        for name, p in points.items():
            p = _array(p)
            if p.ndim != 2 or p.shape[1] != 2:
                raise ValueError(f"points {name!r} must have shape (N, 2), got {p.shape}")
            size = 10 if len(p) <= 500 else 3
            ax.scatter(
                p[:, 0],
                p[:, 1],
                s=size,
                alpha=0.8 if len(p) <= 500 else 0.35,
                linewidths=0,
                label=f"{name} (n={len(p):,})",
            )
        if centres is not None:
            c = _array(centres).reshape(-1, 2)
            ax.scatter(c[:, 0], c[:, 1], marker="x", s=40, color="black", linewidths=1.4, label="centres")
        if equal:
            ax.set_aspect("equal", adjustable="datalim")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        legend = ax.legend()
        for handle in legend.legend_handles:  # legend markers at one readable size, opaque
            handle.set_sizes([24])
            handle.set_alpha(1.0)
    return fig


def histograms(
    samples: Mapping[str, object],
    bins: int | Iterable[float] = 50,
    title: str = "",
    log: bool = False,
    xlabel: str = "",
    density: bool = True,
) -> Figure:
    """Overlaid step histograms over shared bin edges, so the distributions compare bin for bin.
    Each value is flattened; non-finite values are dropped (and counted in the legend)."""
    clean, dropped = {}, {}
    for name, s in samples.items():
        s = _array(s).astype(float).ravel()
        finite = np.isfinite(s)
        clean[name], dropped[name] = s[finite], int((~finite).sum())
    pooled = np.concatenate(list(clean.values())) if clean else np.array([])
    if pooled.size == 0:
        raise ValueError("histograms: no finite values to plot")
    edges = np.histogram_bin_edges(pooled, bins=bins if isinstance(bins, int) else np.asarray(list(bins)))
    fig, ax = new_figure()
    with style():
        for name, s in clean.items():
            label = str(name) + (f" ({dropped[name]} non-finite dropped)" if dropped[name] else "")
            ax.hist(s, bins=edges, density=density, histtype="step", linewidth=1.5, label=label)
        if log:
            _log_y(ax)
        ax.set(title=title, xlabel=xlabel, ylabel="density" if density else "count")
        if len(clean) > 1 or any(dropped.values()):
            ax.legend()
    return fig


def image_grid_array(
    images, nrow: int | None = None, pad: int = 1, scale: int | None = None, pad_value: float = 1.0
) -> np.ndarray:
    """Tile images into one picture: (N, C, H, W) with C in {1, 3} or (N, H, W), floats in [0, 1] (or uint8).

    `nrow` is images per row, as in torchvision's make_grid (default ceil(sqrt(N))), so the grid has
    ceil(N / nrow) rows. Each image is upscaled by the integer `scale` with nearest-neighbour (default:
    enough for a cell of at least 48 px, so 8x8 digits stay legible). `pad` pixels of `pad_value` separate and
    surround the cells. Returns (rows*(H*scale+pad)+pad, nrow*(W*scale+pad)+pad, 3) uint8.
    """
    x = _array(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.ndim == 3:
        x = x[:, None]  # (N, 1, H, W)
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W) with C in {{1, 3}} or (N, H, W); got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("images contain NaN or inf; check the sampler output before plotting")
    lo, hi = float(x.min()), float(x.max())
    if lo < -0.5 or hi > 1.5:
        raise ValueError(
            f"images must be in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; "
            "map [-1, 1] data with (x + 1) / 2 and 0-255 data with x / 255"
        )
    x = np.clip(x, 0.0, 1.0)  # small overshoot from samplers is expected; clip it for display
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    if nrow < 1 or pad < 0:
        raise ValueError(f"nrow must be >= 1 and pad >= 0, got nrow={nrow}, pad={pad}")
    scale = scale or max(1, math.ceil(48 / max(h, w)))
    if c == 1:
        x = np.repeat(x, 3, axis=1)
    x = x.transpose(0, 2, 3, 1).repeat(scale, axis=1).repeat(scale, axis=2)  # (N, H*s, W*s, 3)
    ncol_cells, nrows = min(nrow, n), math.ceil(n / nrow)
    ch, cw = h * scale, w * scale
    grid = np.full((nrows * (ch + pad) + pad, ncol_cells * (cw + pad) + pad, 3), pad_value, np.float32)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (ch + pad), pad + col * (cw + pad)
        grid[top : top + ch, left : left + cw] = x[i]
    return np.round(grid * 255).astype(np.uint8)


def _close_if_pyplot(fig: Figure) -> None:
    # Figures made with plt.subplots stay in pyplot's registry (and memory) until closed. Only look if pyplot
    # was imported by someone; importing it here would pick a backend for the whole process.
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.close(fig)


def png_bytes(fig_or_array, dpi: int = DPI, close: bool = True) -> bytes:
    """PNG bytes of a matplotlib Figure (rendered with Agg at `dpi`, tight bounding box; closed after unless
    `close=False`) or of an image array (H, W), (H, W, 3) or (H, W, 4), uint8 or floats in [0, 1]."""
    buf = io.BytesIO()
    if isinstance(fig_or_array, Figure):
        fig = fig_or_array
        # savefig picks the Agg renderer for PNG whatever the figure's own canvas is.
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.08, facecolor="white")
        if close:
            _close_if_pyplot(fig)
        return buf.getvalue()
    from PIL import Image

    a = _array(fig_or_array)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"image array must be (H, W), (H, W, 3) or (H, W, 4); got {a.shape}")
    if a.dtype != np.uint8:
        a = np.round(np.clip(a.astype(np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    return buf.getvalue()
