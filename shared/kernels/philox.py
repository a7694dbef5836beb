"""Triton's counter-based random stream (Philox 4x32-10) reproduced in PyTorch, so references see the kernels' noise.

A kernel draws `tl.rand(seed, offsets)` / `tl.randn(seed, offsets)`: element i of the stream is a pure function of
(seed, offset i), with no state to carry between launches (Salmon et al. 2011, "Parallel random numbers: as easy
as 1, 2, 3"). `philox_uniform(seed, offsets)` and `philox_normal(seed, offsets)` compute the same numbers on any
device with int64 tensor arithmetic, bit for bit for the uniforms (Triton 3.x `language/random.py`: the counter is
(offset, 0, 0, 0), the key the seed's low and high 32 bits, 10 rounds; the first output word becomes a float in
[0, 1) by `x * 4.6566127342e-10` after folding negative int32 values with `~x`; normals are Box-Muller of the first
two words). They are for tests and for references fed a kernel's stream; they are slower than torch.rand.
Offsets are int32 counters (< 2**31) as in the kernels.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
KEY_A, KEY_B = 0x9E3779B9, 0xBB67AE85  # Weyl increments of the key
ROUND_A, ROUND_B = 0xD2511F53, 0xCD9E8D57  # round multipliers
UNIFORM_SCALE = 4.6566127342e-10  # float32 (2**23 - 1) / 2**23 * 2**-31: max int32 * scale < 1


def _mul_hi_lo(a: int, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """High and low 32 bits of the 64-bit product of the constant a and b (int64 holding uint32): b is split into
    16-bit halves so no partial product overflows int64."""
    p = a * (b >> 16)  # < 2**48
    q = a * (b & 0xFFFF)  # < 2**48
    hi = (p + (q >> 16)) >> 16
    lo = ((p << 16) + q) & MASK32
    return hi, lo


def philox_words(seed: int, offsets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The four uint32 output words (as int64 tensors, shape of `offsets`) of Philox4x32-10 at counters
    (offset, 0, 0, 0) under key (seed & 0xffffffff, seed >> 32): what `tl.randint4x(seed, offsets)` returns."""
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"Philox seed {seed} must be in [0, 2**64)")
    c0 = offsets.to(torch.int64) & MASK32
    c1 = torch.zeros_like(c0)
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    k0, k1 = seed & MASK32, (seed >> 32) & MASK32
    for _ in range(10):
        hi_b, lo_b = _mul_hi_lo(ROUND_B, c2)
        hi_a, lo_a = _mul_hi_lo(ROUND_A, c0)
        c0, c1, c2, c3 = hi_b ^ c1 ^ k0, lo_b, hi_a ^ c3 ^ k1, lo_a
        k0, k1 = (k0 + KEY_A) & MASK32, (k1 + KEY_B) & MASK32
    return c0, c1, c2, c3


def _to_uniform(word: torch.Tensor) -> torch.Tensor:
    """uint32 word -> float32 in [0, 1): reinterpret as int32, fold negatives with ~x, scale (Triton's recipe)."""
    x = torch.where(word >= 2**31, word - 2**32, word)  # the int32 bit pattern
    x = torch.where(x < 0, ~x, x)
    return x.to(torch.float32) * torch.tensor(UNIFORM_SCALE, dtype=torch.float32)


def philox_uniform(seed: int, offsets: torch.Tensor) -> torch.Tensor:
    """float32 uniforms in [0, 1), shape of `offsets`: `tl.rand(seed, offsets)` exactly."""
    return _to_uniform(philox_words(seed, offsets)[0])


def philox_normal(seed: int, offsets: torch.Tensor) -> torch.Tensor:
    """float32 standard normals, shape of `offsets`: `tl.randn(seed, offsets)` (Box-Muller of the first two
    words; equal up to the last bits of log / cos, which libraries round differently)."""
    w = philox_words(seed, offsets)
    u1 = _to_uniform(w[0]).clamp_min(1.0e-7)
    u2 = _to_uniform(w[1])
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(6.283185307179586 * u2)
