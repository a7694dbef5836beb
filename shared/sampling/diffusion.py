"""Diffusion sampler maths as pure functions of tensors: timestep spacing, guidance, DDIM/DDPM steps and loops.

Notation (Ho et al. 2020): alpha_bar_t = prod_{s<=t} (1 - beta_s), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t)
eps. A sampler visits a decreasing subsequence tau_S > ... > tau_1 of {0..T-1} and moves x from tau_i to tau_{i-1}
("prev"), with alpha_bar_prev = 1 after the last step. Every step first estimates x_0 from the predicted noise,
x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t) (Ho et al. eq. 15), optionally clipped to [-1, 1]. No function here
draws random numbers from a global stream: noise is passed in, or drawn from the `generator` given to the loop.
The generative family (`shared.generative.diffusion.Diffusion`) supplies the network as `model_fn(x_t, t)`.
The step functions below (DDIM, DDPM, DPM-Solver++(2M) and its SDE form) are the readable maths; `sample_loop`
runs each step as one fused elementwise pass with the same formulas (`shared.kernels.diffusion_step`, a Triton
kernel on CUDA).

The network predicts either the noise ("eps", Ho et al. 2020) or the velocity ("v", Salimans & Ho 2022, sec. 4):
v = sqrt(a_t) eps - sqrt(1 - a_t) x_0, so x0_hat = sqrt(a_t) x_t - sqrt(1 - a_t) v. With eps, x0_hat divides the
net's error by sqrt(a_t), which is 5e-5 at the last step of a cosine schedule: the first steps of a short sampler
then start from a garbage x0_hat (clipped to saturated colours), and eps-trained nets also learn the global layout
at high noise only weakly, since those timesteps carry little of the eps loss. v keeps x0_hat well conditioned at
every t, which is why the art app's small, briefly trained UNets use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from shared.errors import ConfigError
from shared.kernels.diffusion_step import PREDICTIONS, SAMPLERS, diffusion_step  # names defined beside the kernel

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B, ...), t (B,) long) -> eps or v (B, ...)
# sample_loop also takes a net function returning the pair (out_cond, out_uncond) (B, ...) each, for guidance
GuidedFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]]


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ConfigError(f"unknown prediction {prediction!r}: use 'eps' (noise) or 'v' (velocity)")
    return prediction


def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    """`steps` distinct timesteps from T-1 down to 0, evenly spaced: (steps,) int64, decreasing.

    steps == T gives every timestep (full DDPM chain); steps == 1 gives [T-1].
    """
    if not 1 <= steps <= T:
        raise ConfigError(f"sampling steps={steps} must be between 1 and the schedule's {T} timesteps")
    if steps == 1:
        return torch.tensor([T - 1], dtype=torch.long)
    ts = torch.linspace(0, T - 1, steps, dtype=torch.float64).round().long()  # distinct since spacing >= 1
    return ts.flip(0)


def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6 rewritten): eps = eps_u + w (eps_c - eps_u).

    w = 1 is the plain conditional model, w = 0 the unconditional one, w > 1 sharpens towards the condition.
    """
    return eps_uncond + w * (eps_cond - eps_uncond)


def guidance_at(alpha_bar_t: float, w: float, interval: tuple[float, float] | None = None) -> float:
    """The guidance weight for a step at alpha_bar_t: w where the step's noise level sigma_t = sqrt((1 - a_t) / a_t)
    (x_t / sqrt(a_t) = x_0 + sigma_t eps) lies in `interval` = (sigma_lo, sigma_hi], else 1 (the plain conditional
    model: one net call instead of two). interval None: w at every step.

    Kynkaanniemi et al. 2024, "Applying guidance in a limited interval improves sample and distribution quality in
    diffusion models": at high noise guidance pushes samples towards a few class templates (the layout is decided
    there), which costs diversity and distribution match; at low noise it does little. Guiding only the middle keeps
    its gain in class fidelity and detail.
    """
    if interval is None or w == 1.0:
        return w
    lo, hi = interval
    a = min(max(float(alpha_bar_t), 1e-30), 1.0)
    sigma = math.sqrt((1.0 - a) / a)
    return w if lo < sigma <= hi else 1.0


def _ab(value: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """alpha_bar as a 0-d tensor on the dtype/device of `like` (broadcasts over any shape)."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t, clip_x0: bool = False) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t), clipped to [-1, 1] when `clip_x0` (Ho et al. eq. 15)."""
    a = _ab(alpha_bar_t, x_t)
    x0 = (x_t - torch.sqrt(1 - a) * eps) / torch.sqrt(a)
    return x0.clamp(-1.0, 1.0) if clip_x0 else x0


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar_t) -> torch.Tensor:
    """The noise consistent with (x_t, x0): eps = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t)."""
    a = _ab(alpha_bar_t, x_t)
    return (x_t - torch.sqrt(a) * x0) / torch.sqrt(1 - a)


def v_target(x0: torch.Tensor, eps: torch.Tensor, alpha_bar_t: torch.Tensor) -> torch.Tensor:
    """The velocity v = sqrt(a_t) eps - sqrt(1 - a_t) x0 (Salimans & Ho 2022, sec. 4); alpha_bar_t broadcasts."""
    return torch.sqrt(alpha_bar_t) * eps - torch.sqrt(1 - alpha_bar_t) * x0


def x0_and_eps(
    x_t: torch.Tensor, out: torch.Tensor, alpha_bar_t, prediction: str = "eps", clip_x0: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat) from the net's output `out` (eps or v) at x_t (B, ...).

    When x0_hat is clipped to [-1, 1], eps_hat is re-derived from it so that the two stay consistent (as
    improved-diffusion does); otherwise eps_hat is exact: the output itself (eps) or sqrt(a) v + sqrt(1 - a) x_t (v).
    """
    if prediction == "eps":
        x0 = predict_x0(x_t, out, alpha_bar_t, clip_x0)
        return x0, (eps_from_x0(x_t, x0, alpha_bar_t) if clip_x0 else out)
    check_prediction(prediction)
    a = _ab(alpha_bar_t, x_t)
    x0 = torch.sqrt(a) * x_t - torch.sqrt(1 - a) * out
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
        return x0, eps_from_x0(x_t, x0, a)
    return x0, torch.sqrt(a) * out + torch.sqrt(1 - a) * x_t


def ddim_step(
    x_t: torch.Tensor,
    out: torch.Tensor,
    alpha_bar_t,
    alpha_bar_prev,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: bool = False,
    prediction: str = "eps",
) -> torch.Tensor:
    """One DDIM update (Song et al. 2021, eq. 12), x_t (B, ...) -> x_prev (B, ...):

        x_prev = sqrt(a_prev) x0_hat + sqrt(1 - a_prev - sigma^2) eps + sigma z,
        sigma  = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev)   (eq. 16).

    `out` is the net's eps or v (`prediction`), turned into x0_hat and eps by `x0_and_eps`. eta = 0 is
    deterministic (no `noise` needed); eta = 1 equals the DDPM posterior step. With a_t and a_prev swapped
    (a_prev < a_t), eta = 0 and eps the same formula runs the ODE forwards (inversion).
    """
    a_t, a_prev = _ab(alpha_bar_t, x_t), _ab(alpha_bar_prev, x_t)
    x0, eps = x0_and_eps(x_t, out, a_t, prediction, clip_x0)
    sigma = eta * torch.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) if eta > 0 else torch.zeros_like(a_t)
    x_prev = torch.sqrt(a_prev) * x0 + torch.sqrt((1 - a_prev - sigma**2).clamp(min=0)) * eps
    if eta > 0 and float(sigma) > 0:
        if noise is None:
            raise ValueError("ddim_step with eta > 0 needs `noise` (B, ...) from the caller's generator")
        x_prev = x_prev + sigma * noise
    return x_prev


def ddpm_step(
    x_t: torch.Tensor,
    out: torch.Tensor,
    alpha_bar_t,
    alpha_bar_prev,
    noise: torch.Tensor | None = None,
    clip_x0: bool = False,
    prediction: str = "eps",
) -> torch.Tensor:
    """One ancestral DDPM step from the posterior q(x_prev | x_t, x0_hat) (Ho et al. 2020, eqs. 6-7):

        mean = sqrt(a_prev) beta / (1 - a_t) x0_hat + sqrt(alpha) (1 - a_prev) / (1 - a_t) x_t,
        var  = beta (1 - a_prev) / (1 - a_t)          (beta-tilde),
        with alpha = a_t / a_prev and beta = 1 - alpha,

    which also covers strided chains (the "respacing" of Nichol & Dhariwal 2021, sec. 4): beta is then the
    effective beta between the two visited timesteps. `noise` may be None only when a_prev = 1 (last step).
    """
    a_t, a_prev = _ab(alpha_bar_t, x_t), _ab(alpha_bar_prev, x_t)
    alpha = a_t / a_prev
    beta = 1 - alpha
    x0, _ = x0_and_eps(x_t, out, a_t, prediction, clip_x0)
    mean = torch.sqrt(a_prev) * beta / (1 - a_t) * x0 + torch.sqrt(alpha) * (1 - a_prev) / (1 - a_t) * x_t
    var = beta * (1 - a_prev) / (1 - a_t)
    if float(var) <= 0:
        return mean
    if noise is None:
        raise ValueError("ddpm_step needs `noise` (B, ...) except on the last step")
    return mean + torch.sqrt(var) * noise


def dpmpp_2m_step(
    x_t: torch.Tensor,
    x0: torch.Tensor,
    x0_before: torch.Tensor | None,
    alpha_bar_t,
    alpha_bar_prev,
    h_before: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DPM-Solver++(2M) step (Lu et al. 2022, Algorithm 2), x_t -> x_prev; returns (x_prev, h).

    With alpha = sqrt(a), sigma = sqrt(1 - a), lambda = log(alpha / sigma) and h = lambda_prev - lambda_t:

        x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (e^-h - 1) D,
        D = x0                                             (first order: no earlier x0, or the last step)
        D = (1 + 1 / (2 r)) x0 - 1 / (2 r) x0_before,  r = h_before / h   (second order, multistep)

    x0 is this step's data estimate, x0_before the previous step's (or None). a_prev = 1 (the last step to clean
    data) returns x0: sigma_prev = 0 and e^-h = 0. The first-order step equals DDIM with eta = 0.
    """
    a_t, a_prev = _ab(alpha_bar_t, x_t), _ab(alpha_bar_prev, x_t)
    if float(a_prev) >= 1.0:
        return x0, torch.full_like(a_t, float("inf"))
    h, d = _multistep_data(x0, x0_before, a_t, a_prev, h_before)
    ratio = torch.sqrt((1 - a_prev) / (1 - a_t))
    return ratio * x_t - torch.sqrt(a_prev) * torch.expm1(-h) * d, h


def _multistep_data(x0, x0_before, a_t, a_prev, h_before) -> tuple[torch.Tensor, torch.Tensor]:
    """DPM-Solver++(2M)'s (h, D): h = lambda_prev - lambda_t, D = x0 (first order) or the multistep combination
    (1 + 1 / (2 r)) x0 - 1 / (2 r) x0_before with r = h_before / h."""
    lam_t = 0.5 * (torch.log(a_t) - torch.log1p(-a_t))
    lam_prev = 0.5 * (torch.log(a_prev) - torch.log1p(-a_prev))
    h = lam_prev - lam_t
    if x0_before is None or h_before is None or not math.isfinite(float(h_before)):
        return h, x0
    r = h_before / h
    return h, (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_before


def dpmpp_2m_sde_step(
    x_t: torch.Tensor,
    x0: torch.Tensor,
    x0_before: torch.Tensor | None,
    alpha_bar_t,
    alpha_bar_prev,
    h_before: torch.Tensor | float | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SDE-DPM-Solver++(2M) step (Lu et al. 2022, "DPM-Solver++", sec. 4: the data-prediction solver of the
    reverse diffusion SDE, second order by the same multistep rule as `dpmpp_2m_step`), x_t -> x_prev; returns
    (x_prev, h). With the notation of `dpmpp_2m_step`:

        x_prev = (sigma_prev / sigma_t) e^-h x_t + alpha_prev (1 - e^-2h) D + sigma_prev sqrt(1 - e^-2h) z.

    Against the ODE step, x_t's weight shrinks by e^-h and fresh noise z (B, ...) replaces what it carried: each
    step forgets part of the path's error instead of carrying it to the end (Karras et al. 2022, sec. 4, on why
    stochastic samplers forgive an imperfect net). a_prev = 1 returns x0; `noise` may be None only then.
    """
    a_t, a_prev = _ab(alpha_bar_t, x_t), _ab(alpha_bar_prev, x_t)
    if float(a_prev) >= 1.0:
        return x0, torch.full_like(a_t, float("inf"))
    if noise is None:
        raise ValueError("dpmpp_2m_sde_step needs `noise` (B, ...) except on the last step")
    h, d = _multistep_data(x0, x0_before, a_t, a_prev, h_before)
    ratio = torch.sqrt((1 - a_prev) / (1 - a_t))
    x_prev = ratio * torch.exp(-h) * x_t - torch.sqrt(a_prev) * torch.expm1(-2 * h) * d
    return x_prev + torch.sqrt((1 - a_prev) * -torch.expm1(-2 * h)) * noise, h


def _alphas_cumprod(schedule) -> torch.Tensor:
    """Accept a NoiseSchedule (anything with `.alphas_cumprod`) or the (T,) tensor itself."""
    return schedule.alphas_cumprod if hasattr(schedule, "alphas_cumprod") else torch.as_tensor(schedule)


def sample_loop(
    model_fn: GuidedFn,
    x_T: torch.Tensor,
    schedule,
    timesteps: torch.Tensor,
    sampler: str = "ddim",
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    prediction: str = "eps",
    guidance: float = 1.0,
    backend: str = "auto",
) -> torch.Tensor:
    """Run the reverse chain from x_T (B, ...) over decreasing `timesteps` (S,) -> x_0 (B, ...).

    schedule: a NoiseSchedule or its (T,) alphas_cumprod. sampler "ddim" uses `eta`; "ddpm" is ancestral
    sampling with the posterior variance; "dpm++2m" is the deterministic second-order multistep DPM-Solver++
    (better than DDIM at the same number of net calls, Lu et al. 2022); "dpm++2m-sde" its stochastic form, which
    forgives a briefly trained net's errors better at the same cost (the art app's default). Fresh noise for each
    stochastic step comes from `generator` (on the device of x_T) when given, else from torch's global stream.
    `model_fn` returns eps or v (`prediction`), or the pair (out_cond, out_uncond) that each step combines with
    the guidance weight as u + w (c - u). Each step, guidance combine included, is one fused elementwise pass
    (`shared.kernels.diffusion_step`: the same maths as the step functions above; `backend` "auto" runs its
    Triton kernel on CUDA, with the kernel's own noise stream). Call under torch.no_grad().
    """
    check_prediction(prediction)
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}")
    if eta < 0:
        raise ConfigError(f"eta={eta} must be >= 0 (0 = deterministic DDIM, 1 = DDPM-like)")
    ab = _alphas_cumprod(schedule).detach().to("cpu", torch.float64)  # host copy: no device sync per step
    steps = [int(t) for t in timesteps.tolist()]
    t_device = timesteps.to(x_T.device)
    x = x_T
    x0_before, h_before = None, None  # DPM-Solver++(2M)'s memory of the previous step
    for i, t in enumerate(steps):
        a_prev = float(ab[steps[i + 1]]) if i + 1 < len(steps) else 1.0
        out = model_fn(x, t_device[i].expand(x.shape[0]))
        out_cond, out_uncond = out if isinstance(out, tuple) else (out, None)
        # DPM-Solver++ steps first order into the last timestep and on to clean data: the last gap in lambda is
        # several times the one before, and extrapolating x0 across it overshoots ("lower_order_final").
        final = i + 2 >= len(steps)
        step = diffusion_step(
            x, out_cond, float(ab[t]), a_prev,
            out_uncond=out_uncond, guidance=guidance if out_uncond is not None else 1.0,
            sampler=sampler, eta=eta, prediction=prediction, clip_x0=clip_x0,
            x0_before=None if final else x0_before, h_before=h_before, generator=generator, backend=backend,
        )  # fmt: skip
        x, x0_before, h_before = step.x_prev, step.x0, step.h
    return x


def ddim_invert_loop(
    model_fn: ModelFn, x0: torch.Tensor, schedule, timesteps: torch.Tensor, prediction: str = "eps"
) -> torch.Tensor:
    """Deterministic DDIM run backwards, x_0 (B, ...) -> x_T (B, ...), over increasing `timesteps` (S,).

    Each step reads x0_hat and eps_hat from the net at the current point and its own timestep (the first step,
    from clean data, uses the smallest timestep) and moves along the eta = 0 DDIM path to the next, larger
    timestep: x_next = sqrt(a_next) x0_hat + sqrt(1 - a_next) eps_hat (Song et al. 2021, sec. 4.3). Sampling the
    result with the same timesteps reversed and eta = 0 approximately returns x_0. Reading the net at the point's
    own noise level matters for v-prediction, whose output means nothing at another level.
    """
    check_prediction(prediction)
    ab = _alphas_cumprod(schedule).to(x0.device)
    timesteps = timesteps.to(x0.device)
    x = x0
    t_cur = timesteps[0]
    for i, t in enumerate(timesteps):
        out = model_fn(x, t_cur.expand(x.shape[0]))
        x0_hat, eps = x0_and_eps(x, out, ab[t_cur], prediction)
        if i == 0:
            x0_hat = x  # the starting point is clean data
        x = torch.sqrt(ab[t]) * x0_hat + torch.sqrt(1 - ab[t]) * eps
        t_cur = t
    return x
