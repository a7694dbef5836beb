"""Benchmark of the GARCH(1,1) path kernel (markets' scenario recursion) against its PyTorch eager reference.

Default sizes: the markets acceptance size, 10,000 paths x 252 days x 20 assets, in float32 and float64, each with
innovations given as z (P, L, A) (GARCH-t) and bootstrapped whole days from a pool of 2,500 standardised residual
days (N, A) by an int64 index (P, L) (filtered historical simulation). The kernel runs through the dispatcher with
backend "triton" (one launch), the reference with backend "torch" (a loop over the 252 days of ~6 in-place (P, A)
ops each, plus a (P, A) gather per day when bootstrapped), the same inputs. The harness times each with 1 warm-up
and reports the median of 5 repeats. bytes_moved is the least traffic of the op: the innovations read (P L A
elements of z, or the pool N A once and the index P L int64) and the paths written (P L A), plus the per-asset
parameters and sigma2_0 (A each), in the innovations' dtype. `tiny=True` uses toy sizes (CPU, Triton's
interpreter) so the tests can check the plumbing in a second.
"""

from __future__ import annotations

import torch

from benchmarks.harness import kernel_row
from shared.kernels.garch import garch_paths

NAME = "garch_paths"
SIZES = "10,000 paths x 252 days x 20 assets, float32 / float64, z or bootstrapped from 2,500 days"

# (P, L, A, N pool days)
DEFAULT_SIZE, TINY_SIZE = (10_000, 252, 20, 2_500), (5, 7, 3, 11)


def rows(device: torch.device, peaks: dict | None, tiny: bool = False) -> list[dict]:
    """One row per dtype and innovation source: the kernel against the eager reference on the same inputs."""
    n_paths, horizon, n_assets, n_days = TINY_SIZE if tiny else DEFAULT_SIZE
    sizes = f"{n_paths:,} paths x {horizon} days x {n_assets} assets"
    out = []
    for dtype in (torch.float32, torch.float64):
        g = torch.Generator(device=device).manual_seed(0)
        like = dict(device=device, dtype=dtype)
        # percent units as markets fits them: persistence alpha + beta in 0.92..0.94, per asset
        mu = 0.05 * torch.rand(n_assets, generator=g, **like)
        omega = 0.02 + 0.05 * torch.rand(n_assets, generator=g, **like)
        alpha = 0.05 + 0.05 * torch.rand(n_assets, generator=g, **like)
        beta = 0.92 - alpha + 0.02 * torch.rand(n_assets, generator=g, **like)
        sigma2_0 = omega / (1 - alpha - beta)  # (A,) the unconditional variance
        params = (mu, omega, alpha, beta, sigma2_0)
        z = torch.randn(n_paths, horizon, n_assets, generator=g, **like)  # (P, L, A)
        pool = torch.randn(n_days, n_assets, generator=g, **like)  # (N, A)
        index = torch.randint(0, n_days, (n_paths, horizon), generator=g, device=device)  # (P, L) int64
        size = z.element_size()
        paths_bytes, params_bytes = n_paths * horizon * n_assets * size, 5 * n_assets * size
        dt = str(dtype).removeprefix("torch.")
        cases = [
            ("z", dict(z=z), 2 * paths_bytes + params_bytes),
            ("bootstrap", dict(pool=pool, index=index), paths_bytes + pool.nbytes + index.nbytes + params_bytes),
        ]
        for label, innovations, bytes_moved in cases:

            def call(backend, params=params, innovations=innovations):
                return garch_paths(*params, **innovations, backend=backend)

            out.append(
                kernel_row(
                    f"{NAME} {label} {dt}",
                    f"{sizes} {dt}" + (f", pool of {n_days:,} days" if label == "bootstrap" else ""),
                    ours=lambda call=call: call("triton"),
                    reference=lambda call=call: call("torch"),
                    bytes_moved=bytes_moved,
                    peaks=peaks,
                )
            )
    return out
