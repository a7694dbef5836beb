"""Which implementation an op runs: the Triton kernel or the PyTorch reference, and Triton imported lazily.

`resolve(backend, *tensors)` is the one place that decides. "auto" runs Triton only when every tensor is on a CUDA
device and Triton imports; otherwise the reference. "triton" insists (on CPU tensors it needs the interpreter,
TRITON_INTERPRET=1, which is how the tests run kernels without a GPU); "torch" always runs the reference.
`triton_language()` imports Triton on first use: a module that defines kernels calls it inside a cached builder,
never at import time, so importing genlab never needs Triton or a GPU.
"""

from __future__ import annotations

import functools
import os

import torch

from shared.errors import ConfigError

BACKENDS = ("auto", "triton", "torch")


@functools.lru_cache(maxsize=1)
def triton_language():
    """(triton, triton.language), or None when Triton is not installed."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None
    return triton, tl


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1 before the kernels were built)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def resolve(backend: str, *tensors: torch.Tensor) -> str:
    """'triton' or 'torch' for these tensors. Raises ConfigError when 'triton' is asked for and cannot run."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown kernel backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    on_cuda = all(t.is_cuda for t in tensors)
    if backend == "auto":
        return "triton" if on_cuda and triton_language() is not None else "torch"
    if triton_language() is None:
        raise ConfigError("backend 'triton' needs Triton: pip install 'triton>=3.0' (or use backend 'torch')")
    if not on_cuda and not interpreting():
        raise ConfigError("backend 'triton' on CPU tensors needs TRITON_INTERPRET=1 (Triton's interpreter)")
    return "triton"


def seed_from(generator: torch.Generator | None) -> int:
    """A 62-bit Philox seed drawn from `generator` (or torch's global CPU stream): seeded callers stay deterministic.

    A CUDA generator is not sampled on the device (reading the draw back would synchronise the GPU on every
    kernel launch): the key is mixed on the host from its seed and Philox offset, and the offset is advanced by 4
    (one counter block), so the next call, or the next torch draw, gets fresh numbers."""
    if generator is not None and generator.device.type == "cuda":
        offset = generator.get_offset()
        generator.set_offset(offset + 4)
        return _splitmix64(generator.initial_seed() ^ _splitmix64(offset)) >> 2
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**62, (), generator=generator, device=device))


def _splitmix64(x: int) -> int:
    """SplitMix64's finaliser (Steele et al. 2014): a bijective mix of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def next_power_of_2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()
