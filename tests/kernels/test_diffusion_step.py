"""The fused diffusion step: kernel (Triton's interpreter on CPU) against its reference fed the kernel's Philox
stream, over samplers, predictions, clipping, guidance, dtypes and awkward sizes; the fused step against the readable
step functions of shared.sampling.diffusion; the dispatcher's backends and errors; the bench rows at toy sizes."""

from __future__ import annotations

import itertools

import pytest
import torch

from shared.errors import ConfigError
from shared.kernels import backend
from shared.kernels.diffusion_step import diffusion_step, diffusion_step_ref, step_coefficients
from shared.kernels.philox import philox_normal
from shared.sampling.diffusion import cfg_combine, ddim_step, ddpm_step, dpmpp_2m_sde_step, dpmpp_2m_step, x0_and_eps

triton = pytest.importorskip("triton")

SHAPES = [(1,), (7,), (3, 5, 7), (97, 3)]
# (sampler, eta, alpha_bar_t, alpha_bar_prev, h_before): mid-chain steps, DPM-Solver++ first and second order,
# and the last step into clean data (a_prev = 1, no noise)
STEPS = [
    ("ddim", 0.0, 0.3, 0.6, None),
    ("ddim", 0.7, 0.3, 0.6, None),
    ("ddpm", 0.0, 0.3, 0.6, None),
    ("ddpm", 0.0, 0.3, 1.0, None),
    ("dpm++2m", 0.0, 0.3, 0.6, None),
    ("dpm++2m", 0.0, 0.3, 0.6, 0.4),
    ("dpm++2m", 0.0, 0.3, 1.0, 0.4),
    ("dpm++2m-sde", 0.0, 0.3, 0.6, None),
    ("dpm++2m-sde", 0.0, 0.3, 0.6, 0.4),
    ("dpm++2m-sde", 0.0, 0.3, 1.0, 0.4),
]


def _inputs(shape, dtype=torch.float32, seed=0):
    """x_t, out_cond, out_uncond, x0_before (shape each), with a spread wide enough that clipping bites."""
    g = torch.Generator().manual_seed(seed)
    return [(1.5 * torch.randn(shape, generator=g)).to(dtype) for _ in range(4)]


def _philox_seed(generator_seed: int) -> int:
    """The seed the dispatcher draws from a generator seeded `generator_seed`."""
    return backend.seed_from(torch.Generator().manual_seed(generator_seed))


def _check_kernel(shape, dtype, step, prediction, clip, guided, rtol, atol):
    sampler, eta, a_t, a_prev, h_before = step
    x, c, u, b = _inputs(shape, dtype)
    b = b if sampler.startswith("dpm++") and h_before is not None else None
    w = 2.5 if guided else 1.0
    kw = {"sampler": sampler, "eta": eta, "prediction": prediction, "clip_x0": clip, "return_x0": True}
    got = diffusion_step(
        x, c, a_t, a_prev, out_uncond=u if guided else None, guidance=w, x0_before=b, h_before=h_before,
        generator=torch.Generator().manual_seed(11), backend="triton", **kw,
    )  # fmt: skip
    coef = step_coefficients(sampler, a_t, a_prev, eta, h_before)
    z = philox_normal(_philox_seed(11), torch.arange(x.numel(), dtype=torch.int32)).view(shape)  # kernel's stream
    want, want_x0 = diffusion_step_ref(x, c, u if guided else None, b, z, coef, w, prediction, clip)
    assert got.x_prev.dtype == dtype and got.x_prev.shape == shape
    torch.testing.assert_close(got.x_prev, want, rtol=rtol, atol=atol)
    torch.testing.assert_close(got.x0, want_x0, rtol=rtol, atol=atol)
    assert got.h == coef.h


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("step", STEPS)
def test_kernel_matches_reference_float32(shape, step):
    for prediction, clip, guided in itertools.product(("eps", "v"), (False, True), (False, True)):
        _check_kernel(shape, torch.float32, step, prediction, clip, guided, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("shape", [(1,), (3, 5, 7)])
@pytest.mark.parametrize("step", [STEPS[1], STEPS[2], STEPS[5]])
def test_kernel_matches_reference_half(dtype, tol, shape, step):
    """Both compute in float32 and round on store: equal up to one rounding of the output dtype."""
    for prediction, clip in (("eps", False), ("v", True)):
        _check_kernel(shape, dtype, step, prediction, clip, True, rtol=tol, atol=tol)


def test_kernel_mixes_dtypes_like_autocast():
    """x_t float32 with bf16 net outputs (sampling under bf16 autocast): the step returns float32, as eager did."""
    x, c, u, _ = _inputs((4, 3, 5))
    c, u = c.bfloat16(), u.bfloat16()
    kw = {"out_uncond": u, "guidance": 2.0, "sampler": "ddim", "prediction": "v", "clip_x0": True}
    got = diffusion_step(x, c, 0.3, 0.6, backend="triton", **kw).x_prev
    want = diffusion_step(x, c, 0.3, 0.6, backend="torch", **kw).x_prev
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["torch", "triton"])
@pytest.mark.parametrize("prediction", ["eps", "v"])
@pytest.mark.parametrize("clip", [False, True])
def test_fused_step_equals_the_step_functions(impl, prediction, clip):
    """The fused step = cfg_combine then ddim_step / ddpm_step / x0_and_eps + dpmpp_2m_step or dpmpp_2m_sde_step, fed
    the same noise."""
    x, c, u, b = _inputs((3, 5, 7))
    out = cfg_combine(c, u, 2.5)
    common = {"out_uncond": u, "guidance": 2.5, "prediction": prediction, "clip_x0": clip, "backend": impl}

    def noise(seed):  # what the step draws from a generator seeded `seed` on each backend
        if impl == "torch":
            return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
        return philox_normal(_philox_seed(seed), torch.arange(x.numel(), dtype=torch.int32)).view(x.shape)

    g = lambda seed: torch.Generator().manual_seed(seed)  # noqa: E731
    got = diffusion_step(x, c, 0.3, 0.6, sampler="ddim", eta=0.7, generator=g(1), **common).x_prev
    want = ddim_step(x, out, torch.tensor(0.3), torch.tensor(0.6), 0.7, noise(1), clip, prediction)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    got = diffusion_step(x, c, 0.3, 0.6, sampler="ddpm", generator=g(2), **common).x_prev
    want = ddpm_step(x, out, torch.tensor(0.3), torch.tensor(0.6), noise(2), clip, prediction)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    x0, _ = x0_and_eps(x, out, torch.tensor(0.3), prediction, clip)
    want, h = dpmpp_2m_step(x, x0, b, torch.tensor(0.3), torch.tensor(0.6), torch.tensor(0.4))
    got = diffusion_step(x, c, 0.3, 0.6, sampler="dpm++2m", x0_before=b, h_before=0.4, **common)
    torch.testing.assert_close(got.x_prev, want, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(got.x0, x0, rtol=1e-5, atol=2e-6)
    assert abs(got.h - float(h)) < 1e-6
    want, h = dpmpp_2m_sde_step(x, x0, b, torch.tensor(0.3), torch.tensor(0.6), torch.tensor(0.4), noise(3))
    got = diffusion_step(x, c, 0.3, 0.6, sampler="dpm++2m-sde", x0_before=b, h_before=0.4, generator=g(3), **common)
    torch.testing.assert_close(got.x_prev, want, rtol=1e-5, atol=2e-6)
    torch.testing.assert_close(got.x0, x0, rtol=1e-5, atol=2e-6)
    assert abs(got.h - float(h)) < 1e-6


def test_torch_backend_is_deterministic_and_auto_runs_it_on_cpu():
    x, c, u, _ = _inputs((5, 7))
    kw = {"out_uncond": u, "guidance": 2.0, "sampler": "ddpm"}

    def run(seed: int, impl: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return diffusion_step(x, c, 0.3, 0.6, generator=g, backend=impl, **kw).x_prev

    assert torch.equal(run(3, "torch"), run(3, "torch"))
    assert not torch.allclose(run(3, "torch"), run(4, "torch"))
    assert torch.equal(run(3, "auto"), run(3, "torch"))  # CPU tensors: the reference and torch's noise stream
    assert torch.equal(run(3, "triton"), run(3, "triton"))  # the kernel's stream is a function of the seed
    # the torch stream is the one the samplers always drew: one torch.randn(x.shape) per stochastic step
    coef = step_coefficients("ddpm", 0.3, 0.6)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(run(3, "torch"), diffusion_step_ref(x, c, u, None, z, coef, 2.0)[0])


def test_sampling_through_the_kernel_matches_the_reference():
    """Diffusion.sample end to end with backend 'triton' (interpreter) vs 'torch', deterministic samplers."""
    from shared.generative.diffusion import Diffusion

    class Linear(torch.nn.Module):  # a stand-in denoiser with class-dependent output (diffusers-style)
        def forward(self, x, t, y):
            shift = 0.0 if y is None else (y.float() / 8).view(-1, 1, 1)
            return 0.7 * x * (t.float() / (t.float() + 100)).view(-1, 1, 1) + shift

    model = Diffusion(Linear(), (2, 3), timesteps=100, num_classes=4, prediction="v")
    x_T = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0))
    for sampler in ("ddim", "dpm++2m"):
        kw = {"cond": [0, 1, 2, 3], "x_T": x_T, "steps": 6, "sampler": sampler, "guidance": 2.0}
        got, want = model.sample(4, backend="triton", **kw), model.sample(4, backend="torch", **kw)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bad_input_raises_config_error():
    x, c, u, b = _inputs((2, 3))
    cases = [
        ({"out_cond": c[:1]}, "must match x_t"),
        ({"out_uncond": u.view(3, 2)}, "must match x_t"),
        ({"out_cond": c.long()}, "float tensor"),
        ({"sampler": "euler"}, "unknown sampler"),
        ({"prediction": "x0"}, "unknown prediction"),
        ({"guidance": 3.0}, "needs out_uncond"),
        ({"alpha_bar_t": 1.0}, "alpha_bar_t=1.0 must be in"),
        ({"alpha_bar_prev": 0.0}, "alpha_bar_prev=0.0"),
        ({"eta": -1.0}, "eta=-1.0"),
        ({"x0_before": b}, "x0_before"),
        ({"sampler": "ddpm", "alpha_bar_prev": 0.1}, "denoises"),
        ({"backend": "cuda"}, "unknown kernel backend"),
        ({"out_cond": c.double(), "backend": "triton"}, "float32 / float16 / bfloat16"),
    ]
    for override, message in cases:
        args = {"x_t": x, "out_cond": c, "alpha_bar_t": 0.3, "alpha_bar_prev": 0.6} | override
        with pytest.raises(ConfigError, match=message):
            diffusion_step(**args)


def test_bench_rows_at_toy_sizes():
    from benchmarks.kernel_diffusion_step import NAME, rows

    out = rows(torch.device("cpu"), None, tiny=True)
    assert len(out) == 6 and all(NAME in r["name"] for r in out)
    assert all(r["ours_s"] > 0 and r["peer_s"] > 0 and r["achieved_GBps"] > 0 for r in out)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 1.6e-2)])
def test_kernel_on_cuda(dtype, tol):
    """Compiled: float32 within 1e-4, looser than the interpreter, as the GPU's log / cos in tl.randn's Box-Muller
    (and fused multiply-adds) round differently from PyTorch's."""
    x, c, u, b = (t.cuda() for t in _inputs((64, 3, 33, 33), dtype))
    for sampler, eta, a_t, a_prev, h_before in STEPS:
        for prediction, clip in (("eps", False), ("v", True)):
            before = b if sampler.startswith("dpm++") and h_before is not None else None
            kw = {"sampler": sampler, "eta": eta, "prediction": prediction, "clip_x0": clip, "return_x0": True}
            gen = torch.Generator(device="cuda").manual_seed(5)
            got = diffusion_step(
                x, c, a_t, a_prev, out_uncond=u, guidance=2.0, x0_before=before, h_before=h_before,
                generator=gen, backend="auto", **kw,
            )  # fmt: skip
            seed = backend.seed_from(torch.Generator(device="cuda").manual_seed(5))
            z = philox_normal(seed, torch.arange(x.numel(), dtype=torch.int32, device="cuda")).view(x.shape)
            coef = step_coefficients(sampler, a_t, a_prev, eta, h_before)
            want, want_x0 = diffusion_step_ref(x, c, u, before, z, coef, 2.0, prediction, clip)
            torch.testing.assert_close(got.x_prev, want, rtol=tol, atol=tol)
            torch.testing.assert_close(got.x0, want_x0, rtol=tol, atol=tol)
