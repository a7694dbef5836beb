"""The GARCH(1,1) path kernel (Triton's interpreter on CPU) against its PyTorch reference, the reference against
closed forms, the dispatcher's backend rule and input errors, and the benchmark rows at toy sizes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shared.errors import ConfigError
from shared.kernels import garch
from shared.kernels.garch import garch_paths, garch_paths_ref

triton = pytest.importorskip("triton")

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-14)}
SIZES = [(1, 1, 1), (7, 13, 3), (13, 7, 1), (97, 5, 13), (2, 31, 6)]  # (P, L, A): ones, primes, non-powers of two


def params(n_assets: int, dtype, seed: int = 0) -> list[torch.Tensor]:
    """mu, omega, alpha, beta (A,) each: a persistent GARCH in percent units (alpha + beta in 0.9..0.98)."""
    g = torch.Generator().manual_seed(seed)
    u = [torch.rand(n_assets, generator=g, dtype=dtype) for _ in range(4)]
    return [0.1 * u[0] - 0.05, 0.02 + 0.1 * u[1], 0.03 + 0.07 * u[2], 0.85 + 0.03 * u[3]]


def start(n_paths: int, n_assets: int, dtype, per_path: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 0.5 + torch.rand((n_paths, n_assets) if per_path else (n_assets,), generator=g, dtype=dtype)


# ------------------------------------------------------------------------------------------- kernel vs reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", SIZES)
def test_kernel_matches_reference_with_z(dtype, size):
    n_paths, horizon, n_assets = size
    z = torch.randn(size, generator=torch.Generator().manual_seed(2), dtype=dtype)
    s0 = start(n_paths, n_assets, dtype, per_path=n_paths > 1)
    out = garch_paths(*params(n_assets, dtype), s0, z, backend="triton")
    assert out.shape == size and out.dtype == dtype
    torch.testing.assert_close(out, garch_paths_ref(*params(n_assets, dtype), s0, z), **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("size", SIZES[:4])
def test_kernel_matches_reference_bootstrapped(dtype, index_dtype, size):
    n_paths, horizon, n_assets = size
    g = torch.Generator().manual_seed(3)
    pool = torch.randn(11, n_assets, generator=g, dtype=dtype)  # (N, A) standardised residual days
    index = torch.randint(0, 11, (n_paths, horizon), generator=g).to(index_dtype)  # (P, L)
    s0 = start(n_paths, n_assets, dtype, per_path=False)
    out = garch_paths(*params(n_assets, dtype), s0, pool=pool, index=index, backend="triton")
    assert out.shape == size and out.dtype == dtype
    torch.testing.assert_close(out, garch_paths_ref(*params(n_assets, dtype), s0, z=pool[index.long()]), **TOL[dtype])


def test_kernel_broadcasts_scalars_and_handles_empty_sizes():
    z = torch.randn(5, 4, 3, dtype=torch.float64)
    args = (0.01, 0.05, 0.1, 0.85, 2.0)  # one value for every asset, one starting variance for everything
    torch.testing.assert_close(garch_paths(*args, z, backend="triton"), garch_paths_ref(*args, z), **TOL[torch.float64])
    for size in ((0, 4, 3), (5, 0, 3)):
        assert garch_paths(*args, torch.zeros(size), backend="triton").shape == size


# ----------------------------------------------------------------------------------------- reference closed forms


def test_without_garch_terms_returns_are_mu_plus_sqrt_omega_z():
    mu, omega = torch.tensor([0.1, -0.2]), torch.tensor([0.5, 2.0])
    z = torch.randn(4, 6, 2, dtype=torch.float32)
    zero = torch.zeros(2)
    expected = mu + omega.sqrt() * z  # alpha = beta = 0: sigma2_t = omega every day
    torch.testing.assert_close(garch_paths_ref(mu, omega, zero, zero, omega, z), expected)
    torch.testing.assert_close(garch_paths(mu, omega, zero, zero, omega, z, backend="triton"), expected)


def test_two_steps_by_hand():
    mu, omega, alpha, beta, s0 = 0.1, 0.2, 0.3, 0.4, 4.0
    z = torch.tensor([[[1.0], [-2.0]]], dtype=torch.float64)  # (1, 2, 1)
    # day 0: eps = sqrt(4) * 1 = 2, r = 2.1; sigma2_1 = 0.2 + 0.3 * 4 + 0.4 * 4 = 3; day 1: r = 0.1 - 2 sqrt(3)
    expected = torch.tensor([[[2.1], [0.1 - 2 * math.sqrt(3.0)]]], dtype=torch.float64)
    for backend in ("torch", "triton"):
        out = garch_paths([mu], [omega], [alpha], [beta], [s0], z, backend=backend)
        torch.testing.assert_close(out, expected, rtol=1e-15, atol=1e-15)


def test_bootstrap_reference_equals_the_gathered_innovations():
    pool = torch.randn(9, 3, dtype=torch.float64)
    index = torch.randint(0, 9, (5, 8))
    p, s0 = params(3, torch.float64), start(5, 3, torch.float64, per_path=True)
    assert torch.equal(garch_paths_ref(*p, s0, pool=pool, index=index), garch_paths_ref(*p, s0, z=pool[index]))


def test_numpy_inputs_give_cpu_tensors_in_the_innovations_dtype():
    z = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    out = garch_paths(np.zeros(2), np.full(2, 0.1), np.full(2, 0.1), np.full(2, 0.8), np.ones(2), z)
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == (3, 4, 2)


# --------------------------------------------------------------------------------------------------- dispatcher


def test_auto_runs_the_reference_on_cpu(monkeypatch):
    def no_kernel(*args, **kwargs):
        raise AssertionError("auto must not launch the kernel on CPU tensors")

    monkeypatch.setattr(garch, "garch_paths_triton", no_kernel)
    z = torch.randn(2, 3, 4)
    torch.testing.assert_close(
        garch_paths(*params(4, torch.float32), 1.0, z), garch_paths_ref(*params(4, torch.float32), 1.0, z)
    )


P3 = params(3, torch.float64)
Z = torch.zeros(2, 5, 3, dtype=torch.float64)
POOL = torch.zeros(4, 3, dtype=torch.float64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "either as z"),
        (dict(z=Z, pool=POOL, index=torch.zeros(2, 5, dtype=torch.long)), "either as z"),
        (dict(pool=POOL), "either as z"),
        (dict(z=Z, index=torch.zeros(2, 5, dtype=torch.long)), "either as z"),
        (dict(z=Z.half()), "float32 or float64"),
        (dict(z=Z[0]), r"\(P, L, A\)"),
        (dict(pool=POOL[0], index=torch.zeros(2, 5, dtype=torch.long)), r"\(N, A\)"),
        (dict(pool=POOL, index=torch.zeros(2, 5)), "int32/int64"),
        (dict(pool=POOL, index=torch.full((2, 5), 4)), "pool has 4"),
        (dict(pool=POOL, index=torch.full((2, 5), -1)), "rows -1..-1"),
        (dict(z=Z, sigma2_0=torch.ones(3, 3)), r"sigma2_0 has shape \(3, 3\)"),
        (dict(z=Z, mu=torch.zeros(2)), r"mu has shape \(2,\); it must be one value per asset, \(3,\)"),
        (dict(z=Z, backend="cuda"), "unknown kernel backend"),
    ],
)
def test_bad_inputs_raise_config_error(kwargs, match):
    args = dict(mu=P3[0], omega=P3[1], alpha=P3[2], beta=P3[3], sigma2_0=torch.ones(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match=match):
        garch_paths(**(args | kwargs))


# -------------------------------------------------------------------------------------------------- GPU, bench


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_reference_on_cuda(dtype):
    cuda = torch.device("cuda")
    n_paths, horizon, n_assets = 1000, 252, 20
    g = torch.Generator(cuda).manual_seed(0)
    p = [v.to(cuda) for v in params(n_assets, dtype)]
    s0 = start(n_paths, n_assets, dtype, per_path=True).to(cuda)
    z = torch.randn(n_paths, horizon, n_assets, generator=g, device=cuda, dtype=dtype)
    tol = TOL[dtype] if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)  # tl.sqrt is approximate in float32
    torch.testing.assert_close(garch_paths(*p, s0, z, backend="auto"), garch_paths_ref(*p, s0, z), **tol)
    pool = torch.randn(2500, n_assets, generator=g, device=cuda, dtype=dtype)
    index = torch.randint(0, 2500, (n_paths, horizon), generator=g, device=cuda)
    out = garch_paths(*p, s0, pool=pool, index=index, backend="triton")
    torch.testing.assert_close(out, garch_paths_ref(*p, s0, pool=pool, index=index), **tol)


def test_bench_rows_at_toy_sizes():
    from benchmarks import kernel_garch

    rows = kernel_garch.rows(torch.device("cpu"), None, tiny=True)
    assert len({r["name"] for r in rows}) == 4  # float32 / float64 x z / bootstrapped
    for row in rows:
        assert row["ours_s"] > 0 and row["peer_s"] > 0 and row["ratio"] > 0 and row["achieved_GBps"] > 0
