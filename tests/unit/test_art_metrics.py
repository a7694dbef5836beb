"""Unit tests of apps/art's image metrics and class-recognition classifier on small seeded synthetic images: the
Laplacian pyramid in closed form (sizes, exact reconstruction), SWD and KID at zero for identical sets and above the
sampling floor for degraded ones, nearest-neighbour memorisation on exact copies, the degradations' contracts, the
quality table's verdicts, and a classifier that learns three stripe/ring classes deterministically."""

from __future__ import annotations

import json

import pytest
import torch

from apps.art.classifier import accuracy, predict, train_classifier
from apps.art.metrics import (
    RandomFeatureNet,
    closer_to_real,
    degrade_blur,
    degrade_noise,
    features,
    kid,
    laplacian_pyramid,
    mean_over_draws,
    memorisation,
    nearest_distances,
    quality_table,
    reconstruct,
    swd,
    to_float,
)
from shared.errors import ConfigError


def discs(n: int, seed: int, size: int = 32, count: int = 20, max_value: float = 1.0) -> torch.Tensor:
    """A stationary toy texture: `count` random coloured discs (sharp ~0.3 px edges) on a random background,
    uint8 (n, 3, size, size) with values in [0, 255 * max_value]."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(size, dtype=torch.float32) + 0.5
    img = (torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.2).expand(n, 3, size, size).clone()
    for _ in range(count):
        centre = torch.rand(n, 2, generator=g) * size
        radius = (torch.rand(n, 1, 1, generator=g) * 0.08 + 0.04) * size
        colour = torch.rand(n, 3, 1, 1, generator=g)
        dist = (
            (t[None, :, None] - centre[:, 0, None, None]) ** 2 + (t[None, None, :] - centre[:, 1, None, None]) ** 2
        ).sqrt()
        w = torch.sigmoid((radius - dist) / 0.3)[:, None]  # (n, 1, size, size)
        img = img * (1 - w) + colour * w
    return (img.clamp(0, 1) * 255 * max_value).round().to(torch.uint8)


def stripes(n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes, invariant to flips and small shifts: 0 horizontal stripes, 1 vertical stripes, 2 rings;
    random period, phase and two random colours. -> uint8 (n, 3, size, size), labels (n,)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    period = torch.rand(n, 1, 1, generator=g) * 3 + 3
    phase = torch.rand(n, 1, 1, generator=g) * 6.3
    centre = torch.rand(n, 2, 1, 1, generator=g) * size
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    radial = ((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2).sqrt()
    coord = torch.where(labels[:, None, None] == 0, yy, torch.where(labels[:, None, None] == 1, xx, radial))
    w = (0.5 + 0.5 * torch.sin(2 * torch.pi * coord / period + phase))[:, None]  # (n, 1, size, size)
    c0, c1 = torch.rand(n, 3, 1, 1, generator=g), torch.rand(n, 3, 1, 1, generator=g)
    return ((c0 * w + c1 * (1 - w)) * 255).round().to(torch.uint8), labels


# --- conversion and pyramid ---


def test_to_float_range_and_input_check():
    x = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    f = to_float(x)
    assert f.dtype == torch.float32 and f.min() == 0.0 and f.max() == 1.0
    with pytest.raises(ConfigError, match="uint8"):
        to_float(f)


@pytest.mark.parametrize("size, levels", [(16, [16]), (32, [32, 16]), (64, [64, 32, 16])])
def test_pyramid_sizes_and_exact_reconstruction(size, levels):
    x = to_float(discs(4, 0, size=size))
    pyr = laplacian_pyramid(x)
    assert [p.shape[-1] for p in pyr] == levels
    assert all(p.shape[:2] == (4, 3) for p in pyr)
    assert torch.allclose(reconstruct(pyr), x, atol=1e-5)


def test_pyramid_of_a_constant_image_has_empty_bands():
    pyr = laplacian_pyramid(torch.full((2, 3, 64, 64), 0.3))
    assert all(band.abs().max() < 1e-6 for band in pyr[:-1])
    assert torch.allclose(pyr[-1], torch.full((2, 3, 16, 16), 0.3))


def test_pyramid_rejects_sizes_that_do_not_halve_to_min_size():
    with pytest.raises(ConfigError, match="power of two"):
        laplacian_pyramid(torch.zeros(1, 3, 48, 48))


# --- SWD ---


def test_swd_of_a_set_with_itself_is_zero():
    a = discs(64, 0)
    out = swd(a, a)
    assert set(out) == {32, 16}
    assert all(v < 1e-6 for v in out.values())


def test_swd_sees_blur_at_every_level_and_noise_in_the_finest_band():
    a, b = discs(100, 0), discs(100, 1)
    floor, blurred, noisy = swd(a, b), swd(a, degrade_blur(b, 2.0)), swd(a, degrade_noise(b, 0.1))
    assert all(blurred[s] > 1.3 * floor[s] for s in floor), (floor, blurred)
    assert noisy[32] > 3 * floor[32], (floor, noisy)


def test_swd_ignores_a_uniform_brightness_shift():
    # Each set is normalised by its own per-channel mean and sd (Karras et al.'s official choice): a shift that
    # clips nothing leaves every normalised descriptor as it was.
    a = discs(64, 0, max_value=0.8)
    assert max(swd(a, a + 40).values()) < 1e-3


def test_swd_is_deterministic_and_handles_unequal_sets():
    a, b = discs(64, 0), discs(40, 1)
    assert swd(a, b, seed=3) == swd(a, b, seed=3)
    assert swd(a, b, seed=3) != swd(a, b, seed=4)
    assert set(swd(a, b, descriptors_per_image=16, repeats=1, directions=8)) == {32, 16}
    with pytest.raises(ConfigError, match="one size"):
        swd(a, discs(4, 0, size=64))


# --- KID ---


def test_random_feature_net_is_fixed_and_accepts_any_size_from_16():
    first, second = RandomFeatureNet(), RandomFeatureNet()
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))
    for size in (16, 64):
        f = features(discs(3, 0, size=size))
        assert f.shape == (3, 512) and f.dtype == torch.float64 and torch.isfinite(f).all()


def test_kid_separates_shifted_sets_from_a_second_sample():
    a, b = discs(150, 0), discs(150, 1)
    fa, fb = features(a), features(b)
    same = kid(fa, fb, subsets=20, subset_size=100)[0]
    brighter = kid(features((b.int() + 51).clamp(max=255).to(torch.uint8)), fa, subsets=20, subset_size=100)[0]
    noisy = kid(features(degrade_noise(b, 0.2)), fa, subsets=20, subset_size=100)[0]
    assert abs(same) < 0.1 * noisy and abs(same) < 0.01 * brighter, (same, noisy, brighter)
    kw = dict(subsets=20, subset_size=100)
    assert kid(fa, fb, seed=5, **kw) == kid(fa, fb, seed=5, **kw) != kid(fa, fb, seed=6, **kw)


def test_kid_of_a_set_with_itself_is_the_estimators_closed_form():
    # Unbiased MMD^2 of a whole set X against itself: mean_{i!=j} k + mean_{i!=j} k - 2 mean_{i,j} k
    # = -2 (mean_i k(x_i, x_i) - mean_{i!=j} k(x_i, x_j)) / n: not 0, but O(1/n) and exactly this.
    f = torch.randn(40, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = (f - f.mean(0)) / f.std(0, unbiased=False)
    k = (z @ z.T / 8 + 1) ** 3
    n = len(k)
    expected = -2 * (k.diagonal().mean() - (k.sum() - k.trace()) / (n * (n - 1))) / n
    mean, std = kid(f, f, subsets=3)
    assert mean == pytest.approx(expected.item(), rel=1e-9) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_rejects_bad_subsets():
    f = torch.randn(10, 4, dtype=torch.float64)
    with pytest.raises(ConfigError, match="subset_size"):
        kid(f, f, subset_size=11)


# --- memorisation ---


def test_nearest_distances_of_copies_and_a_known_pair():
    bank = discs(50, 0)
    dist, index = nearest_distances(bank[[5, 17, 30]], bank, chunk=2)
    assert torch.equal(index, torch.tensor([5, 17, 30])) and dist.abs().max() < 1e-6
    a, b = torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.full((1, 3, 8, 8), 51, dtype=torch.uint8)
    assert nearest_distances(a, b)[0].item() == pytest.approx(0.2)  # 51 / 255 on every pixel


def test_memorisation_ratio_of_copies_and_of_new_real_images():
    train, held = discs(150, 0), discs(100, 1)
    copies = memorisation(train[:100], train, held)
    fresh = memorisation(discs(100, 2), train, held)
    assert copies["ratio"] < 1e-6 and copies["copy_fraction"] == 1.0
    assert 0.85 < fresh["ratio"] < 1.15 and fresh["copy_fraction"] < 0.2
    assert len(copies["closest_sample"]) == 8 and copies["closest_dist"] == sorted(copies["closest_dist"])
    json.dumps(fresh)  # plain Python types only


# --- degradations ---


def test_degradations_keep_dtype_and_shape_and_change_the_images():
    x = discs(8, 0)
    for y in (degrade_noise(x, 0.1, seed=1), degrade_blur(x, 1.0)):
        assert y.dtype == torch.uint8 and y.shape == x.shape and not torch.equal(x, y)
    assert torch.equal(degrade_noise(x, 0.1, seed=1), degrade_noise(x, 0.1, seed=1))
    assert not torch.equal(degrade_noise(x, 0.1, seed=1), degrade_noise(x, 0.1, seed=2))


def test_blur_keeps_a_constant_image_and_checks_sigma():
    const = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(degrade_blur(const, 1.5), const)
    with pytest.raises(ConfigError, match="radius"):
        degrade_blur(const, 6.0)


# --- quality table ---


def test_quality_table_finds_a_second_real_sample_closer_to_real_than_degradations():
    # Degradations strong enough to move the 16-px low-pass level beyond the sampling floor of 150 images: noise of
    # sd 0.1 lives in the finest band and barely reaches it (see test_swd_sees_blur_...).
    reference, real, model = discs(400, 10), discs(150, 11), discs(150, 12)
    sets = {"real": real, "noise": degrade_noise(real, 0.5), "blur": degrade_blur(real, 2.0), "model": model}
    table = quality_table(sets, reference, kid_subsets=20)
    assert set(table["model"]) == {"kid", "kid_std", "swd_32", "swd_16", "n"} and table["model"]["n"] == 150
    assert closer_to_real(table, "model") == {"kid": True, "swd_32": True, "swd_16": True}
    assert table["blur"]["kid"] == kid(features(sets["blur"]), features(reference), subsets=20)[0]
    assert {f"swd_{s}": v for s, v in swd(model, reference).items()} == {
        k: v for k, v in table["model"].items() if k.startswith("swd_")
    }
    assert closer_to_real(table, "noise", degraded_keys=("blur",))["swd_32"] is False


def test_closer_to_real_compares_with_every_degradation():
    table = {
        "real": {"kid": 0.0, "swd_16": 10.0, "n": 5},
        "model": {"kid": 0.2, "swd_16": 12.0, "n": 5},
        "noise": {"kid": 0.5, "swd_16": 11.0, "n": 5},
        "blur": {"kid": 0.1, "swd_16": 30.0, "n": 5},
    }
    assert closer_to_real(table, "model") == {"kid": False, "swd_16": False}
    assert closer_to_real(table, "model", degraded_keys=("noise",)) == {"kid": True, "swd_16": False}
    # Better than a degradation is not enough: the model must sit on the real side of the midpoint.
    table["model"]["kid"] = 0.3  # |0.3 - 0| > |0.3 - 0.5| although 0.3 < 0.5
    assert closer_to_real(table, "model", degraded_keys=("noise",))["kid"] is False
    with pytest.raises(ConfigError, match="no rows"):
        closer_to_real(table, "gan")


# --- classifier ---


def test_classifier_learns_three_classes_deterministically():
    x, y = stripes(600, 0)
    x_test, y_test = stripes(300, 1)
    state = torch.get_rng_state()
    model = train_classifier(x, y, 3, steps=150, seed=0)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's global RNG is untouched
    assert accuracy(model, x_test, y_test) > 0.9
    again = train_classifier(x, y, 3, steps=150, seed=0)
    assert torch.equal(predict(model, x_test), predict(again, x_test))
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again.parameters()))


def test_classifier_checks_labels():
    x, y = stripes(10, 0)
    with pytest.raises(ConfigError, match="labels"):
        train_classifier(x, y + 3, 3, steps=1)


def test_mean_over_draws_averages_each_figure_and_gives_its_spread():
    rows = [
        {"kid": 0.010, "kid_std": 0.002, "swd_32": 40.0, "swd_16": 20.0, "n": 280},
        {"kid": 0.030, "kid_std": 0.004, "swd_32": 44.0, "swd_16": 20.0, "n": 280},
    ]
    out = mean_over_draws(rows)
    assert out["kid"] == pytest.approx(0.02) and out["kid_std"] == pytest.approx(0.003)
    assert out["kid_sd_draws"] == pytest.approx(0.02 / 2**0.5) and out["swd_16_sd_draws"] == 0.0
    assert out["swd_32"] == pytest.approx(42.0) and out["swd_32_sd_draws"] == pytest.approx(8**0.5)
    assert (out["n"], out["draws"]) == (280, 2) and "kid_std_sd_draws" not in out
    assert mean_over_draws(rows[:1])["kid_sd_draws"] == 0.0
    # the spreads are not figures of their own: closer_to_real still compares kid and each swd level only
    table = {"model": out, "real": rows[0], "noise": rows[1], "blur": rows[1]}
    assert set(closer_to_real(table, "model")) == {"kid", "swd_32", "swd_16"}
    with pytest.raises(ConfigError, match="at least one"):
        mean_over_draws([])
