"""The fused sigmoid + Bernoulli kernel (RBM Gibbs half-step) against its reference fed the kernel's Philox stream,
sampling frequencies against the probabilities, the dispatcher's backends and errors, and the benchmark rows.

Kernel tests run in Triton's interpreter on CPU tensors (TRITON_INTERPRET=1, tests/conftest.py). The sample is
1[u < p]: with the same u the kernel and the reference can disagree only where u lies within the rounding
difference of the two p's. In the interpreter both compute p with IEEE float32 arithmetic and the samples match
exactly on these fixed seeds; compiled on a GPU, exp and division are approximate (a few ulp), so the GPU test
allows flips only at elements where |u - p_ref| is below that bound.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import kernel_bernoulli_sigmoid as bench
from shared.errors import ConfigError
from shared.kernels.backend import seed_from
from shared.kernels.bernoulli_sigmoid import bernoulli_sigmoid, bernoulli_sigmoid_ref, bernoulli_sigmoid_triton
from shared.kernels.philox import philox_uniform

triton = pytest.importorskip("triton")

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
SIZES = [(1, 1), (7, 13), (97, 3), (33, 257)]


def _inputs(shape, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    pre = (3.0 * torch.randn(shape, generator=g)).to(device=device, dtype=dtype)  # (B, N): saturated and mid p
    bias = torch.randn(shape[-1], generator=g).to(device=device, dtype=dtype)  # (N,)
    return pre, bias


def _stream(seed, pre):
    """The kernel's uniforms: tl.rand(seed, flat index), laid out like pre."""
    return philox_uniform(seed, torch.arange(pre.numel(), dtype=torch.int32, device=pre.device)).view(pre.shape)


def _seed_of(generator_seed):
    """The Philox seed the dispatcher draws from a generator seeded with `generator_seed`."""
    return seed_from(torch.Generator().manual_seed(generator_seed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SIZES)
def test_kernel_matches_reference_on_the_same_stream(shape, dtype):
    pre, bias = _inputs(shape, dtype)
    for scale in (1.0, 0.37):
        probs, sample = bernoulli_sigmoid(
            pre, bias, scale=scale, return_probs=True, generator=torch.Generator().manual_seed(5), backend="triton"
        )
        u = _stream(_seed_of(5), pre)
        ref_probs, ref_sample = bernoulli_sigmoid_ref(pre, bias, u, scale=scale, return_probs=True)
        assert sample.dtype == dtype and probs.dtype == dtype and sample.shape == shape
        assert torch.equal(sample, ref_sample)
        # The interpreter casts float32 -> bfloat16 by truncation (the GPU rounds to nearest): one ulp of slack,
        # which the dtype's default relative tolerance covers.
        torch.testing.assert_close(probs, ref_probs)
    only_sample = bernoulli_sigmoid(pre, bias, generator=torch.Generator().manual_seed(5), backend="triton")
    assert torch.equal(only_sample, bernoulli_sigmoid_ref(pre, bias, u))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # numpy's exp(200) = inf: p = 0, as intended
def test_kernel_handles_leading_dims_non_contiguous_input_and_saturation():
    pre = torch.tensor([[-200.0, -30.0, 0.0, 30.0, 200.0]]).repeat(6, 1).T  # (5, 6) transposed view
    bias = torch.zeros(6)
    probs, sample = bernoulli_sigmoid_ref(pre, bias, _stream(11, pre), return_probs=True)
    k_probs, k_sample = bernoulli_sigmoid_triton(pre, bias, 11, return_probs=True)
    assert torch.equal(k_sample, sample) and torch.equal(k_probs, probs)
    assert (k_sample[0] == 0).all() and (k_sample[-1] == 1).all()  # p = 0 and p = 1 exactly
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))  # (..., N) with two leading dims
    assert torch.equal(bernoulli_sigmoid_triton(x, bias[:4], 3), bernoulli_sigmoid_ref(x, bias[:4], _stream(3, x)))
    empty = bernoulli_sigmoid(torch.zeros(0, 4), torch.zeros(4), backend="triton")
    assert empty.shape == (0, 4)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_sampling_frequencies_match_the_probabilities(backend):
    n_rows, bias = 4000, torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.5, 2.0, 4.0])  # (7,): p from 0.05 to 0.98
    pre = torch.zeros(n_rows, 7)  # every row has the same p: its column means estimate p
    probs, sample = bernoulli_sigmoid(
        pre, bias, return_probs=True, generator=torch.Generator().manual_seed(1), backend=backend
    )
    p = torch.sigmoid(bias)
    assert set(sample.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(probs[0], p)
    sd = (p * (1 - p) / n_rows).sqrt()
    assert ((sample.mean(0) - p).abs() < 4 * sd).all(), (sample.mean(0), p)
    # Tempered: sigmoid(scale * pre + bias)
    pre = torch.ones(n_rows, 7)
    sample = bernoulli_sigmoid(pre, bias, scale=0.5, generator=torch.Generator().manual_seed(2), backend=backend)
    p = torch.sigmoid(0.5 + bias)
    assert ((sample.mean(0) - p).abs() < 4 * (p * (1 - p) / n_rows).sqrt()).all()


def test_torch_backend_is_deterministic_and_auto_runs_the_reference_on_cpu():
    pre, bias = _inputs((33, 257), torch.float32)

    def draw(backend, seed):
        return bernoulli_sigmoid(pre, bias, generator=torch.Generator().manual_seed(seed), backend=backend)

    a, b, c = draw("torch", 3), draw("torch", 3), draw("torch", 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(draw("auto", 3), a)  # CPU tensors: "auto" is the reference
    # The torch path is the reference fed torch.rand from the generator (float32 uniforms for float32 pre).
    u = torch.rand(pre.shape, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, bernoulli_sigmoid_ref(pre, bias, u))
    # The kernel path is deterministic given the generator too.
    assert torch.equal(draw("triton", 3), draw("triton", 3))
    pre64, bias64 = pre.double(), bias.double()
    assert draw("torch", 3).dtype == torch.float32
    assert bernoulli_sigmoid(pre64, bias64, generator=torch.Generator().manual_seed(3)).dtype == torch.float64


def test_bad_inputs_raise_config_error():
    pre, bias = torch.zeros(4, 5), torch.zeros(5)
    with pytest.raises(ConfigError, match=r"bias \(N,\)"):
        bernoulli_sigmoid(pre, torch.zeros(6))
    with pytest.raises(ConfigError, match="same N"):
        bernoulli_sigmoid(pre, torch.zeros(1, 5))
    with pytest.raises(ConfigError, match="dtype"):
        bernoulli_sigmoid(pre.long(), bias)
    with pytest.raises(ConfigError, match="floating-point bias"):
        bernoulli_sigmoid(pre, bias.long())
    with pytest.raises(ConfigError, match="scale"):
        bernoulli_sigmoid(pre, bias, scale=float("nan"))
    with pytest.raises(ConfigError, match="tensors"):
        bernoulli_sigmoid([[0.0]], bias)
    with pytest.raises(ConfigError, match="unknown kernel backend"):
        bernoulli_sigmoid(pre, bias, backend="cuda")
    with pytest.raises(ConfigError, match="uniforms"):
        bernoulli_sigmoid_ref(pre, bias, torch.zeros(5, 4))
    with pytest.raises(ConfigError, match="return_probs"):
        bernoulli_sigmoid(pre, bias, return_probs=1)
    with pytest.raises(ConfigError, match="split the batch"):  # 2**31 elements as a view: no memory
        bernoulli_sigmoid(torch.zeros(1, 1).expand(2**16, 2**15), torch.zeros(2**15))


def test_benchmark_rows_run_at_tiny_sizes():
    rows = bench.rows(torch.device("cpu"), None, tiny=True)
    assert rows and all(r["ours_s"] > 0 and r["peer_s"] > 0 and r["achieved_GBps"] > 0 for r in rows)
    assert all(r["name"].startswith(bench.NAME) for r in rows)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_kernel_on_cuda_matches_reference(dtype):
    pre, bias = _inputs((1031, 785), dtype, device="cuda")  # awkward sizes, ~0.8M elements
    for scale in (1.0, 0.37):
        probs, sample = bernoulli_sigmoid(
            pre, bias, scale=scale, return_probs=True, generator=torch.Generator().manual_seed(5), backend="auto"
        )
        u = _stream(_seed_of(5), pre)
        ref_probs, ref_sample = bernoulli_sigmoid_ref(pre, bias, u, scale=scale, return_probs=True)
        torch.testing.assert_close(probs, ref_probs)
        # Compiled exp / division are a few ulp off IEEE: a sample may flip only where u is that close to p.
        ref_p = torch.sigmoid(scale * pre.to(torch.float64) + bias.to(torch.float64))
        flips = sample != ref_sample
        near = (u.double() - ref_p).abs() <= 1e-6
        assert not (flips & ~near).any(), f"{int((flips & ~near).sum())} flips away from the rounding band"
