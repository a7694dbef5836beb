"""Image-quality metrics of apps/art: SWD on Laplacian pyramids, KID on fixed random features, nearest-neighbour
memorisation, and the two degradations (noise, blur) that anchor both quality scores.

References (reimplemented from the definitions, not copied):
- Burt & Adelson 1983, "The Laplacian pyramid as a compact image code": the 5-tap binomial filter [1,4,6,4,1]/16.
- Karras et al. 2018, "Progressive growing of GANs" (ICLR), appendix D.1 and their `sliced_wasserstein.py`: SWD
  between sets of 7x7x3 neighbourhoods of every pyramid level, reported x1e3; the sliced distance of Rabin et al.
  2011 ("Wasserstein barycenter and its application to texture mixing").
- Binkowski et al. 2018, "Demystifying MMD GANs" (ICLR): KID, the unbiased MMD^2 estimator with the cubic
  polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
- Meehan et al. 2020, "A non-parametric test to detect data-copying": nearest-neighbour distances of samples to the
  training set read against those of held-out real images.

Conventions: images are uint8 (N, 3, S, S) RGB, square; floats are in [0, 1]. SWD is x1e3 (as Karras et al.
report it); KID is raw (callers format it). KID and SWD are relative: read a model's figure beside the real-vs-real
one (held-out real images against the same reference) and beside the noise / blur degradations. Every random draw
comes from a generator seeded by `seed` (one independent stream per purpose); the global RNG is never used.

Sampling floor (measured on 32-px Noto emoji, sets of 300 against 1,600 training images): real-vs-real SWD is
12 +- 1.5 at 32 px and 22 +- 4 at 16 px across disjoint draws, and KID 0.004 +- 0.005. Noise of sd 0.1 gives
SWD-32 ~69 and KID ~0.03, blur of 1 px SWD-32 ~68 and KID ~0.12, but neither moves the 16-px low-pass level by
much more than its draw-to-draw spread (noise lives in the finest band; the per-set normalisation removes level shifts).
At that level "closer to real than the degradations" is decided by sampling noise, not by the model.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # Burt & Adelson's 5-tap generating kernel
_POSITIONS, _SUBSAMPLE, _DIRECTIONS, _KID_SUBSETS, _NOISE = range(5)  # independent random streams of one seed
_GRAM_ROWS = 4096  # KID's Gram matrices have at most this many rows (128 MB in float64)
MIN_SIZE, PATCH, PER_IMAGE, REPEATS, DIRECTIONS = 16, 7, 128, 4, 128  # SWD settings of Karras et al. 2018


def _generator(seed: int, stream: int) -> torch.Generator:
    """A CPU generator for one stream of `seed`, so positions, subsets and directions never share draws."""
    if int(seed) < 0:
        raise ConfigError(f"seed {seed} is negative; use a seed >= 0")
    state = np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 4 or x.shape[1] != 3:
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{name} must be uint8 images (N, 3, S, S), got {got}; convert with to_uint8 first")
    if x.shape[2] != x.shape[3] or len(x) == 0:
        raise ConfigError(f"{name} must be a non-empty set of square images, got shape {tuple(x.shape)}")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> float32 (N, 3, S, S) in [0, 1]."""
    _check_images(x, "images")
    return x.float() / 255.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float (N, 3, S, S) in [0, 1] (clipped) -> uint8, rounded to the nearest level."""
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


# --- Laplacian pyramid (Burt & Adelson 1983) ------------------------------------------------------------------


def _separable(x: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Filter every channel of (N, C, H, W) with taps (K,) along both axes, reflect padding; same shape out."""
    r, c = len(taps) // 2, x.shape[1]
    taps = taps.to(x)
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, taps.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _down(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H/2, W/2): binomial blur, then every other pixel."""
    return _separable(x, _BINOMIAL)[:, :, ::2, ::2]


def _up(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, 2H, 2W): zeros between the pixels, then the binomial filter x2 per axis (x4 in all)."""
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, 2 * h, 2 * w)
    z[:, :, ::2, ::2] = x
    return _separable(z, 2.0 * _BINOMIAL)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """float (N, 3, S, S) -> [band at S, band at S/2, ..., low-pass at min_size], finest first.

    Each band is the level minus the upsampled downsampled level; the last entry is the low-pass image itself, so
    `reconstruct` recovers x exactly (up to rounding). S must be min_size times a power of two (32 px: [32-px band,
    16-px low-pass]; 64 px: [64, 32, 16])."""
    if x.dim() != 4 or not x.is_floating_point() or x.shape[2] != x.shape[3]:
        raise ConfigError(f"laplacian_pyramid needs float images (N, C, S, S), got {x.dtype} {tuple(x.shape)}")
    size = x.shape[-1]
    if min_size < 3 or size < min_size or size % min_size or (size // min_size) & (size // min_size - 1):
        raise ConfigError(f"image size {size} must be min_size {min_size} (>= 3) times a power of two")
    levels = []
    while x.shape[-1] > min_size:
        low = _down(x)
        levels.append(x - _up(low))
        x = low
    return levels + [x]


def reconstruct(pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
    """The inverse of laplacian_pyramid: upsample the coarsest image and add the bands back, coarse to fine."""
    x = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        x = band + _up(x)
    return x


# --- SWD (Karras et al. 2018, appendix D.1) -------------------------------------------------------------------


def _neighbourhoods(level: torch.Tensor, corners: torch.Tensor, patch: int) -> torch.Tensor:
    """level (N, 3, H, W), top-left corners (N, P, 2) -> descriptors (N, P, patch, patch, 3)."""
    n = len(level)
    offsets = torch.arange(patch, device=level.device)
    corners = corners.to(level.device)
    rows = (corners[:, :, 0, None] + offsets)[:, :, :, None]  # (N, P, patch, 1)
    cols = (corners[:, :, 1, None] + offsets)[:, :, None, :]  # (N, P, 1, patch)
    image = torch.arange(n, device=level.device)[:, None, None, None]  # (N, 1, 1, 1)
    return level.permute(0, 2, 3, 1)[image, rows, cols]  # (N, P, patch, patch, 3)


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    """(N, P, patch, patch, 3) -> (N * P, patch * patch * 3): zero mean, unit sd per channel over the set."""
    flat = desc.reshape(-1, desc.shape[-1])  # (N * P * patch * patch, 3)
    var, mean = torch.var_mean(flat, dim=0, correction=0)
    out = (desc - mean) / var.sqrt().clamp_min(1e-12)  # a constant channel (a flat band) stays 0
    return out.reshape(desc.shape[0] * desc.shape[1], -1)


def _descriptor_sets(
    x: torch.Tensor, n_draw: int, *, min_size: int, per_image: int, patch: int, seed: int
) -> dict[int, torch.Tensor]:
    """uint8 (N, 3, S, S) -> {level size: normalised descriptors (N * per_image, 3 * patch^2)}.

    Positions are drawn for `n_draw` >= N images and the first N rows used, so image i of any two sets compared
    with the same seed and n_draw is cut at the same places (identical sets give identical descriptors)."""
    g = _generator(seed, _POSITIONS)
    out = {}
    for level in laplacian_pyramid(to_float(x), min_size):
        size = level.shape[-1]
        corners = torch.randint(0, size - patch + 1, (n_draw, per_image, 2), generator=g)[: len(x)]
        out[size] = _normalise(_neighbourhoods(level, corners, patch))
    return out


def _sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, repeats: int, directions: int, g: torch.Generator) -> float:
    """a, b (M, D) -> mean over repeats of the mean |sorted projection difference| over `directions` unit vectors."""
    results = []
    for _ in range(repeats):
        dirs = torch.randn(a.shape[1], directions, generator=g).to(a)  # (D, directions)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa, pb = (dirs.T @ a.T).cpu().numpy(), (dirs.T @ b.T).cpu().numpy()  # (directions, M)
        pa.sort(axis=1)  # numpy sorts contiguous rows ~6x faster than torch.sort on a 2-core CPU (measured)
        pb.sort(axis=1)
        results.append(float(np.abs(pa - pb).mean()))
    return float(np.mean(results))


def _equal_counts(a: torch.Tensor, b: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random rows of the larger descriptor set, as many as the smaller has."""
    if len(a) > len(b):
        a = a[torch.randperm(len(a), generator=g)[: len(b)].to(a.device)]
    elif len(b) > len(a):
        b = b[torch.randperm(len(b), generator=g)[: len(a)].to(b.device)]
    return a, b


def _compare(
    da: dict[int, torch.Tensor], db: dict[int, torch.Tensor], *, repeats: int, directions: int, seed: int
) -> dict[int, float]:
    g_sub, g_dir = _generator(seed, _SUBSAMPLE), _generator(seed, _DIRECTIONS)
    out = {}
    for size in da:
        a, b = _equal_counts(da[size], db[size], g_sub)
        out[size] = 1e3 * _sliced_wasserstein(a, b, repeats, directions, g_dir)
    return out


def _check_swd_args(
    a: torch.Tensor, b: torch.Tensor, min_size: int, patch: int, names: tuple[str, str] = ("a", "b"), **counts: int
) -> None:
    _check_images(a, names[0])
    _check_images(b, names[1])
    if a.shape[2:] != b.shape[2:]:
        raise ConfigError(f"SWD compares images of one size, got {a.shape[-1]} and {b.shape[-1]} px; resize one set")
    if patch < 1 or patch > min_size:
        raise ConfigError(f"patch {patch} must be between 1 and min_size {min_size}")
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"{name} is {value}; use at least 1")


def swd(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    min_size: int = MIN_SIZE,
    descriptors_per_image: int = PER_IMAGE,
    patch: int = PATCH,
    repeats: int = REPEATS,
    directions: int = DIRECTIONS,
    seed: int = 0,
) -> dict[int, float]:
    """Sliced Wasserstein distance x1e3 per Laplacian-pyramid level: uint8 a (Na, 3, S, S), b (Nb, 3, S, S) ->
    {level size in px: SWD}, e.g. {32: ..., 16: ...} for 32-px images.

    Per level (Karras et al. 2018, D.1): `descriptors_per_image` random patch x patch x 3 neighbourhoods of each
    image (every position fully inside the image); each descriptor set normalised; then `repeats` times:
    `directions` random unit directions, project both sets, sort, mean |difference|; the mean over repeats.

    Normalisation: each set by ITS OWN per-channel mean and sd (over all its descriptors of that level and the
    patch positions). The paper only says "normalized per color channel"; the official code (`finalize_descriptors`)
    normalises each set independently, and we follow it so that our figures mean what published SWD means. The
    consequence, by design: SWD measures the structure of the bands, not the global colour or contrast, so a uniform
    brightness or contrast change of a whole set barely moves it (KID does see such shifts).

    Sets of different sizes: the larger descriptor set is randomly subsampled to the smaller's count; the estimate
    still depends on the count (fewer descriptors -> larger SWD), so compare figures only at equal set sizes.
    Image i of a and of b share their patch positions (one seeded draw), so a set against itself gives exactly 0."""
    _check_swd_args(a, b, min_size, patch, descriptors_per_image=descriptors_per_image, repeats=repeats,
                    directions=directions)  # fmt: skip
    n_draw = max(len(a), len(b))
    kw = dict(min_size=min_size, per_image=descriptors_per_image, patch=patch, seed=seed)
    da, db = _descriptor_sets(a, n_draw, **kw), _descriptor_sets(b, n_draw, **kw)
    return _compare(da, db, repeats=repeats, directions=directions, seed=seed)


# --- KID on fixed random features (Binkowski et al. 2018) -----------------------------------------------------


class RandomFeatureNet(nn.Module):
    """A fixed, untrained CNN: float (N, 3, S, S) in [0, 1], S >= 16 -> (N, widths[-1]) features.

    Four 3x3 stride-2 convolutions (3 -> 64 -> 128 -> 256 -> 512) with LeakyReLU(0.2), then a global average pool.
    Weights are He-uniform draws of `torch.rand` from a Generator seeded `seed` (integer RNG and one scaling, so
    bit-identical on every machine; normal draws would go through vectorised log/cos), biases zero. Untrained
    features only discriminate after standardisation with the reference set's statistics (see `kid`)."""

    def __init__(self, seed: int = 0, widths: Sequence[int] = (64, 128, 256, 512)):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        layers: list[nn.Module] = []
        c_in = 3
        for c_out in widths:
            conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
            bound = math.sqrt(6.0 / (c_in * 9))  # He-uniform: variance 2 / fan_in
            with torch.no_grad():
                conv.weight.copy_((torch.rand(conv.weight.shape, generator=g) * 2.0 - 1.0) * bound)
                conv.bias.zero_()
            layers += [conv, nn.LeakyReLU(0.2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.out_dim = c_in
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] < 16 or x.shape[-2] < 16:
            raise ConfigError(f"RandomFeatureNet needs images of at least 16 px, got {tuple(x.shape[-2:])}")
        return self.body(x * 2.0 - 1.0).mean(dim=(2, 3))  # [-1, 1] in; (N, C, h, w) -> (N, C)


@functools.lru_cache(maxsize=1)
def default_feature_net() -> RandomFeatureNet:
    """The RandomFeatureNet of seed 0 every metric in the app uses, built once per process."""
    return RandomFeatureNet(seed=0)


@torch.no_grad()
def features(images: torch.Tensor, net: nn.Module | None = None, batch: int = 256) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> float64 (N, D) features of `net` (default: `default_feature_net()`), on the CPU."""
    _check_images(images, "images")
    net = default_feature_net() if net is None else net
    device = next(net.parameters()).device
    out = [net(to_float(images[i : i + batch]).to(device)).double().cpu() for i in range(0, len(images), batch)]
    return torch.cat(out)


def _poly_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, d), (m, d) -> (n, m) cubic polynomial kernel (x.y / d + 1)^3."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _subset_masks(n: int, m: int, subsets: int, g: torch.Generator) -> torch.Tensor:
    """(subsets, n) float64 indicators of `subsets` random m-subsets of range(n), drawn without replacement."""
    masks = torch.zeros(subsets, n, dtype=torch.float64)
    for s in range(subsets):
        masks[s, torch.randperm(n, generator=g)[:m]] = 1.0
    return masks


def _within_means(k: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Gram (n, n), masks (B, n) -> (B,) mean of k over the distinct pairs i != j of each subset."""
    m = masks[0].sum()
    total = ((masks @ k) * masks).sum(1)  # w^T K w per subset
    return (total - masks @ k.diagonal()) / (m * (m - 1))


def kid(
    feat_x: torch.Tensor,
    feat_ref: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int | None = None,
    seed: int = 0,
    standardise_with: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Kernel Inception Distance on features (Nx, d), (Nr, d) -> (mean, sd) of the unbiased MMD^2 over subsets; raw.

    Features are first standardised per dimension by the mean / sd of `standardise_with` (default: feat_ref;
    dimensions constant there are dropped): random-CNN features only discriminate once standardised. Each of the
    `subsets` draws takes `subset_size` (default min(1000, Nx, Nr)) rows of each set without replacement and
    evaluates mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(r_i, r_j) - 2 mean_{i,j} k(x_i, r_j), with
    k(x, y) = (x.y / d + 1)^3. The sd is that of the per-subset estimates (0 when both sets are used whole).

    The estimator treats its two arguments as independent samples, so a set against ITSELF does not give 0: used
    whole, it gives -2 (mean_i k(x_i, x_i) - mean_{i!=j} k(x_i, x_j)) / N, negative and O(1/N) (about -0.08 for
    200 toy images). Real-vs-real figures must compare disjoint sets (held-out against training images)."""
    fx = torch.as_tensor(feat_x, dtype=torch.float64).cpu()
    fr = torch.as_tensor(feat_ref, dtype=torch.float64).cpu()
    base = fr if standardise_with is None else torch.as_tensor(standardise_with, dtype=torch.float64).cpu()
    if fx.dim() != 2 or fr.dim() != 2 or base.dim() != 2 or not fx.shape[1] == fr.shape[1] == base.shape[1]:
        raise ConfigError(f"kid needs feature matrices (N, d) of one width, got {tuple(fx.shape)}, {tuple(fr.shape)}")
    if min(len(fx), len(fr)) < 2 or subsets < 1:
        raise ConfigError(f"kid needs >= 2 rows per set and subsets >= 1; got {len(fx)}, {len(fr)} rows, {subsets}")
    m = subset_size or min(1000, len(fx), len(fr))
    if not 2 <= m <= min(len(fx), len(fr)):
        raise ConfigError(f"kid subset_size {m} must be in [2, {min(len(fx), len(fr))}] (the smaller set's size)")
    mean, std = base.mean(0), base.std(0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.full_like(std, math.inf))
    fx, fr = (fx - mean) / std, (fr - mean) / std
    g = _generator(seed, _KID_SUBSETS)
    estimates = []
    # Subsets go in blocks, each subset an indicator row w, so its kernel sum is w^T K w over one Gram matrix of
    # the rows the block uses: all subsets at once for sets up to _GRAM_ROWS, else blocks of _GRAM_ROWS // m.
    block = subsets if max(len(fx), len(fr)) <= _GRAM_ROWS else max(1, _GRAM_ROWS // m)
    for start in range(0, subsets, block):
        b = min(block, subsets - start)
        wx, wr = _subset_masks(len(fx), m, b, g), _subset_masks(len(fr), m, b, g)  # (b, Nx), (b, Nr)
        rows_x, rows_r = wx.any(0), wr.any(0)  # rows used by this block
        wx, wr, ax, ar = wx[:, rows_x], wr[:, rows_r], fx[rows_x], fr[rows_r]
        cross = ((wx @ _poly_kernel(ax, ar)) * wr).sum(1) / (m * m)
        within = _within_means(_poly_kernel(ax, ax), wx) + _within_means(_poly_kernel(ar, ar), wr)
        estimates.append(within - 2.0 * cross)
    estimates = torch.cat(estimates)
    return float(estimates.mean()), float(estimates.std(unbiased=False))


# --- memorisation ---------------------------------------------------------------------------------------------


@torch.no_grad()
def nearest_distances(query: torch.Tensor, bank: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 query (Nq, 3, S, S), bank (Nb, 3, S, S) -> per-pixel RMS distance in [0, 1] units to the nearest bank
    image, ||q - b||_2 / sqrt(3 S^2), float64 (Nq,), and that image's index, long (Nq,). Float64 throughout, so an
    exact copy reads 0 despite cdist's |q|^2 + |b|^2 - 2 q.b form."""
    _check_images(query, "query")
    _check_images(bank, "bank")
    if query.shape[1:] != bank.shape[1:]:
        raise ConfigError(f"query {tuple(query.shape[1:])} and bank {tuple(bank.shape[1:])} images differ in shape")
    flat_bank = bank.reshape(len(bank), -1).double() / 255.0  # (Nb, D)
    dists, index = [], []
    for i in range(0, len(query), chunk):
        q = query[i : i + chunk].reshape(-1, flat_bank.shape[1]).to(flat_bank)  # (c, D)
        d, k = torch.cdist(q / 255.0, flat_bank).min(dim=1)
        dists.append(d)
        index.append(k)
    return torch.cat(dists).cpu() / math.sqrt(flat_bank.shape[1]), torch.cat(index).cpu()


def memorisation(samples: torch.Tensor, train: torch.Tensor, held: torch.Tensor, k: int = 8) -> dict:
    """Do samples sit closer to the training images than new real images do? uint8 (N, 3, S, S) sets -> JSON-ready
    dict: median nearest-training distance of samples (`median_sample`) and of held-out images (`median_held`),
    `ratio` = median_sample / median_held (about 1 for novel images, near 0 for copies; the acceptance test asks
    >= 0.8), `held_p5` the 5th percentile of the held-out distances and `copy_fraction` the share of samples below
    it, and the `k` closest sample -> training pairs (`closest_sample`, `closest_train`, `closest_dist`), closest
    first, for a side-by-side figure."""
    d_sample, nn_index = nearest_distances(samples, train)
    d_held, _ = nearest_distances(held, train)
    median_sample, median_held = float(np.median(d_sample.numpy())), float(np.median(d_held.numpy()))
    if median_held <= 0.0:
        raise ConfigError("more than half of the held-out images are exact copies of training images; deduplicate")
    p5 = float(np.percentile(d_held.numpy(), 5))
    order = torch.argsort(d_sample, stable=True)[:k]
    return {
        "median_sample": median_sample,
        "median_held": median_held,
        "ratio": median_sample / median_held,
        "held_p5": p5,
        "copy_fraction": float((d_sample < p5).double().mean()),
        "closest_sample": order.tolist(),
        "closest_train": nn_index[order].tolist(),
        "closest_dist": d_sample[order].tolist(),
    }


# --- degradations and the quality table -----------------------------------------------------------------------


def degrade_noise(x: torch.Tensor, sigma: float = 0.1, seed: int = 0) -> torch.Tensor:
    """uint8 (N, 3, S, S) + Gaussian noise of sd `sigma` ([0, 1] units), clipped and rounded -> uint8."""
    if sigma < 0:
        raise ConfigError(f"noise sigma {sigma} is negative; use a value >= 0")
    noise = torch.randn(x.shape, generator=_generator(seed, _NOISE)).to(x.device)
    return to_uint8(to_float(x) + sigma * noise)


def degrade_blur(x: torch.Tensor, sigma_px: float = 1.0) -> torch.Tensor:
    """uint8 (N, 3, S, S) -> uint8, separable Gaussian blur of sd `sigma_px`, radius ceil(3 sigma), reflect pad."""
    xf = to_float(x)
    radius = math.ceil(3.0 * sigma_px)
    if sigma_px <= 0 or radius >= x.shape[-1]:
        raise ConfigError(f"blur sigma {sigma_px} px must be > 0 with radius ceil(3 sigma) < image size {x.shape[-1]}")
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    taps = torch.exp(-0.5 * (t / sigma_px) ** 2)
    return to_uint8(_separable(xf, taps / taps.sum()))


def quality_table(
    sets: dict[str, torch.Tensor], reference: torch.Tensor, *, seed: int = 0, kid_subsets: int = 100
) -> dict[str, dict[str, float]]:
    """KID and SWD of each named uint8 set against `reference` (N_ref, 3, S, S) -> {name: {"kid", "kid_std",
    "swd_<px>" per pyramid level, "n"}}. The reference's features and descriptors are computed once; KID features
    are standardised with the reference's statistics. Every set meets the same random draws (reference subsets,
    patch positions, directions: common random numbers), so rows differ by their sets, not by their draws; each row
    equals kid(features(set), features(reference), seed=seed) and swd(set, reference, seed=seed)."""
    _check_images(reference, "reference")
    if not sets:
        raise ConfigError("quality_table needs at least one named set of images")
    ref_feat = features(reference)
    ref_desc: dict[int, dict[int, torch.Tensor]] = {}  # n_draw -> the reference's descriptors
    kw = dict(min_size=MIN_SIZE, per_image=PER_IMAGE, patch=PATCH, seed=seed)
    table = {}
    for name, x in sets.items():
        _check_swd_args(x, reference, MIN_SIZE, PATCH, names=(f"set {name!r}", "reference"))
        n_draw = max(len(x), len(reference))
        if n_draw not in ref_desc:
            ref_desc[n_draw] = _descriptor_sets(reference, n_draw, **kw)
        mean, std = kid(features(x), ref_feat, subsets=kid_subsets, seed=seed)
        levels = _compare(
            _descriptor_sets(x, n_draw, **kw), ref_desc[n_draw], repeats=REPEATS, directions=DIRECTIONS, seed=seed
        )
        table[name] = {"kid": mean, "kid_std": std, **{f"swd_{s}": v for s, v in levels.items()}, "n": len(x)}
    return table


def quality_keys(row: dict) -> list[str]:
    """The quality figures of a quality_table row, in its order: "kid" and "swd_<px>" per level."""
    return [k for k in row if k == "kid" or re.fullmatch(r"swd_\d+", k)]


def mean_over_draws(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """quality_table rows of independent sample sets of one model -> one row: every figure the mean over the
    draws, and beside KID and each SWD level `<key>_sd_draws`, their sd across draws (ddof 1; 0 for one draw),
    and `draws`. The sd across draws is what a reading of one set of a few hundred samples can move by: on the
    default emoji run, three draws of 280 from the same diffusion weights gave KID 0.019, 0.008, 0.008."""
    if not rows:
        raise ConfigError("mean_over_draws needs at least one quality-table row")
    keys = [k for k in rows[0] if k != "n"]
    out: dict[str, float] = {}
    for key in keys:
        values = np.array([float(r[key]) for r in rows])
        out[key] = float(values.mean())
        if key in quality_keys(rows[0]):
            out[f"{key}_sd_draws"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    out["n"] = rows[0]["n"]
    out["draws"] = len(rows)
    return out


def closer_to_real(
    table: dict[str, dict[str, float]],
    model_key: str,
    real_key: str = "real",
    degraded_keys: Sequence[str] = ("noise", "blur"),
) -> dict[str, bool]:
    """Per metric (kid, swd_<px>...): is the model's figure closer to the real-vs-real figure than to every degraded
    set's figure, |model - real| < |model - degraded|? (The model lies on the real side of each midpoint; being
    merely better than a degradation is not enough.)

    Only meaningful where the degradations move the metric beyond its real-vs-real sampling spread: for SWD's
    coarsest level with noise of sd 0.1 they do not (see the module docstring)."""
    missing = [k for k in (model_key, real_key, *degraded_keys) if k not in table]
    if missing:
        raise ConfigError(f"quality table has no rows {missing}; it has {sorted(table)}")
    metrics = quality_keys(table[model_key])
    real = table[real_key]
    return {
        m: all(abs(table[model_key][m] - real[m]) < abs(table[model_key][m] - table[d][m]) for d in degraded_keys)
        for m in metrics
    }
