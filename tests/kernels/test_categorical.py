"""The fused categorical sampling kernel (interpreter on CPU) against its reference fed the same Philox stream,
the reference's filters and draw against closed forms, the dispatcher's backends and errors, and the bench rows."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import chi2

from shared.errors import ConfigError
from shared.kernels import backend as kb
from shared.kernels.categorical import categorical_kept_ref, categorical_sample, categorical_sample_ref
from shared.kernels.philox import philox_uniform

triton = pytest.importorskip("triton")

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
FILTERS = list(itertools.product((0, 1, 5), (1.0, 0.9, 0.5)))  # (top_k, top_p)
# Every vocabulary size with every filter pair and dtype; rows and temperature cycle with periods 7 and 5 (coprime
# to the 3 dtypes and 9 filter pairs), so each of their values meets every dtype and several filters.
CASES = [
    (n_cat, top_k, top_p, n_rows, temperature, dtype)
    for (n_cat, (top_k, top_p), dtype), n_rows, temperature in zip(
        itertools.product((1, 7, 97, 300), FILTERS, DTYPES),
        itertools.cycle((1, 5, 33, 5, 1, 7, 5)),
        itertools.cycle((0.7, 1.3, 1.0, 1.3, 0.7)),
    )
]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _stream(seed, n_rows, n_cat):
    """The kernel's noise: u[r, c] = tl.rand(seed, r * V + c)."""
    return philox_uniform(seed, torch.arange(n_rows * n_cat, dtype=torch.int32).view(n_rows, n_cat))


def _logits(n_rows, n_cat, dtype, seed=0):
    return (torch.randn(n_rows, n_cat, generator=_gen(seed)) * 2.5).to(dtype)


def _kept_oracle(logits, temperature, top_k, top_p):
    """The tie rule by definition, O(V^2) in float64: keep i iff logit_i >= the k-th largest and the softmax mass of
    the strictly larger kept logits is < top_p. logits (V,) -> (V,) bool."""
    x = logits.double()
    keep = torch.ones_like(x, dtype=torch.bool)
    if 0 < top_k < len(x):
        keep = x >= torch.sort(x, descending=True).values[top_k - 1]
    p = torch.softmax((x / temperature).masked_fill(~keep, float("-inf")), -1)
    if top_p < 1.0:
        above = torch.stack([(p * (x > xi)).sum() for xi in x])
        keep = keep & (above < top_p)
    return keep


def _case_id(value):
    return str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else None


@pytest.mark.parametrize("n_cat,top_k,top_p,n_rows,temperature,dtype", CASES, ids=_case_id)
def test_kernel_draws_the_reference_index(n_cat, top_k, top_p, n_rows, temperature, dtype):
    logits = _logits(n_rows, n_cat, dtype, seed=n_cat)
    got = categorical_sample(logits, temperature, top_k, top_p, generator=_gen(1), backend="triton")
    seed = kb.seed_from(_gen(1))  # the Philox key the dispatcher drew
    want = categorical_sample_ref(logits, temperature, top_k, top_p, _stream(seed, n_rows, n_cat))
    assert got.dtype == torch.int64 and torch.equal(got, want)  # exact: same noise, same thresholds


@pytest.mark.parametrize("dtype", DTYPES, ids=_case_id)
@pytest.mark.parametrize("n_cat", [1, 7, 97, 300])
def test_kernel_temperature_zero_is_argmax(n_cat, dtype):
    logits = _logits(5, n_cat, dtype)
    logits[0] = 0.0  # all tied: the first index, like torch.argmax
    got = categorical_sample(logits, 0.0, 5, 0.5, backend="triton")
    assert torch.equal(got, torch.argmax(logits, dim=-1))


def test_kernel_ties_negative_zero_and_masked_logits():
    # bf16-like ties at the thresholds, -0.0 next to +0.0, and -inf logits that must never be drawn
    row = torch.tensor([1.0, 2.0, 2.0, -0.0, 0.0, float("-inf"), 2.0, 1.0, -3.0, float("-inf"), 0.0])
    logits = row.repeat(16, 1)
    for top_k, top_p in [(2, 1.0), (4, 1.0), (6, 0.7), (0, 0.99), (0, 0.2)]:
        got = categorical_sample(logits, 1.0, top_k, top_p, generator=_gen(top_k), backend="triton")
        want = categorical_sample_ref(logits, 1.0, top_k, top_p, _stream(kb.seed_from(_gen(top_k)), 16, 11))
        assert torch.equal(got, want)
        assert torch.isfinite(row[got]).all()
        assert _kept_oracle(row, 1.0, top_k, top_p)[got].all()


def test_kernel_on_strided_and_batched_logits():
    base = _logits(3, 4 * 9, torch.float32).view(3, 4, 9)
    logits = base[:, 1]  # (3, 9), row stride 36
    got = categorical_sample(logits, 0.9, 3, 0.8, generator=_gen(2), backend="triton")
    want = categorical_sample_ref(logits, 0.9, 3, 0.8, _stream(kb.seed_from(_gen(2)), 3, 9))
    assert torch.equal(got, want)
    got64 = categorical_sample(logits.double(), 0.9, 3, 0.8, generator=_gen(2), backend="triton")
    assert torch.equal(got64, want)  # float64 logits are computed in float32 too
    batched = categorical_sample(base, 1.0, generator=_gen(3), backend="triton")
    assert batched.shape == (3, 4) and (batched < 9).all()


@pytest.mark.parametrize(
    "logits,top_k,top_p,kept",
    [
        ([2.0, 2.0, 1.0, 1.0, 1.0, 0.0], 3, 1.0, [1, 1, 1, 1, 1, 0]),  # ties at the k-th value all stay
        ([2.0, 2.0, 1.0, 1.0, 1.0, 0.0], 2, 1.0, [1, 1, 0, 0, 0, 0]),
        ([0.0, 0.0, -0.6931471805599453], 0, 0.3, [1, 1, 0]),  # p = (0.4, 0.4, 0.2): the tied pair stays
        ([5.0, 0.0, 0.0], 2, 1e-6, [1, 0, 0]),  # the top token always stays
    ],
)
def test_filters_follow_the_tie_rule(logits, top_k, top_p, kept):
    x = torch.tensor(logits)
    _, keep = categorical_kept_ref(x[None], 1.0, top_k, top_p)
    assert keep[0].tolist() == [bool(k) for k in kept]
    assert torch.equal(_kept_oracle(x, 1.0, top_k, top_p), keep[0])


@pytest.mark.parametrize(
    "temperature,top_k,top_p", [(1.0, 0, 1.0), (0.6, 0, 1.0), (1.7, 3, 1.0), (1.0, 0, 0.85), (0.8, 4, 0.6)]
)
def test_reference_frequencies_match_the_filtered_softmax(temperature, top_k, top_p):
    n = 100_000
    probs = torch.tensor([0.04, 0.5, 0.01, 0.15, 0.3], dtype=torch.float64)
    logits = torch.log(probs).float()
    draws = categorical_sample_ref(logits.expand(n, 5), temperature, top_k, top_p, torch.rand(n, 5, generator=_gen()))
    # closed form: tempered probabilities p^(1/T), renormalised over the oracle's kept set
    keep = _kept_oracle(logits, temperature, top_k, top_p)
    want = (probs ** (1.0 / temperature)) * keep
    want = want / want.sum()
    counts = torch.bincount(draws, minlength=5).double()
    assert (counts[~keep] == 0).all()  # filtered tokens are never drawn
    stat = ((counts[keep] - n * want[keep]) ** 2 / (n * want[keep])).sum().item()
    df = int(keep.sum()) - 1
    assert stat <= (chi2.ppf(0.999, df) if df > 0 else 1e-9)


def test_reference_guards_zero_uniforms():
    logits = torch.tensor([[0.0, -1.0, float("-inf")]])
    u = torch.zeros(1, 3)  # E = -log(0) would be inf; the clamp keeps the race finite
    assert categorical_sample_ref(logits, 1.0, 0, 1.0, u).item() == 0


def test_dispatcher_torch_backend_is_deterministic_and_auto_runs_it_on_cpu():
    logits = _logits(4, 6 * 11, torch.float32).view(4, 6, 11)
    a = categorical_sample(logits, 0.8, 4, 0.9, generator=_gen(4), backend="torch")
    b = categorical_sample(logits, 0.8, 4, 0.9, generator=_gen(4), backend="torch")
    c = categorical_sample(logits, 0.8, 4, 0.9, generator=_gen(5), backend="torch")
    assert a.shape == (4, 6) and a.dtype == torch.int64 and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(categorical_sample(logits, 0.8, 4, 0.9, generator=_gen(4)), a)  # "auto" on CPU = torch
    u = torch.rand(24, 11, generator=_gen(4))  # the torch path's noise
    assert torch.equal(categorical_sample_ref(logits.view(24, 11), 0.8, 4, 0.9, u).view(4, 6), a)
    assert torch.equal(categorical_sample(logits, 0.0), logits.argmax(-1))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"backend": "cuda"}, "unknown kernel backend"),
    ],
)
def test_dispatcher_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        categorical_sample(torch.zeros(2, 3), **kwargs)


@pytest.mark.parametrize("logits", [torch.tensor(1.0), torch.zeros(3, 0), torch.zeros(2, 3, dtype=torch.long)])
def test_dispatcher_rejects_bad_logits(logits):
    with pytest.raises(ConfigError, match="logits"):
        categorical_sample(logits)


def test_dispatcher_rejects_vocabularies_too_long_for_the_kernel():
    with pytest.raises(ConfigError, match="backend 'torch'"):
        categorical_sample(torch.zeros(1, 65537), backend="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=_case_id)
def test_kernel_on_cuda_matches_the_reference(dtype):
    n_rows, n_cat = 512, 1000
    logits = (torch.randn(n_rows, n_cat, device="cuda") * 3.0).to(dtype)
    for temperature, top_k, top_p in [(0.0, 0, 1.0), (1.0, 0, 1.0), (0.7, 50, 1.0), (1.3, 0, 0.9), (1.0, 20, 0.5)]:
        got = categorical_sample(logits, temperature, top_k, top_p, generator=_gen(7), backend="triton")
        u = _stream(kb.seed_from(_gen(7)), n_rows, n_cat).cuda()
        want = categorical_sample_ref(logits, temperature, top_k, top_p, u)
        # exp / log are approximate on the GPU: a near-tie may rarely flip, but the draw stays in the kept set
        assert (got == want).float().mean().item() >= 0.995
        if temperature > 0:
            _, keep = categorical_kept_ref(logits, temperature, top_k, top_p)
            assert keep.gather(1, got[:, None]).float().mean().item() >= 0.995


def test_bench_rows_run_tiny_on_cpu():
    from benchmarks import kernel_categorical

    rows = kernel_categorical.rows(torch.device("cpu"), None, tiny=True)
    assert rows and all(r["ours_s"] > 0 and r["peer_s"] > 0 and r["name"] == kernel_categorical.NAME for r in rows)
