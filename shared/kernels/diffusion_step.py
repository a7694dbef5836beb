"""One diffusion sampler step fused into one elementwise pass: guidance combine, x0/eps estimate, update and noise.

Once the net has run, a DDIM (Song et al. 2021, eqs. 12 and 16), ancestral DDPM (Ho et al. 2020, eqs. 6-7, 15),
DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) or SDE-DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", sec. 4 and
appendix: the same multistep data prediction for the reverse SDE, with fresh noise each step) step is elementwise
over x_t (B, ...). Per element:

    out    = u + w (c - u)                                     classifier-free guidance (Ho & Salimans 2022, eq. 6)
    x0_hat = (x_t - sqrt(1 - a_t) out) / sqrt(a_t)            eps prediction, or for v prediction (Salimans & Ho
    eps    = out                                               2022): x0_hat = sqrt(a_t) x_t - sqrt(1 - a_t) out,
                                                               eps = sqrt(a_t) out + sqrt(1 - a_t) x_t
    (clip: x0_hat to [-1, 1], then eps = (x_t - sqrt(a_t) x0_hat) / sqrt(1 - a_t))
    x_prev = c_x x_t + c_x0 x0_hat + c_eps eps + c_before x0_before + sigma z,   z ~ N(0, 1)

where the scalar coefficients come from (a_t, a_prev, eta, sampler) on the host in float64 (`step_coefficients`,
the same formulas as `shared.sampling.diffusion`'s ddim_step / ddpm_step / dpmpp_2m_step / dpmpp_2m_sde_step),
c_before being the second-order DPM-Solver++ term on the previous step's x0_hat. The kernel reads x_t, c, (u),
(x0_before) once, draws z = tl.randn(seed, i) at the flat (row-major) element index i of x_t as an int32 Philox
counter, and writes x_prev and, for DPM-Solver++ whose next step needs it, x0_hat; it computes in float32 and
stores in the promoted dtype of its inputs. `diffusion_step_ref` takes z as a tensor shaped like x_t, so a test
can feed it `philox_normal(seed, arange(numel)).view(x_t.shape)`, the kernel's exact stream.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from shared.errors import ConfigError
from shared.kernels import backend as kernel_backend

PREDICTIONS = ("eps", "v")
SAMPLERS = ("ddim", "ddpm", "dpm++2m", "dpm++2m-sde")
MULTISTEP = ("dpm++2m", "dpm++2m-sde")  # samplers whose second-order step reads the previous step's x0_hat
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
BLOCK = 1024


@dataclass(frozen=True)
class StepCoefficients:
    """The host-side scalars of one step: sqrt(a_t), sqrt(1 - a_t) and their reciprocals for x0_hat / eps, the
    update's weights, sigma (noise scale, 0 for a deterministic step) and h (DPM-Solver++'s step in
    lambda = log(alpha / sigma), inf on the last step; the next step's r = h_before / h)."""

    sqrt_a: float
    sqrt_1m_a: float
    inv_sqrt_a: float
    inv_sqrt_1m_a: float
    c_x: float = 0.0
    c_x0: float = 0.0
    c_eps: float = 0.0
    c_before: float = 0.0
    sigma: float = 0.0
    h: float = math.inf


class StepResult(NamedTuple):
    """x_prev (B, ...); x0_hat (B, ...) or None (stored for the DPM-Solver++ samplers or when asked); h (see
    StepCoefficients)."""

    x_prev: torch.Tensor
    x0: torch.Tensor | None
    h: float


def _log_snr_half(a: float) -> float:
    """DPM-Solver's lambda = log(alpha / sigma) = (log a - log(1 - a)) / 2 at alpha_bar = a."""
    return 0.5 * (math.log(a) - math.log1p(-a))


def step_coefficients(
    sampler: str, alpha_bar_t: float, alpha_bar_prev: float, eta: float = 0.0, h_before: float | None = None
) -> StepCoefficients:
    """The scalars of one `sampler` step from a_t to a_prev, in float64. eta is DDIM's (ignored otherwise);
    h_before (finite) makes DPM-Solver++(2M) and its SDE form second order, weighting the previous step's x0_hat."""
    a, ap = float(alpha_bar_t), float(alpha_bar_prev)
    roots = {"sqrt_a": math.sqrt(a), "sqrt_1m_a": math.sqrt(1 - a)}
    roots |= {"inv_sqrt_a": 1 / roots["sqrt_a"], "inv_sqrt_1m_a": 1 / roots["sqrt_1m_a"]}
    if sampler == "ddim":  # x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z (Song eqs. 12, 16)
        sigma = eta * math.sqrt((1 - ap) / (1 - a) * (1 - a / ap)) if eta > 0 else 0.0
        return StepCoefficients(**roots, c_x0=math.sqrt(ap), c_eps=math.sqrt(max(1 - ap - sigma**2, 0.0)), sigma=sigma)
    if sampler == "ddpm":  # posterior mean and beta-tilde variance with the effective beta = 1 - a_t / a_prev
        alpha = a / ap
        beta = 1 - alpha
        var = beta * (1 - ap) / (1 - a)
        c_x, c_x0 = math.sqrt(alpha) * (1 - ap) / (1 - a), math.sqrt(ap) * beta / (1 - a)
        return StepCoefficients(**roots, c_x=c_x, c_x0=c_x0, sigma=math.sqrt(var) if var > 0 else 0.0)
    if ap >= 1.0:  # DPM-Solver++ into clean data: sigma_prev = 0, e^-h = 0, x_prev = x0_hat
        return StepCoefficients(**roots, c_x0=1.0)
    h = _log_snr_half(ap) - _log_snr_half(a)
    c_x, sigma = math.sqrt((1 - ap) / (1 - a)), 0.0
    if sampler == "dpm++2m-sde":  # x_prev = (sigma_prev / sigma_t) e^-h x_t + alpha_prev (1 - e^-2h) D + noise
        k = -math.sqrt(ap) * math.expm1(-2 * h)
        c_x, sigma = c_x * math.exp(-h), math.sqrt((1 - ap) * -math.expm1(-2 * h))
    else:  # x_prev = (sigma_prev / sigma_t) x_t + alpha_prev (1 - e^-h) D
        k = -math.sqrt(ap) * math.expm1(-h)
    if h_before is None or not math.isfinite(h_before):  # first order: D = x0_hat (ODE: DDIM with eta = 0)
        return StepCoefficients(**roots, c_x=c_x, c_x0=k, sigma=sigma, h=h)
    half_inv_r = h / (2 * h_before)  # D = (1 + 1 / (2 r)) x0_hat - 1 / (2 r) x0_before, r = h_before / h
    return StepCoefficients(**roots, c_x=c_x, c_x0=k * (1 + half_inv_r), c_before=-k * half_inv_r, sigma=sigma, h=h)


def _out_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    return functools.reduce(torch.promote_types, [t.dtype for t in tensors if t is not None])


def diffusion_step_ref(
    x_t: torch.Tensor,
    out_cond: torch.Tensor,
    out_uncond: torch.Tensor | None,
    x0_before: torch.Tensor | None,
    noise: torch.Tensor | None,
    coef: StepCoefficients,
    guidance: float = 1.0,
    prediction: str = "eps",
    clip_x0: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch reference: (x_prev, x0_hat), both shaped like x_t (B, ...), in the promoted input dtype.

    out_cond / out_uncond: the net's eps or v with and without the condition (out_uncond None: no guidance).
    noise: z shaped like x_t, used when coef.sigma > 0. Computes in float32 (float64 for float64 inputs), the
    same operations in the same order as the kernel.
    """
    dtype = _out_dtype(x_t, out_cond, out_uncond, x0_before)
    f = torch.promote_types(dtype, torch.float32)
    x, o = x_t.to(f), out_cond.to(f)
    if out_uncond is not None:
        u = out_uncond.to(f)
        o = u + guidance * (o - u)
    need_eps = coef.c_eps != 0  # DDIM only: skip eps's passes otherwise (the kernel computes it in registers)
    if prediction == "v":
        x0 = coef.sqrt_a * x - coef.sqrt_1m_a * o
        eps = coef.sqrt_a * o + coef.sqrt_1m_a * x if need_eps and not clip_x0 else None
    else:
        x0 = (x - coef.sqrt_1m_a * o) * coef.inv_sqrt_a
        eps = o
    if clip_x0:  # keep eps consistent with the clipped x0 (improved-diffusion)
        x0 = x0.clamp(-1.0, 1.0)
        eps = (x - coef.sqrt_a * x0) * coef.inv_sqrt_1m_a if need_eps else None
    y = coef.c_x0 * x0  # terms with a zero weight are skipped: adding 0 * finite changes nothing
    if coef.c_x != 0:
        y = coef.c_x * x + y
    if need_eps:
        y = y + coef.c_eps * eps
    if x0_before is not None and coef.c_before != 0:
        y = y + coef.c_before * x0_before.to(f)
    if coef.sigma > 0:
        if noise is None:
            raise ValueError("a step with sigma > 0 needs `noise` shaped like x_t")
        y = y + coef.sigma * noise.to(f)
    return y.to(dtype), x0.to(dtype)


@functools.lru_cache(maxsize=1)
def _kernels():
    """The @triton.jit kernel, built on first use so that importing this module never imports Triton."""
    triton, tl = kernel_backend.triton_language()

    @triton.jit
    def step_kernel(
        x_ptr, c_ptr, u_ptr, b_ptr, y_ptr, x0_ptr,  # x_t, out_cond, out_uncond, x0_before -> x_prev, x0_hat
        n, seed, w, sqrt_a, sqrt_1m_a, inv_sqrt_a, inv_sqrt_1m_a, c_x, c_x0, c_eps, c_before, sigma,
        GUIDED: tl.constexpr, V_PRED: tl.constexpr, CLIP: tl.constexpr, HAS_BEFORE: tl.constexpr,
        NOISE: tl.constexpr, STORE_X0: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # int32 flat element index = Philox counter
        m = offs < n
        x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
        o = tl.load(c_ptr + offs, mask=m, other=0.0).to(tl.float32)
        if GUIDED:
            u = tl.load(u_ptr + offs, mask=m, other=0.0).to(tl.float32)
            o = u + w * (o - u)
        if V_PRED:
            x0 = sqrt_a * x - sqrt_1m_a * o
            eps = sqrt_a * o + sqrt_1m_a * x
        else:
            x0 = (x - sqrt_1m_a * o) * inv_sqrt_a
            eps = o
        if CLIP:
            x0 = tl.minimum(tl.maximum(x0, -1.0), 1.0)
            eps = (x - sqrt_a * x0) * inv_sqrt_1m_a
        y = c_x * x + c_x0 * x0 + c_eps * eps
        if HAS_BEFORE:
            y = y + c_before * tl.load(b_ptr + offs, mask=m, other=0.0).to(tl.float32)
        if NOISE:
            y = y + sigma * tl.randn(seed, offs)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=m)
        if STORE_X0:
            tl.store(x0_ptr + offs, x0.to(x0_ptr.dtype.element_ty), mask=m)

    return triton, step_kernel


def diffusion_step_triton(
    x_t: torch.Tensor,
    out_cond: torch.Tensor,
    out_uncond: torch.Tensor | None,
    x0_before: torch.Tensor | None,
    seed: int,
    coef: StepCoefficients,
    guidance: float = 1.0,
    prediction: str = "eps",
    clip_x0: bool = False,
    store_x0: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton launcher, one launch: (x_prev, x0_hat or None unless store_x0), shaped like x_t (B, ...); noise
    z_i = tl.randn(seed, i) at flat element index i when coef.sigma > 0. Inputs of different float dtypes mix."""
    triton, kernel = _kernels()
    dtype = _out_dtype(x_t, out_cond, out_uncond, x0_before)
    x, c = x_t.contiguous(), out_cond.contiguous()
    u = out_uncond.contiguous() if out_uncond is not None else c  # unused pointers when their flag is off
    b = x0_before.contiguous() if x0_before is not None and coef.c_before != 0 else None
    y = torch.empty(x_t.shape, dtype=dtype, device=x_t.device)
    x0 = torch.empty_like(y) if store_x0 else None
    n = x.numel()
    if n == 0:
        return y, x0
    kernel[(triton.cdiv(n, BLOCK),)](
        x, c, u, b if b is not None else x, y, x0 if x0 is not None else y,
        n, int(seed), float(guidance), coef.sqrt_a, coef.sqrt_1m_a, coef.inv_sqrt_a, coef.inv_sqrt_1m_a,
        coef.c_x, coef.c_x0, coef.c_eps, coef.c_before, coef.sigma,
        GUIDED=out_uncond is not None, V_PRED=prediction == "v", CLIP=bool(clip_x0), HAS_BEFORE=b is not None,
        NOISE=coef.sigma > 0, STORE_X0=store_x0, BLOCK=BLOCK, num_warps=4,
    )  # fmt: skip
    return y, x0


def _check(x_t, out_cond, out_uncond, x0_before, alpha_bar_t, alpha_bar_prev, sampler, eta, prediction) -> None:
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    if prediction not in PREDICTIONS:
        raise ConfigError(f"unknown prediction {prediction!r}: use 'eps' (noise) or 'v' (velocity)")
    named = {"x_t": x_t, "out_cond": out_cond, "out_uncond": out_uncond, "x0_before": x0_before}
    for name, t in named.items():
        if t is None:
            continue
        if not t.is_floating_point():
            raise ConfigError(f"diffusion_step: {name} must be a float tensor, got {t.dtype}")
        if t.shape != x_t.shape or t.device != x_t.device:
            raise ConfigError(
                f"diffusion_step: {name} {tuple(t.shape)} on {t.device} must match x_t {tuple(x_t.shape)} on "
                f"{x_t.device} (the net's output for x_t)"
            )
    if not 0.0 < alpha_bar_t < 1.0 or not 0.0 < alpha_bar_prev <= 1.0:
        raise ConfigError(
            f"alpha_bar_t={alpha_bar_t} must be in (0, 1) and alpha_bar_prev={alpha_bar_prev} in (0, 1] "
            "(the schedule's alphas_cumprod; 1 after the last step)"
        )
    if not eta >= 0.0:
        raise ConfigError(f"eta={eta} must be >= 0 (0 = deterministic DDIM, 1 = DDPM-like)")
    if (sampler in ("ddpm", "dpm++2m-sde") or (sampler == "ddim" and eta > 0)) and alpha_bar_prev < alpha_bar_t:
        raise ConfigError(f"a stochastic {sampler} step needs alpha_bar_prev >= alpha_bar_t (it denoises)")
    if x0_before is not None and sampler not in MULTISTEP:
        raise ConfigError(f"x0_before is DPM-Solver++(2M)'s memory; sampler {sampler!r} takes none")


def diffusion_step(
    x_t: torch.Tensor,
    out_cond: torch.Tensor,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    *,
    out_uncond: torch.Tensor | None = None,
    guidance: float = 1.0,
    sampler: str = "ddim",
    eta: float = 0.0,
    prediction: str = "eps",
    clip_x0: bool = False,
    x0_before: torch.Tensor | None = None,
    h_before: float | None = None,
    return_x0: bool = False,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> StepResult:
    """One sampler step x_t (B, ...) -> StepResult(x_prev (B, ...), x0_hat (B, ...) | None, h), fused.

    out_cond: the net's eps or v (`prediction`) for x_t (B, ...); out_uncond: its null-class output, combined
    with guidance weight w as u + w (c - u) (None: no guidance, w must be 1). alpha_bar_t / alpha_bar_prev:
    floats from the schedule (alpha_bar_prev = 1 after the last timestep). sampler "ddim" (with eta), "ddpm"
    (ancestral), "dpm++2m" or "dpm++2m-sde" (stochastic); for the last two pass the previous step's x0_hat and h
    as x0_before / h_before to take a second-order step (None: first order). x0_hat is returned for them or when
    return_x0.
    Noise: backend "torch" draws torch.randn(x_t.shape, generator=generator) when the step is stochastic;
    "triton" draws a Philox seed from `generator` and the kernel's stream. "auto" runs Triton on CUDA tensors.
    """
    a_t, a_prev = float(alpha_bar_t), float(alpha_bar_prev)
    _check(x_t, out_cond, out_uncond, x0_before, a_t, a_prev, sampler, float(eta), prediction)
    if out_uncond is None and guidance != 1.0:
        raise ConfigError(f"guidance={guidance} needs out_uncond, the net's null-class output (or use guidance=1)")
    second_order = sampler in MULTISTEP and x0_before is not None and h_before is not None
    coef = step_coefficients(sampler, a_t, a_prev, float(eta), float(h_before) if second_order else None)
    x0_before = x0_before if coef.c_before != 0 else None
    impl = kernel_backend.resolve(backend, *[t for t in (x_t, out_cond, out_uncond, x0_before) if t is not None])
    if impl == "triton" and _out_dtype(x_t, out_cond, out_uncond, x0_before) not in KERNEL_DTYPES:
        if backend == "triton":
            raise ConfigError("diffusion_step's kernel takes float32 / float16 / bfloat16; use backend 'torch'")
        impl = "torch"
    if impl == "triton" and x_t.numel() >= 2**31:
        raise ConfigError(f"diffusion_step's kernel indexes with int32: split the batch ({x_t.numel()} elements)")
    keep_x0 = sampler in MULTISTEP or return_x0
    if impl == "triton":
        seed = kernel_backend.seed_from(generator) if coef.sigma > 0 else 0
        x_prev, x0 = diffusion_step_triton(
            x_t, out_cond, out_uncond, x0_before, seed, coef, guidance, prediction, clip_x0, keep_x0
        )
        return StepResult(x_prev, x0, coef.h)
    noise = None
    if coef.sigma > 0:  # the stream the samplers always drew: one standard normal per element of x_t
        noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    x_prev, x0 = diffusion_step_ref(x_t, out_cond, out_uncond, x0_before, noise, coef, guidance, prediction, clip_x0)
    return StepResult(x_prev, x0 if keep_x0 else None, coef.h)
