"""Token sequence networks: two causal language models with one protocol, and a bidirectional encoder.

The causal models (`LSTMLM`, `TransformerLM`) share `forward(tokens (B, T) long, cond (B, cond_dim) | None, state)
-> (logits (B, T, V), state)`. With `state=None` a whole sequence is processed from its start; passing back the
returned state with the next tokens (usually (B, 1)) continues the same sequence incrementally, giving the logits
the full call would give (the LSTM carries (h, c); the transformer carries a key/value cache per layer), which makes
autoregressive sampling O(T) network calls of one token each. An optional condition vector (properties, a latent
code) is projected and added to every input embedding, and for the LSTM also sets the initial state; it must be
passed again on every incremental call. `SequenceEncoder` reads padded sequences with a bidirectional GRU into a
fixed-size feature vector (for VAE encoders over SMILES and the like).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from shared.errors import ConfigError

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layers, B, d_model)
KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (k, v), each (B, heads, T_past, d_head)


def _check_cond(cond: torch.Tensor | None, cond_dim: int, batch: int) -> None:
    if cond_dim == 0 and cond is not None:
        raise ValueError("this model was built with cond_dim=0; pass cond=None")
    if cond_dim > 0 and (cond is None or cond.shape != (batch, cond_dim)):
        got = None if cond is None else tuple(cond.shape)
        raise ValueError(f"this model needs cond of shape ({batch}, {cond_dim}) on every call, got {got}")


def _check_sizes(who: str, **sizes: int) -> None:
    bad = {k: v for k, v in sizes.items() if v < 1}
    if bad:
        raise ConfigError(f"{who} sizes must be positive, got {bad}")


class LSTMLM(nn.Module):
    """Causal LSTM language model: embedding (+ projected cond) -> stacked LSTM -> LayerNorm -> Linear to logits.

    The condition also sets the initial (h, c) of every layer through a Linear, so it shapes the whole sequence.
    """

    def __init__(
        self, vocab_size: int, d_model: int = 256, n_layers: int = 2, dropout: float = 0.0, cond_dim: int = 0
    ) -> None:
        super().__init__()
        _check_sizes("LSTMLM", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers)
        self.vocab_size, self.d_model, self.n_layers, self.cond_dim = vocab_size, d_model, n_layers, cond_dim
        self.embed = nn.Embedding(vocab_size, d_model)
        self.lstm = nn.LSTM(d_model, d_model, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        if cond_dim > 0:
            self.cond_in = nn.Linear(cond_dim, d_model)  # added to every input embedding
            self.cond_state = nn.Linear(cond_dim, 2 * n_layers * d_model)  # initial (h, c)

    def forward(
        self, tokens: torch.Tensor, cond: torch.Tensor | None = None, state: LSTMState | None = None
    ) -> tuple[torch.Tensor, LSTMState]:
        """tokens (B, T) long, cond (B, cond_dim) | None, state (h, c) | None -> (logits (B, T, V), (h, c))."""
        b = tokens.shape[0]
        _check_cond(cond, self.cond_dim, b)
        x = self.embed(tokens)  # (B, T, D)
        if cond is not None:
            x = x + self.cond_in(cond)[:, None, :]
            if state is None:
                hc = self.cond_state(cond).view(b, 2, self.n_layers, self.d_model).permute(1, 2, 0, 3)
                state = (torch.tanh(hc[0]).contiguous(), hc[1].contiguous())  # each (L, B, D)
        out, state = self.lstm(self.drop(x), state)  # (B, T, D)
        return self.head(self.norm(self.drop(out))), state


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional key/value cache of earlier positions."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.dropout = n_heads, dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)  # (B, H, T, Dh)
        past = 0
        if cache is not None:
            past = cache[0].shape[2]
            k = torch.cat([cache[0], k], dim=2)  # (B, H, past + T, Dh)
            v = torch.cat([cache[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        if past == 0:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=t > 1)
        elif t == 1:  # one new token sees everything before it
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # new query i (absolute position past + i) may see keys 0..past + i
            allowed = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(diagonal=past)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        out = out.transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.proj(out), (k, v)


class TransformerBlock(nn.Module):
    """Pre-norm block (GPT-2, Radford et al. 2019): x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cache):
        a, cache = self.attn(self.ln1(x), cache)
        x = x + self.drop(a)
        return x + self.mlp(self.ln2(x)), cache


class TransformerLM(nn.Module):
    """Causal decoder-only transformer: token + learned position (+ projected cond) embeddings, pre-norm blocks,
    final LayerNorm and a Linear to logits. The state is the per-layer key/value cache."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        max_len: int = 128,
        dropout: float = 0.0,
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        _check_sizes(
            "TransformerLM", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=max_len
        )
        if d_model % n_heads:
            raise ConfigError(f"TransformerLM d_model={d_model} must be divisible by n_heads={n_heads}")
        self.vocab_size, self.max_len, self.cond_dim = vocab_size, max_len, cond_dim
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.cond_in = nn.Linear(cond_dim, d_model) if cond_dim > 0 else None
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        # GPT-2 initialisation: N(0, 0.02) weights, zero biases.
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(
        self, tokens: torch.Tensor, cond: torch.Tensor | None = None, state: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """tokens (B, T) long, cond (B, cond_dim) | None, state KV cache | None -> (logits (B, T, V), KV cache)."""
        b, t = tokens.shape
        _check_cond(cond, self.cond_dim, b)
        past = 0 if state is None else state[0][0].shape[2]
        if past + t > self.max_len:
            raise ConfigError(
                f"sequence length {past + t} exceeds the model's max_len {self.max_len}; "
                "build the model with a larger max_len or generate shorter sequences"
            )
        positions = torch.arange(past, past + t, device=tokens.device)
        x = self.tok(tokens) + self.pos(positions)[None]  # (B, T, D)
        if self.cond_in is not None:
            x = x + self.cond_in(cond)[:, None, :]
        x = self.drop(x)
        new_state: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if state is None else state[i])
            new_state.append(kv)
        return self.head(self.norm(x)), new_state


class SequenceEncoder(nn.Module):
    """Bidirectional GRU over right-padded token sequences -> (B, out_dim) features.

    Lengths are the number of non-`pad_id` tokens per row (padding must come only at the end); the final forward
    and backward hidden states of the last layer are concatenated and mapped by a Linear.
    """

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, out_dim: int, pad_id: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        _check_sizes("SequenceEncoder", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, out_dim=out_dim)
        if not 0 <= pad_id < vocab_size:
            raise ConfigError(f"SequenceEncoder pad_id={pad_id} must be a token id in 0..{vocab_size - 1}")
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.gru = nn.GRU(
            d_model, d_model, n_layers, batch_first=True, bidirectional=True, dropout=dropout if n_layers > 1 else 0.0
        )
        self.head = nn.Linear(2 * d_model, out_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) long, right-padded with pad_id -> (B, out_dim)."""
        lengths = (tokens != self.pad_id).sum(dim=1).clamp(min=1).cpu()  # pack_padded_sequence wants CPU lengths
        packed = pack_padded_sequence(self.embed(tokens), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h (n_layers * 2, B, D), last layer's two directions at the end
        return self.head(torch.cat([h[-2], h[-1]], dim=1))  # (B, out_dim)
