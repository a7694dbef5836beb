"""The PyTorch Philox stream against Triton's `tl.rand` / `tl.randn` (interpreter on CPU), and the backend rule."""

from __future__ import annotations

import pytest
import torch

from shared.errors import ConfigError
from shared.kernels import backend
from shared.kernels.philox import philox_normal, philox_uniform, philox_words

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")


@triton.jit
def _stream(u_ptr, z_ptr, w_ptr, seed, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    tl.store(u_ptr + offs, tl.rand(seed, offs), mask=m)
    tl.store(z_ptr + offs, tl.randn(seed, offs), mask=m)
    _, w1, _, w3 = tl.randint4x(seed, offs)
    tl.store(w_ptr + offs, w1 ^ w3, mask=m)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40 + 7, 2**62 - 3])
@pytest.mark.parametrize("n", [1, 97, 1000])
def test_philox_matches_triton_stream(seed, n):
    u, z = torch.empty(n), torch.empty(n)
    w = torch.empty(n, dtype=torch.int32)
    _stream[(triton.cdiv(n, 256),)](u, z, w, seed, n, BLOCK=256)
    offs = torch.arange(n, dtype=torch.int32)
    assert torch.equal(u, philox_uniform(seed, offs))  # bit for bit
    torch.testing.assert_close(z, philox_normal(seed, offs), atol=1e-5, rtol=1e-5)
    words = philox_words(seed, offs)
    assert torch.equal(w.to(torch.int64) & 0xFFFFFFFF, words[1] ^ words[3])


def test_philox_uniform_is_uniform():
    u = philox_uniform(7, torch.arange(200_000, dtype=torch.int32))
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    hist = torch.histc(u, bins=10, min=0.0, max=1.0) / u.numel()
    assert torch.allclose(hist, torch.full_like(hist, 0.1), atol=0.004)
    z = philox_normal(7, torch.arange(200_000, dtype=torch.int32))
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1.0) < 0.01


def test_backend_resolution():
    x = torch.zeros(3)
    assert backend.resolve("torch", x) == "torch"
    assert backend.resolve("auto", x) == "torch"  # CPU tensors never pick Triton by themselves
    assert backend.resolve("triton", x) == "triton"  # the interpreter is on in the tests (conftest)
    with pytest.raises(ConfigError, match="unknown kernel backend"):
        backend.resolve("cuda", x)


def test_seed_from_generator_is_deterministic():
    a = backend.seed_from(torch.Generator().manual_seed(3))
    b = backend.seed_from(torch.Generator().manual_seed(3))
    assert a == b and 0 <= a < 2**62


@pytest.mark.gpu
def test_seed_from_cuda_generator_needs_no_device_draw():
    g = torch.Generator(device="cuda").manual_seed(5)
    a, b = backend.seed_from(g), backend.seed_from(g)
    assert a != b and 0 <= a < 2**62
    assert backend.seed_from(torch.Generator(device="cuda").manual_seed(5)) == a  # deterministic
