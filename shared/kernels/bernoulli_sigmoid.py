"""Bernoulli sampling of sigmoid units fused after a matrix product: the half-step of RBM block-Gibbs sampling.

Given the pre-activations `pre` (..., N) of a layer (the matrix product, e.g. v W with v (B, V) and W (V, N), done
by torch) and a bias (N,), one pass computes p = sigmoid(scale * pre + bias) and the sample s = 1[u < p] with
u ~ U[0, 1), i.e. h ~ Bernoulli(p(h | v)) of a Bernoulli RBM (Hinton 2002; Hinton 2010, "A practical guide to
training RBMs", Sec. 3). `scale` is the inverse temperature beta of AIS's tempered conditionals (Salakhutdinov &
Murray 2008, Eq. 15): sigmoid(beta (c + v W)) is scale=beta with the bias beta * c folded in by the caller, an
N-vector. p is computed in float32 (float64 for float64 inputs) and the sample compares u with p before rounding;
sample and probs come back in `pre`'s dtype. In the kernel u is `tl.rand(seed, i)` at the int32 flat (row-major)
element index i of `pre`, so `bernoulli_sigmoid_ref` fed `philox_uniform(seed, arange(numel)).view(pre.shape)`
reproduces it. The ops carry no gradient (inputs are detached): a Bernoulli sample has none.
"""

from __future__ import annotations

import functools
import math

import torch

from shared.errors import ConfigError
from shared.kernels import backend as kb

BLOCK = 1024  # elements per program; memory-bound, so one flat 1-D grid over the (B, N) elements
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; the half types and float32 compute in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _as_kernel_scale(scale: float) -> float:
    """`scale` rounded to float32: Triton passes a Python float to a kernel as fp32, so the reference does too."""
    return float(torch.tensor(float(scale), dtype=torch.float32))


def _check(pre: torch.Tensor, bias: torch.Tensor, scale: float) -> None:
    """Validate the inputs at the public boundary; concise ConfigErrors saying how to fix them."""
    if not isinstance(pre, torch.Tensor) or not isinstance(bias, torch.Tensor):
        raise ConfigError("bernoulli_sigmoid needs tensors: pre (..., N) and bias (N,)")
    if pre.dtype not in _DTYPES:
        raise ConfigError(f"bernoulli_sigmoid pre has dtype {pre.dtype}; use float16, bfloat16, float32 or float64")
    if not bias.is_floating_point():
        raise ConfigError(f"bernoulli_sigmoid bias has dtype {bias.dtype}; pass a floating-point bias (N,)")
    if pre.dim() < 1 or bias.dim() != 1 or bias.shape[0] != pre.shape[-1]:
        raise ConfigError(
            f"bernoulli_sigmoid needs pre (..., N) and bias (N,) with the same N, got pre {tuple(pre.shape)} and "
            f"bias {tuple(bias.shape)}; pass the layer's bias vector, one entry per unit"
        )
    if pre.device != bias.device:
        raise ConfigError(f"bernoulli_sigmoid pre is on {pre.device} but bias on {bias.device}; move both to one")
    if pre.numel() > 2**31 - BLOCK:  # int32 element offsets, the last block's included
        raise ConfigError(f"bernoulli_sigmoid pre has {pre.numel()} elements, over int32 offsets: split the batch")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ConfigError(f"bernoulli_sigmoid scale={scale!r} must be a finite float (the inverse temperature)")


def bernoulli_sigmoid_ref(
    pre: torch.Tensor,
    bias: torch.Tensor,
    uniforms: torch.Tensor,
    *,
    scale: float = 1.0,
    return_probs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Reference: p = sigmoid(scale * pre + bias), sample = (uniforms < p). Any device.

    pre (..., N), bias (N,), uniforms (..., N) in [0, 1) (the kernel's are float32 `philox_uniform(seed,
    arange(numel))` in row-major order). Returns sample (..., N) in pre's dtype, or (probs, sample) when
    `return_probs`. p is float32 (float64 for float64 pre) and rounded to pre's dtype only on return."""
    _check(pre, bias, scale)
    if uniforms.shape != pre.shape:
        raise ConfigError(f"uniforms have shape {tuple(uniforms.shape)}; they need pre's {tuple(pre.shape)}")
    ct = _compute_dtype(pre.dtype)
    z = pre.detach().to(ct)
    if scale != 1.0:
        z = _as_kernel_scale(scale) * z
    p = torch.sigmoid(z + bias.detach().to(ct))  # (..., N)
    sample = (uniforms < p).to(pre.dtype)  # compared before p is rounded to pre's dtype
    return (p.to(pre.dtype), sample) if return_probs else sample


@functools.lru_cache(maxsize=1)
def _kernels():
    """Build the Triton kernel on first use (imports Triton); cached, so it is defined once per process."""
    triton, tl = kb.triton_language()

    @triton.jit
    def bernoulli_sigmoid_kernel(
        pre_ptr,  # (numel,) contiguous pre-activations, row-major (B, N)
        bias_ptr,  # (N,)
        probs_ptr,  # (numel,) written only when WRITE_PROBS (otherwise any valid pointer)
        sample_ptr,  # (numel,)
        numel,
        n_cols,
        scale,  # fp32 scalar
        seed,  # int64 Philox key
        WRITE_PROBS: tl.constexpr,
        FP64: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # int32 flat element index: the Philox counter
        mask = offs < numel
        x = tl.load(pre_ptr + offs, mask=mask, other=0.0)
        b = tl.load(bias_ptr + offs % n_cols, mask=mask, other=0.0)  # bias of the element's column
        if FP64:
            z = scale * x.to(tl.float64) + b.to(tl.float64)
        else:
            z = scale * x.to(tl.float32) + b.to(tl.float32)
        # sigmoid written out: exp(-z) -> inf for z << 0 gives p = 0, exp(-z) -> 0 for z >> 0 gives p = 1
        p = 1.0 / (1.0 + tl.exp(-z))
        u = tl.rand(seed, offs)  # float32 in [0, 1), philox_uniform(seed, offs)
        s = tl.where(u < p, 1.0, 0.0)
        if WRITE_PROBS:
            tl.store(probs_ptr + offs, p.to(probs_ptr.dtype.element_ty), mask=mask)
        tl.store(sample_ptr + offs, s.to(sample_ptr.dtype.element_ty), mask=mask)

    return bernoulli_sigmoid_kernel


def bernoulli_sigmoid_triton(
    pre: torch.Tensor,
    bias: torch.Tensor,
    seed: int,
    *,
    scale: float = 1.0,
    return_probs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Launch the fused kernel (one launch). pre (..., N), bias (N,), `seed` the Philox key (int in [0, 2**62]).
    Returns sample (..., N) in pre's dtype, or (probs, sample) when `return_probs`."""
    pre = pre.detach().contiguous()
    bias = bias.detach().contiguous()
    sample = torch.empty_like(pre)
    probs = torch.empty_like(pre) if return_probs else sample  # unused pointer when probs are not written
    numel = pre.numel()
    if numel:
        grid = ((numel + BLOCK - 1) // BLOCK,)
        _kernels()[grid](
            pre,
            bias,
            probs,
            sample,
            numel,
            pre.shape[-1],
            _as_kernel_scale(scale),
            int(seed),
            WRITE_PROBS=return_probs,
            FP64=pre.dtype == torch.float64,
            BLOCK=BLOCK,
        )
    return (probs, sample) if return_probs else sample


def bernoulli_sigmoid(
    pre: torch.Tensor,
    bias: torch.Tensor,
    *,
    scale: float = 1.0,
    return_probs: bool = False,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample Bernoulli(sigmoid(scale * pre + bias)): pre (..., N) (a matrix product's output), bias (N,).

    Returns the binary sample (..., N) in pre's dtype, or (probs, sample) when `return_probs`. Randomness comes
    from `generator` (or torch's global stream): "triton" draws a Philox seed from it, "torch" draws the uniforms
    with torch.rand on pre's device. `backend`: "auto" (the kernel on CUDA tensors, else the reference), "triton",
    or "torch"."""
    _check(pre, bias, scale)
    if not isinstance(return_probs, bool):
        raise ConfigError(f"bernoulli_sigmoid return_probs={return_probs!r} must be True or False")
    if kb.resolve(backend, pre, bias) == "triton":
        return bernoulli_sigmoid_triton(pre, bias, kb.seed_from(generator), scale=scale, return_probs=return_probs)
    u = torch.rand(pre.shape, generator=generator, device=pre.device, dtype=_compute_dtype(pre.dtype))
    return bernoulli_sigmoid_ref(pre, bias, u, scale=scale, return_probs=return_probs)
