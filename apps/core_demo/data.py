"""The demo's data: the real 8x8 handwritten digits that ship inside scikit-learn, and small synthetic sets with
known answers (a ring of Gaussians, bars-and-stripes).

digits: 1,797 images of 8x8 pixels, intensities 0..16, 10 classes (UCI "Optical Recognition of Handwritten Digits",
as bundled by scikit-learn). We split it once with a fixed seed into train / held-out.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch


def load_digits(split_seed: int = 0, test_fraction: float = 0.2):
    """Return (x_train, y_train, x_test, y_test): x float32 (N, 1, 8, 8) in [0, 1] (intensity / 16), y int64 (N,)."""
    from sklearn.datasets import load_digits as _sk_load

    d = _sk_load()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(split_seed)
    perm = torch.randperm(len(x), generator=g)
    n_test = int(round(test_fraction * len(x)))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]


def ring_modes(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """(n_modes, 2) centres evenly spaced on a circle."""
    ang = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(ang), radius * torch.sin(ang)], dim=1).float()


def ring_of_gaussians(
    n: int, n_modes: int = 8, radius: float = 2.0, std: float = 0.02, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(n, 2) samples from an equal mixture of isotropic Gaussians (sd `std`) on a ring (the Unrolled-GAN set-up)."""
    centres = ring_modes(n_modes, radius)
    k = torch.randint(n_modes, (n,), generator=generator)
    return centres[k] + std * torch.randn(n, 2, generator=generator)


def bars_and_stripes(size: int = 3) -> torch.Tensor:
    """All distinct size x size bars-and-stripes patterns, flattened: (2 * 2**size - 2, size*size) float {0,1}.

    Each pattern has every row constant (stripes) or every column constant (bars); all-off and all-on are both,
    so for size 3 there are 8 + 8 - 2 = 14 patterns and the best average log-likelihood is -ln 14 = -2.639 nats.
    """
    pats = set()
    for bits in itertools.product((0, 1), repeat=size):
        rows = np.repeat(np.array(bits)[:, None], size, axis=1)  # each row constant
        pats.add(tuple(rows.reshape(-1)))
        pats.add(tuple(rows.T.reshape(-1)))
    return torch.tensor(sorted(pats), dtype=torch.float32)


def load_images_npz(path: str, split_seed: int = 0, test_fraction: float = 0.2):
    """A user's images: an .npz with `images` (N,H,W) or (N,1,H,W) in [0,1] and optional int `labels` (N,).

    Returns the same tuple as `load_digits`. Missing files, missing arrays and bad shapes are DataErrors.
    """
    from pathlib import Path

    from shared.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {p} does not exist; pass an .npz with an 'images' array, or omit --data")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zipfile / numpy raise several types for a file that is not an npz
        raise DataError(
            f"data file {p} is not a readable .npz ({type(e).__name__}); save it with numpy.savez"
        ) from None
    if "images" not in arrays:
        raise DataError(f"data file {p} has no 'images' array (found: {', '.join(arrays) or 'nothing'})")
    x = torch.as_tensor(arrays["images"], dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3] or x.shape[2] % 4 or len(x) < 10:
        raise DataError(
            f"images in {p} must be (N,H,W) or (N,1,H,W) with H=W a multiple of 4 and N>=10, got {tuple(x.shape)}"
        )
    if x.min() < 0 or x.max() > 1:
        raise DataError(f"images in {p} must lie in [0, 1] (got {x.min():.3g}..{x.max():.3g}); divide by 255 first")
    y = torch.as_tensor(arrays.get("labels", np.zeros(len(x))), dtype=torch.int64)
    if y.shape != (len(x),) or y.min() < 0:
        raise DataError(f"labels in {p} must be (N,) non-negative integers matching the {len(x)} images")
    g = torch.Generator().manual_seed(split_seed)
    perm = torch.randperm(len(x), generator=g)
    n_test = max(1, int(round(test_fraction * len(x))))
    te, tr = perm[:n_test], perm[n_test:]
    return x[tr], y[tr], x[te], y[te]
