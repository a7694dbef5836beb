"""Unit tests of the autoregressive family over a tiny test-local sequence net (embedding + GRU + linear) that
follows the sequence protocol: the loss against a hand-computed cross-entropy, pad and post-EOS masking,
incremental sampling (BOS, EOS, determinism, greedy at temperature 0) and conditioning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.generative.autoregressive import Autoregressive

V, BOS, EOS, PAD = 7, 0, 1, 2  # vocabulary of the toy models


class TinyGRU(nn.Module):
    """net(tokens (B, T), cond (B, C) | None, state) -> (logits (B, T, V), state); the condition is added to
    every input embedding, so it conditions every step."""

    def __init__(self, vocab: int = V, cond_dim: int = 0, hidden: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, hidden)
        self.cond = nn.Linear(cond_dim, hidden) if cond_dim else None
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens, cond=None, state=None):
        h = self.emb(tokens)  # (B, T, H)
        if self.cond is not None:
            h = h + self.cond(cond)[:, None, :]
        out, state = self.gru(h, state)
        return self.out(out), state


class AlwaysEOS(nn.Module):
    """A net that puts almost all mass on EOS after BOS."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.full((V,), -20.0).index_fill(0, torch.tensor([EOS]), 20.0))

    def forward(self, tokens, cond=None, state=None):
        return self.bias.expand(*tokens.shape, V), state


def _model(cond_dim: int = 0, **kw) -> Autoregressive:
    torch.manual_seed(0)
    return Autoregressive(TinyGRU(cond_dim=cond_dim), V, BOS, **kw)


def test_loss_equals_hand_computed_cross_entropy():
    model = _model()
    tokens = torch.tensor([[BOS, 3, 4, 5, 6], [BOS, 6, 5, 4, 3]])
    logits, _ = model.net(tokens[:, :-1])
    expected = F.cross_entropy(logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
    loss = model((tokens,))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(model.stats["bits_per_token"], expected.detach() / math.log(2))
    acc = (logits.argmax(-1) == tokens[:, 1:]).float().mean()
    torch.testing.assert_close(model.stats["accuracy"], acc)
    # log_prob is the summed log-likelihood of the same targets.
    torch.testing.assert_close(model.log_prob(tokens).sum(), -expected * 8)
    loss.backward()
    assert model.net.out.weight.grad is not None


def test_pad_and_tokens_after_eos_are_ignored():
    model = _model(eos_id=EOS, pad_id=PAD)
    tokens = torch.tensor([[BOS, 3, 4, EOS, PAD, PAD], [BOS, 5, 6, 3, 4, EOS]])
    logits, _ = model.net(tokens[:, :-1])
    targets = tokens[:, 1:]
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = F.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(model((tokens,)), expected)
    # Changing what follows an EOS (pads, or junk) changes nothing.
    junk = tokens.clone()
    junk[0, 4:] = torch.tensor([5, 6])
    torch.testing.assert_close(model.log_prob(junk), model.log_prob(tokens))
    # Without a pad id, EOS-filled tails are ignored in the same way.
    no_pad = Autoregressive(model.net, V, BOS, eos_id=EOS)
    filled = tokens.masked_fill(tokens == PAD, EOS)
    torch.testing.assert_close(no_pad.log_prob(filled), model.log_prob(tokens))


def test_sampling_starts_with_bos_and_respects_eos():
    model = _model(eos_id=EOS, pad_id=PAD, max_len=12)
    out = model.sample(32, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.long and out.shape[0] == 32 and 2 <= out.shape[1] <= 12
    assert torch.all(out[:, 0] == BOS)
    for row in out.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])
    # Without EOS the sequence always runs to max_len.
    plain = _model(max_len=9)
    assert plain.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 9)
    assert plain.sample(4, max_len=5).shape == (4, 5)


def test_sampling_stops_early_when_every_row_has_ended():
    model = Autoregressive(AlwaysEOS(), V, BOS, eos_id=EOS, max_len=50)
    out = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert out.shape == (8, 2) and torch.all(out[:, 1] == EOS)


def test_sampling_is_deterministic_with_a_generator():
    model = _model(eos_id=EOS, pad_id=PAD, max_len=10)
    kw = dict(temperature=0.8, top_k=5, top_p=0.9)
    a = model.sample(16, generator=torch.Generator().manual_seed(5), **kw)
    b = model.sample(16, generator=torch.Generator().manual_seed(5), **kw)
    c = model.sample(16, generator=torch.Generator().manual_seed(6), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_temperature_zero_is_greedy_and_incremental_decoding_matches_full_prefix():
    model = _model(max_len=8)
    out = model.sample(3, temperature=0.0)
    # Re-derive the greedy sequence with the whole prefix each step (no state).
    seq = torch.full((3, 1), BOS)
    for _ in range(7):
        logits, _ = model.net(seq)
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, seq)
    # Greedy output does not depend on the generator.
    assert torch.equal(model.sample(3, temperature=0.0, generator=torch.Generator().manual_seed(9)), out)


def test_conditional_path_labels_and_vectors():
    model = _model(cond_dim=3, num_classes=3, eos_id=EOS, pad_id=PAD, max_len=6)
    tokens = torch.tensor([[BOS, 3, 4, EOS], [BOS, 5, EOS, PAD]])
    y = torch.tensor([0, 2])
    assert torch.isfinite(model((tokens, y)))
    lp = model.log_prob(tokens, y)
    assert lp.shape == (2,) and not torch.allclose(lp, model.log_prob(tokens, (y + 1) % 3))
    assert torch.all(model.sample(4, cond=1, generator=torch.Generator().manual_seed(0))[:, 0] == BOS)
    with pytest.raises(ConfigError):
        model((tokens,))
    with pytest.raises(ConfigError):
        model.sample(2, cond=5)
    props = Autoregressive(TinyGRU(cond_dim=2), V, BOS, cond_dim=2)
    c = torch.randn(2, 2)
    assert torch.isfinite(props((tokens, c)))
    assert props.sample(3, cond=torch.tensor([0.1, 0.2]), max_len=4).shape == (3, 4)


def test_bad_arguments_raise_config_error():
    with pytest.raises(ConfigError):
        Autoregressive(TinyGRU(), V, bos_id=V)
    with pytest.raises(ConfigError):
        Autoregressive(TinyGRU(), V, BOS, max_len=1)
    model = _model()
    with pytest.raises(ConfigError):
        model((torch.tensor([[BOS]]),))
    with pytest.raises(ConfigError):
        model((torch.tensor([[0.0, 1.0]]),))
    with pytest.raises(ConfigError):
        model.sample(2, temperature=-1.0)


def test_autoregressive_decoder_is_a_vae_decoder_distribution():
    from shared.generative.autoregressive import AutoregressiveDecoder
    from shared.generative.vae import VAE
    from shared.nets.sequence import LSTMLM, SequenceEncoder

    torch.manual_seed(0)
    v, latent = 7, 4
    ar = Autoregressive(LSTMLM(v, 16, 1, cond_dim=latent), v, bos_id=1, eos_id=2, pad_id=0, max_len=8, cond_dim=latent)
    vae = VAE(SequenceEncoder(v, 16, 1, 16, pad_id=0), AutoregressiveDecoder(ar), 16, latent, likelihood="module")
    x = torch.tensor([[1, 3, 4, 2, 0], [1, 5, 2, 0, 0]])
    loss = vae((x,))
    loss.backward()
    assert torch.isfinite(loss) and vae.encoder.head.weight.grad is not None
    z = torch.randn(3, latent)
    greedy = vae.decoder.sample(z, temperature=0.0)
    assert torch.equal(greedy, vae.decoder.sample(z, temperature=0.0)) and greedy[:, 0].eq(1).all()
    assert vae.decoder.log_prob(x, torch.randn(2, latent)).shape == (2,)
