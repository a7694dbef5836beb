"""Fused categorical sampling for autoregressive decoding: temperature, top-k, top-p and the draw in one pass.

For logits (R, V) each row draws one token from softmax(z) restricted to a kept set, z = logits / temperature:
the top-k filter (Fan et al. 2018) keeps every token whose logit is >= the k-th largest logit, the nucleus
filter (Holtzman et al. 2020) then keeps token i iff the probability mass of the strictly more likely top-k tokens
is < top_p, and the draw is the exponential race / Gumbel-max trick argmax_i [z_i - log E_i] over the kept tokens
with E_i = -log(u_i), u_i ~ U[0, 1) (P(i wins) = softmax(z)_i over the kept set). Tie rule: tokens tied at a
threshold are all kept (so top-k may keep more than k when logits tie); `shared.sampling.categorical.filter_logits`
instead breaks ties by position. Temperature 0 is argmax (first index among ties). Everything is computed in
float32 (half and float64 inputs included). The kernel finds both thresholds without sorting: by 32 steps of
bisection over the monotone int32 key of the float32 bit pattern, counting keys >= mid (top-k) or summing the
unnormalised mass exp(z_j - max z) of keys > mid against top_p * total (top-p). Its noise is
`tl.rand(seed, row * V + col)` (int32 offsets, row-major over the (R, V) logits), so `categorical_sample_ref` fed
`philox_uniform(seed, arange(R * V).view(R, V))` draws the same indices.
"""

from __future__ import annotations

import functools
import math

import torch

from shared.errors import ConfigError
from shared.kernels import backend as kb

ROW_ELEMS = 1024  # logits per program: several short rows (molecule vocabularies, V ~ 30-100) share a program
MAX_V = 65536  # a row lives in one program's registers; longer vocabularies run the reference
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TINY = torch.finfo(torch.float32).tiny  # u is clamped here so that E = -log(u) stays finite


def _check(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> None:
    """Validate at the public boundary; concise ConfigErrors saying how to fix the input."""
    if not isinstance(logits, torch.Tensor) or logits.dtype not in _DTYPES:
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ConfigError(f"categorical sampling needs floating-point logits (..., V), got {got}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ConfigError("logits must have a non-empty last dimension of categories, shape (..., V)")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0.0:
        raise ConfigError(f"temperature={temperature!r} must be a float >= 0 (0 = greedy argmax)")
    if not math.isfinite(temperature):
        raise ConfigError(f"temperature={temperature!r} must be finite")
    check_filters(top_k, top_p)


def check_filters(top_k: int, top_p: float) -> None:
    """The top-k / top-p settings every sampler and `filter_logits` accept: top_k an int >= 0, top_p in (0, 1]."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise ConfigError(f"top_k={top_k!r} must be an int >= 0 (0 = no top-k filter)")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p={top_p!r} must be in (0, 1] (1 = no nucleus filter)")


def _fp32(value: float) -> float:
    """`value` rounded to float32: Triton passes a Python float to a kernel as fp32, so the reference does too."""
    return float(torch.tensor(float(value), dtype=torch.float32))


def categorical_kept_ref(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """z = logits / temperature (R, V) float32 and the kept mask (R, V) bool of the top-k and top-p filters
    (the module's tie rule: every token tied at a threshold is kept). temperature > 0."""
    x = logits.float()  # (R, V)
    n_cat = x.shape[-1]
    keep = torch.ones_like(x, dtype=torch.bool)
    if 0 < top_k < n_cat:
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]  # (R, 1) the k-th largest logit
        keep = x >= kth
    z = x / _fp32(temperature)
    if top_p < 1.0:
        m = torch.where(keep, z, float("-inf")).amax(dim=-1, keepdim=True)  # (R, 1) the top token's z
        e = torch.where(keep, torch.exp(z - m), 0.0)  # unnormalised probabilities of the top-k tokens
        limit = e.sum(dim=-1, keepdim=True) * _fp32(top_p)  # (R, 1)
        xs, order = torch.sort(x, dim=-1, descending=True)
        cum = torch.cumsum(e.gather(-1, order), dim=-1)  # (R, V): cum[..., i - 1] is the mass sorted before i
        # That mass is non-decreasing along the sort, and at a tie group's first entry it is exactly the mass of the
        # strictly more likely tokens, so the kept tokens are those >= the last sorted value whose mass is < limit.
        n_kept = 1 + (cum[..., :-1] < limit).sum(dim=-1, keepdim=True)  # (R, 1): the top token always stays
        keep = keep & (x >= xs.gather(-1, n_kept - 1))
    return z, keep


def categorical_sample_ref(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, uniforms: torch.Tensor
) -> torch.Tensor:
    """Reference draw. logits (R, V) any float dtype, uniforms (R, V) float32 in [0, 1) (the kernel's stream is
    `philox_uniform(seed, arange(R * V).view(R, V))`; unused at temperature 0) -> indices (R,) int64."""
    if uniforms.shape != logits.shape:
        raise ConfigError(f"uniforms have shape {tuple(uniforms.shape)}; they need the logits' {tuple(logits.shape)}")
    if float(temperature) == 0.0:
        return torch.argmax(logits.float(), dim=-1)
    z, keep = categorical_kept_ref(logits, temperature, top_k, top_p)
    e = torch.log(uniforms.float().clamp_min(_TINY)).neg_().clamp_min_(_TINY)  # E = -log u ~ Exp(1), finite, > 0
    score = z - torch.log_(e)  # Gumbel-max: z_i + G_i with G_i = -log E_i
    return torch.argmax(torch.where(keep, score, float("-inf")), dim=-1)


@functools.lru_cache(maxsize=1)
def _kernels():
    """Build the Triton kernel on first use (imports Triton); cached, so it is defined once per process."""
    triton, tl = kb.triton_language()

    @triton.jit
    def categorical_kernel(
        logits_ptr,  # (R, V) with unit column stride
        out_ptr,  # (R,) int64
        n_rows,
        n_cols,
        stride_row,
        temperature,  # fp32 scalar > 0 (unused when GREEDY)
        top_k,  # int, used when USE_TOP_K (0 < top_k < V)
        top_p,  # fp32 scalar, used when USE_TOP_P (top_p < 1)
        seed,  # int64 Philox key
        GREEDY: tl.constexpr,
        USE_TOP_K: tl.constexpr,
        USE_TOP_P: tl.constexpr,
        BLOCK_R: tl.constexpr,
        BLOCK_V: tl.constexpr,
    ):
        rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # (BLOCK_R,) int32
        cols = tl.arange(0, BLOCK_V)  # (BLOCK_V,)
        row_ok = rows < n_rows
        valid = row_ok[:, None] & (cols[None, :] < n_cols)  # (BLOCK_R, BLOCK_V)
        ptrs = logits_ptr + rows[:, None].to(tl.int64) * stride_row + cols[None, :]
        x = tl.load(ptrs, mask=valid, other=float("-inf")).to(tl.float32)
        if GREEDY:
            best = tl.argmax(x, axis=1)  # first index among ties, like torch.argmax
        else:
            x = tl.where(x == 0.0, 0.0, x)  # -0.0 -> +0.0: equal floats get equal keys
            bits = x.to(tl.int32, bitcast=True)
            key = tl.where(bits < 0, bits ^ 0x7FFFFFFF, bits)  # int32 key, ordered like the floats
            keep = valid
            if USE_TOP_K:
                # Largest t with count(key >= t) >= k, i.e. the k-th largest key. Invariant: count(>= lo) >= k,
                # count(>= hi) < k; the range 2**32 halves to 1 in 32 steps. Bounds are int64, mid fits int32.
                lo = tl.full([BLOCK_R], -2147483648, tl.int64)
                hi = tl.full([BLOCK_R], 2147483648, tl.int64)
                for _ in range(32):
                    mid = lo + ((hi - lo) >> 1)
                    above = valid & (key >= mid.to(tl.int32)[:, None])
                    enough = tl.sum(above.to(tl.int32), axis=1) >= top_k
                    lo = tl.where(enough, mid, lo)
                    hi = tl.where(enough, hi, mid)
                keep = valid & (key >= lo.to(tl.int32)[:, None])
            z = x / temperature
            m = tl.max(tl.where(keep, z, float("-inf")), axis=1)  # (BLOCK_R,)
            m = tl.where(row_ok, m, 0.0)  # rows past the end: no -inf - -inf
            if USE_TOP_P:
                e = tl.where(keep, tl.exp(z - m[:, None]), 0.0)  # unnormalised probabilities of kept tokens
                limit = tl.sum(e, axis=1) * top_p
                # Smallest t with mass(key > t) < limit; token i is kept iff key_i >= t (the mass of the
                # strictly more likely tokens is below top_p). Invariant: mass(> lo) >= limit, mass(> hi) < limit.
                lo = tl.full([BLOCK_R], -2147483649, tl.int64)
                hi = tl.full([BLOCK_R], 2147483647, tl.int64)
                for _ in range(32):
                    mid = lo + ((hi - lo) >> 1)
                    mid32 = tl.maximum(mid, -2147483648).to(tl.int32)  # only a NaN key sits at -2**31
                    mass = tl.sum(tl.where(key > mid32[:, None], e, 0.0), axis=1)
                    small = mass < limit
                    hi = tl.where(small, mid, hi)
                    lo = tl.where(small, lo, mid)
                keep = keep & (key >= hi.to(tl.int32)[:, None])
            offs = rows[:, None] * n_cols + cols[None, :]  # int32 Philox counters: row * V + col
            u = tl.maximum(tl.rand(seed, offs), 1.1754943508222875e-38)  # clamp u = 0 so E is finite
            # E = -log u ~ Exp(1), kept > 0 should an approximate log round -log u to <= 0 for u near 1
            e = tl.maximum(-tl.log(u), 1.1754943508222875e-38)
            score = z - tl.log(e)
            best = tl.argmax(tl.where(keep, score, float("-inf")), axis=1)
        tl.store(out_ptr + rows, best.to(tl.int64), mask=row_ok)

    return categorical_kernel


def categorical_sample_triton(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float, seed: int
) -> torch.Tensor:
    """Launch the fused kernel (one launch). logits (R, V), `seed` the Philox key (int in [0, 2**62]) -> (R,) int64."""
    triton, _ = kb.triton_language()
    x = logits.detach()
    if x.stride(-1) != 1:
        x = x.contiguous()
    n_rows, n_cols = x.shape
    out = torch.empty(n_rows, dtype=torch.int64, device=x.device)
    if n_rows == 0:
        return out
    block_v = triton.next_power_of_2(n_cols)
    block_r = min(triton.next_power_of_2(n_rows), max(1, ROW_ELEMS // block_v))
    num_warps = min(16, max(1, block_r * block_v // 256))  # ~8 logits per thread, up to 64 for V ~ 32k
    _kernels()[(triton.cdiv(n_rows, block_r),)](
        x,
        out,
        n_rows,
        n_cols,
        x.stride(0),
        _fp32(temperature) if temperature > 0 else 1.0,
        int(top_k),
        _fp32(top_p),
        int(seed),
        GREEDY=float(temperature) == 0.0,
        USE_TOP_K=0 < top_k < n_cols,
        USE_TOP_P=float(top_p) < 1.0,
        BLOCK_R=block_r,
        BLOCK_V=block_v,
        num_warps=num_warps,
    )
    return out


def categorical_sample(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """One category per row from softmax(filter(logits / temperature)). logits (..., V) -> (...) int64.

    top_k=0 and top_p=1 disable the filters; temperature 0 is greedy argmax (no randomness drawn). "triton" runs
    the fused kernel with a Philox seed drawn from `generator`; "torch" the reference with u = torch.rand(...,
    generator=generator) on the logits' device; "auto" the kernel on CUDA, else the reference. Deterministic given
    a seeded `generator` (on the logits' device); without one torch's global RNG is used."""
    _check(logits, temperature, top_k, top_p)
    lead, n_cat = logits.shape[:-1], logits.shape[-1]
    rows = logits.reshape(-1, n_cat)  # (R, V)
    use_kernel = kb.resolve(backend, logits) == "triton"
    if use_kernel and (n_cat > MAX_V or rows.numel() >= 2**31):
        if backend != "auto":  # "auto" quietly runs the reference instead
            raise ConfigError(
                f"logits {tuple(rows.shape)} exceed the kernel's limits (V <= {MAX_V} in registers, R * V < 2**31 "
                "int32 Philox offsets): split the batch or use backend 'torch'"
            )
        use_kernel = False
    if use_kernel:
        seed = kb.seed_from(generator) if float(temperature) > 0.0 else 0  # greedy draws nothing
        out = categorical_sample_triton(rows, temperature, top_k, top_p, seed=seed)
    elif float(temperature) == 0.0:
        out = torch.argmax(rows, dim=-1)
    else:
        u = torch.rand(rows.shape, generator=generator, device=rows.device)  # (R, V) float32
        out = categorical_sample_ref(rows, temperature, top_k, top_p, u)
    return out.reshape(lead)
