"""Pictures of the art report, as arrays and matplotlib figures: image strips and class rows, the training-progress
panels cut from the fixed-seed grids that apps.art.training saves, loss curves, and the confusion matrix of class
recognition. apps.art.report lays them out on the page; nothing here reads run folders except the files it is
handed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from shared.errors import DataError
from shared.report import figures
from shared.training.metrics_log import read_records

PROGRESS_PANELS = 6  # saved steps shown per model, evenly spaced
PROGRESS_COLUMNS = 6  # columns of the progress grids written by apps.art.training (pad 1 px)
PROGRESS_BUDGET = 200_000  # PNG bytes of one model's progress figure: fewer columns and steps above it
END_GAP = 6  # white pixels setting the real endpoints apart in an interpolation strip


def finite(v) -> float | None:
    """A finite float, or None for a missing / NaN / infinite / non-numeric value."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def upscale(size: int) -> int:
    """Integer upscale for a cell of at least 48 px (as figures.image_grid_array does by default)."""
    return max(1, math.ceil(48 / size))


def strip(images: np.ndarray, scale: int, cells: int = 0, ends: bool = False) -> np.ndarray:
    """One row of images (n, 3, S, S) uint8 -> (3, H, W) uint8 with 1 px white padding, widened with white to
    `cells` cells; with `ends` the first and last image are set apart from the inner ones by END_GAP px."""
    parts = [images[:1], images[1:-1], images[-1:]] if ends and len(images) > 2 else [images]
    arrays = [figures.image_grid_array(p, nrow=len(p), pad=1, scale=scale) for p in parts if len(p)]
    gap = np.full((arrays[0].shape[0], END_GAP, 3), 255, np.uint8)
    row = np.concatenate([x for a in arrays for x in (a, gap)][:-1], axis=1)
    width = cells * (images.shape[-1] * scale + 1) + 1
    if row.shape[1] < width:
        row = np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255)
    return row.transpose(2, 0, 1)


def cell_bytes(images: np.ndarray, scale: int) -> float:
    """PNG bytes per image of a strip, measured on up to 8 of `images` (n, 3, S, S) upscaled by `scale`."""
    x = images[:8]
    return len(figures.png_bytes(figures.image_grid_array(x, nrow=len(x), pad=1, scale=scale))) / max(len(x), 1)


def class_rows(images: np.ndarray, labels: np.ndarray, classes: list[int], per: int, scale: int):
    """(class ids, strips) with the first `per` images of each class that has any."""
    out = [(c, images[labels == c][:per]) for c in classes]
    return [c for c, x in out if len(x)], [strip(x, scale, per) for _, x in out if len(x)]


def grid_layout(h: int, w: int, cols: int = PROGRESS_COLUMNS, pad: int = 1) -> tuple[int, int] | None:
    """(cell size, rows) of a grid image `cols` cells wide with `pad` px padding, or None if it is not one."""
    cell = (w - pad) / cols - pad
    if cell < 1 or cell != int(cell) or (h - pad) % (int(cell) + pad):
        return None
    return int(cell), (h - pad) // (int(cell) + pad)


def progress_figure(found: list[tuple[int, Path]], classes: list[str]):
    """One panel per saved step (found: (step, PNG path) in step order), titled with the step, class names on
    the left; at most PROGRESS_PANELS steps, evenly spaced with the first and last kept, and as many leading
    columns of each fixed-seed grid as the progress budget allows. Returns (figure, what it shows), or None when
    no PNG could be read."""
    panels = []
    for step, path in found:
        try:
            with Image.open(path) as im:
                panels.append((step, np.asarray(im.convert("RGB")), path.stat().st_size))
        except (OSError, ValueError):
            continue
    if not panels:
        return None
    shape = panels[0][1].shape
    layout = grid_layout(*shape[:2]) if all(img.shape == shape for _, img, _ in panels) else None
    n = min(len(panels), PROGRESS_PANELS)
    keep = max(1, min(PROGRESS_COLUMNS, 12 // n))  # grid columns per panel: fewer when there are many steps
    if layout:
        cell_bytes = np.mean([b for *_, b in panels]) / (PROGRESS_COLUMNS * layout[1])
        while n * keep * layout[1] * cell_bytes > PROGRESS_BUDGET and (keep > 1 or n > 3):
            keep, n = (keep - 1, n) if keep > 1 else (keep, n - 1)
    picks = np.unique(np.linspace(0, len(panels) - 1, n).round().astype(int))
    crop = 1 + keep * (layout[0] + 1) if layout else shape[1]
    panels = [(panels[i][0], panels[i][1][:, :crop]) for i in picks]
    h, w = max(img.shape[0] for _, img in panels), max(img.shape[1] for _, img in panels)
    width, height = len(panels) * w / figures.DPI + 1.4, h / figures.DPI + 0.6
    shrink = min(1.0, 9.5 / width, 8.0 / height)
    fig, axes = figures.new_figure(1, len(panels), figsize=(width * shrink, height * shrink), squeeze=False)
    with figures.style():
        for ax, (step, img) in zip(axes[0], panels):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(f"{step:,}", fontsize=8)  # short: a panel may be one 32 px column wide
            ax.grid(False)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
        if layout:
            cell, rows = layout
            names = [classes[r] if r < len(classes) else f"class {r}" for r in range(rows)]
            axes[0, 0].set_yticks([1 + r * (cell + 1) + cell / 2 for r in range(rows)], labels=names)
            axes[0, 0].tick_params(axis="y", length=0)
        fig.suptitle("training step", fontsize=9)
    cols = f"the first {keep} column{'s' * (keep > 1)} of each fixed-seed grid" if layout else "the fixed-seed grids"
    return fig, f"{len(picks)} of {len(found)} saved steps, {cols}"


def curves_figure(path: Path):
    """The loss curves of a train.jsonl (every loss/* key; log y where positive over a decade), or None."""
    try:
        records = read_records(path)
    except (DataError, OSError, ValueError):
        return None
    numeric = [k for r in records for k, x in r.items() if k != "step" and finite(x) is not None]
    keys = list(dict.fromkeys(k for k in numeric if k.startswith("loss"))) or None
    if not records or not numeric:
        return None
    logy = []
    for k in keys or []:
        ys = [r[k] for r in records if finite(r.get(k)) is not None]
        if ys and min(ys) > 0 and max(ys) / min(ys) > 10:
            logy.append(k)
    try:
        return figures.training_curves(records, keys=keys, smooth=0.9, logy=logy)
    except (DataError, ValueError):
        return None


def confusion_figure(cm: np.ndarray, names: list[str]):
    """Heat map of a confusion matrix (rows = class asked for, columns = predicted), row-normalised, counts
    written in the cells when there are at most 15 classes."""
    k = len(cm)
    frac = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    side = min(8.5, 2.4 + 0.42 * k)
    fig, ax = figures.new_figure(figsize=(side + 1.2, side))
    with figures.style():
        im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        ax.set_xticks(range(k), labels=names, rotation=45, ha="right")
        ax.set_yticks(range(k), labels=names)
        ax.set(xlabel="predicted class", ylabel="class asked for")
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    if cm[i, j]:
                        colour = "white" if frac[i, j] > 0.55 else "#1d2125"
                        ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7, color=colour)
        fig.colorbar(im, ax=ax, shrink=0.8, label="share of the class's samples")
    return fig
