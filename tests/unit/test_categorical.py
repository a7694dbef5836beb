"""Unit tests for categorical sampling: top-k / top-p filters, exactness of the draw in distribution (chi-square),
greedy temperature 0 and determinism with a generator."""

import pytest
import torch
from scipy.stats import chi2

from shared.errors import ConfigError
from shared.sampling.categorical import filter_logits, sample_categorical


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_top_k_keeps_exactly_k_even_with_ties():
    logits = torch.randn(4, 6, 20, generator=_gen())
    out = filter_logits(logits, top_k=5)
    kept = torch.isfinite(out)
    assert (kept.sum(-1) == 5).all()
    # The kept values are the k largest, unchanged.
    assert torch.equal(
        torch.sort(out[kept].reshape(4, 6, 5), -1).values, torch.sort(torch.topk(logits, 5).values, -1).values
    )
    ties = torch.zeros(3, 10)
    assert (torch.isfinite(filter_logits(ties, top_k=4)).sum(-1) == 4).all()
    assert torch.equal(filter_logits(logits, top_k=50), logits)  # k >= V: no filter


@pytest.mark.parametrize("top_p,n_kept", [(0.05, 1), (0.45, 1), (0.75, 2), (0.85, 3), (0.97, 4), (1.0, 5)])
def test_top_p_keeps_the_nucleus(top_p, n_kept):
    probs = torch.tensor([0.5, 0.3, 0.15, 0.04, 0.01], dtype=torch.float64)
    perm = torch.tensor([3, 0, 4, 1, 2])  # shuffle so that sorting matters
    logits = torch.log(probs[perm]).expand(2, 5)
    kept = torch.isfinite(filter_logits(logits, top_p=top_p))
    expected = torch.zeros(5, dtype=torch.bool)
    expected[torch.argsort(probs[perm], descending=True)[:n_kept]] = True
    assert torch.equal(kept, expected.expand(2, 5))


def test_top_p_always_keeps_the_top_token_and_does_not_modify_input():
    logits = torch.tensor([[10.0, 0.0, 0.0]])
    before = logits.clone()
    out = filter_logits(logits, top_k=2, top_p=1e-6)
    assert torch.isfinite(out).tolist() == [[True, False, False]]
    assert torch.equal(logits, before)


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.6, 0, 1.0), (1.7, 4, 1.0), (1.0, 0, 0.8)])
def test_empirical_frequencies_match_softmax(temperature, top_k, top_p):
    n, n_cat = 100_000, 8
    logits = torch.randn(n_cat, generator=_gen(1)) * 1.5
    draws = sample_categorical(logits.expand(n, n_cat), temperature, top_k, top_p, generator=_gen(2))
    assert draws.shape == (n,) and draws.dtype == torch.int64
    probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p).double(), -1)
    counts = torch.bincount(draws, minlength=n_cat).double()
    assert (counts[probs == 0] == 0).all()  # filtered tokens are never drawn
    support = probs > 0
    expected = n * probs[support]
    stat = ((counts[support] - expected) ** 2 / expected).sum().item()
    df = int(support.sum()) - 1
    bound = chi2.ppf(0.999, df) if df > 0 else 0.0
    print(f"chi2={stat:.2f} df={df} bound={bound:.2f}")
    assert stat <= bound


def test_temperature_zero_is_argmax_and_generator_is_deterministic():
    logits = torch.randn(5, 7, 11, generator=_gen(3))
    assert torch.equal(sample_categorical(logits, temperature=0.0), logits.argmax(-1))
    a = sample_categorical(logits, generator=_gen(4))
    b = sample_categorical(logits, generator=_gen(4))
    c = sample_categorical(logits, generator=_gen(5))
    assert a.shape == (5, 7) and torch.equal(a, b) and not torch.equal(a, c)
    half = sample_categorical(logits.to(torch.bfloat16), top_k=3, generator=_gen(4))
    assert half.shape == (5, 7) and (half < 11).all()


def test_bad_arguments_raise_config_error():
    logits = torch.zeros(3)
    for kwargs in ({"temperature": -1.0}, {"top_k": -1}, {"top_p": 0.0}, {"top_p": 1.5}):
        with pytest.raises(ConfigError):
            sample_categorical(logits, **kwargs)
    with pytest.raises(ConfigError):
        filter_logits(torch.tensor(1.0))


def test_sample_categorical_runs_the_fused_op_and_keeps_ties():
    from shared.kernels.categorical import categorical_sample

    logits = torch.randn(6, 9, generator=_gen(6))
    a = sample_categorical(logits, 0.8, 3, 0.9, generator=_gen(7))
    assert torch.equal(a, categorical_sample(logits, 0.8, 3, 0.9, generator=_gen(7), backend="torch"))
    # top-k keeps every token tied at the k-th largest logit (filter_logits would keep exactly k)
    tied = torch.tensor([2.0, 2.0, 2.0, 0.0]).expand(3000, 4)
    counts = torch.bincount(sample_categorical(tied, top_k=1, generator=_gen(8)), minlength=4)
    assert (counts[:3] > 800).all() and counts[3] == 0
    with pytest.raises(ConfigError, match="backend"):
        sample_categorical(logits, backend="cuda")
