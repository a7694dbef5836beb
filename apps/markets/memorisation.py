"""Memorisation check: are generated windows closer to the training data than genuinely new data is?

A bootstrap scores well on stylized facts by replaying history. For every generated window (L days x A assets) we
take the Euclidean distance to its nearest training window, and compare with the same distance for real held-out
windows (Zhang et al. 2023 and the "copy detection" of Meehan et al. 2020 use the same idea). Windows are divided by
their own root-mean-square first, so the check compares shapes rather than volatility levels (held-out years are
calmer or wilder than the training ones, which would otherwise dominate the distance).

    ratio = median NN distance of generated windows / median NN distance of held-out windows

A ratio near 1 means generated windows are as novel as new real data; well below 1 means copying. `copy_rate` is
the share of generated windows closer to the training set than the 1st percentile of held-out windows.
"""

from __future__ import annotations

import numpy as np

from apps.markets.arrays import finite_array
from shared.errors import DataError


def windows(x: np.ndarray, length: int, stride: int | None = None) -> np.ndarray:
    """(T, A) -> (N, length, A) windows every `stride` days (default: non-overlapping)."""
    x = finite_array(x, "returns", (2,))
    stride = stride or length
    if len(x) < length:
        raise DataError(f"{len(x)} days are fewer than the window length {length}; use a shorter --window")
    starts = np.arange(0, len(x) - length + 1, stride)
    return np.stack([x[s : s + length] for s in starts])


def _normalise(w: np.ndarray) -> np.ndarray:
    flat = w.reshape(len(w), -1)
    return flat / np.maximum(np.sqrt((flat**2).mean(axis=1, keepdims=True)), 1e-12)


def nn_distances(queries: np.ndarray, reference: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Distance of each query window (N, L, A) to its nearest reference window (M, L, A), after RMS normalisation."""
    q, ref = _normalise(queries), _normalise(reference)
    ref_sq = (ref**2).sum(axis=1)
    out = np.empty(len(q))
    for i in range(0, len(q), chunk):
        block = q[i : i + chunk]
        d2 = (block**2).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * block @ ref.T  # (b, M)
        out[i : i + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def memorisation(
    train: np.ndarray,
    held_out: np.ndarray,
    generated: np.ndarray,
    length: int = 20,
    seed: int = 0,
    max_windows: int = 2000,
) -> dict:
    """train (T, A), held_out (T', A), generated (P, L, A) -> {ratio, copy_rate, gen_median, heldout_median}.

    Training windows overlap (every day starts one); held-out and generated windows do not. At most `max_windows`
    generated windows are drawn (uniformly, seeded)."""
    ref = windows(train, length, stride=1)
    real = windows(held_out, length)
    g = finite_array(generated, "generated", (3,))
    gen = np.concatenate([windows(p, length) for p in g])
    if len(gen) > max_windows:
        gen = gen[np.random.default_rng(seed).choice(len(gen), max_windows, replace=False)]
    d_real, d_gen = nn_distances(real, ref), nn_distances(gen, ref)
    return {
        "ratio": float(np.median(d_gen) / np.median(d_real)),
        "copy_rate": float(np.mean(d_gen < np.quantile(d_real, 0.01))),
        "gen_median": float(np.median(d_gen)),
        "heldout_median": float(np.median(d_real)),
    }
