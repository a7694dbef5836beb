"""The autoregressive family: next-token prediction over a sequence net, exact log-likelihoods, and sampling.

p(x_1..x_T | c) = prod_t p(x_t | x_<t, c) (Bengio et al. 2003; Graves 2013 for RNN generators). The net follows the
sequence protocol of shared.nets.sequence: `net(tokens (B, T) long, cond (B, C) float | None, state=None) ->
(logits (B, T, V), state)`, where passing the state back with new tokens (B, 1) continues incrementally.
Sequences start with BOS; the training loss is teacher-forced next-token cross-entropy, ignoring `pad_id` and
everything after the first EOS (a sequence's probability ends at its EOS). The condition is a class label
(one-hot, `num_classes`) or a float property vector (`cond_dim`), given to the net as `cond`. Sampling decodes a
batch incrementally through the net's state with `shared.sampling.categorical.sample_categorical` (temperature,
top-k, nucleus), stopping when every row has emitted EOS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from shared.errors import ConfigError
from shared.generative.conditioning import condition_vector, condition_width, split_batch
from shared.sampling.categorical import sample_categorical


class Autoregressive(nn.Module):
    """Autoregressive sequence model over a net of the sequence protocol."""

    def __init__(
        self,
        net: nn.Module,
        vocab_size: int,
        bos_id: int,
        eos_id: int | None = None,
        pad_id: int | None = None,
        max_len: int = 128,
        num_classes: int = 0,
        cond_dim: int = 0,
    ):
        super().__init__()
        if vocab_size < 2:
            raise ConfigError(f"vocab_size={vocab_size} must be >= 2")
        for name, tok in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
            if tok is not None and not 0 <= tok < vocab_size:
                raise ConfigError(f"{name}={tok} is outside the vocabulary [0, {vocab_size}); fix the token ids")
        if max_len < 2:
            raise ConfigError(f"max_len={max_len} must be >= 2 (BOS plus at least one token)")
        self.cond_width = condition_width(num_classes, cond_dim)
        self.net = net
        self.vocab_size, self.bos_id, self.eos_id, self.pad_id = int(vocab_size), bos_id, eos_id, pad_id
        self.max_len = int(max_len)
        self.num_classes, self.cond_dim = int(num_classes), int(cond_dim)
        self.objectives: dict[str, int] = {"loss": 1}
        self.stats: dict[str, torch.Tensor] = {}

    def objective_parameters(self, name: str) -> list[nn.Parameter]:
        if name != "loss":
            raise ConfigError(f"the autoregressive model has one objective, 'loss'; got {name!r}")
        return list(self.parameters())

    def _device(self) -> torch.device:
        p = next(self.net.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def _cond(self, cond, n: int, device: torch.device, check_range: bool = False) -> torch.Tensor | None:
        return condition_vector(cond, self.num_classes, self.cond_dim, n, device, check_range=check_range)

    def _token_log_probs(self, tokens: torch.Tensor, c: torch.Tensor | None):
        """Teacher forcing: tokens (B, T) -> per-target log-probs (B, T-1), predicted ids (B, T-1), mask (B, T-1)."""
        if tokens.dim() != 2 or tokens.shape[1] < 2:
            raise ConfigError(f"tokens must be (B, T) with T >= 2 (BOS + tokens), got shape {tuple(tokens.shape)}")
        if tokens.dtype != torch.long:
            raise ConfigError(f"tokens must be int64 ids, got dtype {tokens.dtype}")
        inputs, targets = tokens[:, :-1], tokens[:, 1:]  # (B, T-1) each
        logits, _ = self.net(inputs, c)  # (B, T-1, V)
        logp = F.log_softmax(logits.float(), dim=-1)
        target_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        mask = torch.ones_like(targets, dtype=torch.bool)
        if self.pad_id is not None:
            mask &= targets != self.pad_id
        if self.eos_id is not None:
            # Targets after the first EOS are not part of the sequence (the EOS itself is).
            is_eos = (targets == self.eos_id).long()
            mask &= (is_eos.cumsum(dim=1) - is_eos) == 0
        return target_logp, logp.argmax(dim=-1), mask

    def forward(self, batch, objective: str = "loss") -> torch.Tensor:
        """batch (tokens,) or (tokens, y), tokens (B, T) long starting with BOS -> mean next-token NLL (nats)
        over the counted targets. stats: `accuracy` (greedy next-token), `bits_per_token`."""
        if objective != "loss":
            raise ConfigError(f"the autoregressive model has one objective, 'loss'; got {objective!r}")
        tokens, y = split_batch(batch)
        c = self._cond(y, tokens.shape[0], tokens.device)
        target_logp, pred, mask = self._token_log_probs(tokens, c)
        count = mask.sum().clamp(min=1)
        loss = -(target_logp * mask).sum() / count
        correct = ((pred == tokens[:, 1:]) & mask).sum()
        self.stats = {"accuracy": (correct / count).detach(), "bits_per_token": loss.detach() / math.log(2)}
        return loss

    def log_prob(self, tokens: torch.Tensor, cond=None) -> torch.Tensor:
        """log p(tokens | cond) (B,) in nats: the sum over targets up to the first EOS, pads excluded."""
        c = self._cond(cond, tokens.shape[0], tokens.device)
        target_logp, _, mask = self._token_log_probs(tokens, c)
        return (target_logp * mask).sum(dim=1)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        cond=None,
        max_len: int | None = None,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n sequences (n, L) long, L <= max_len (default self.max_len) including the leading BOS.

        Batched incremental decoding: the net is fed the whole prefix once, then one token per step with its
        state. Rows that have emitted EOS are filled with pad (or EOS when there is no pad id); decoding stops
        early once every row has finished. All randomness comes from `generator`; temperature 0 is greedy.
        """
        if n < 1:
            raise ConfigError(f"n={n} must be >= 1 samples")
        length = self.max_len if max_len is None else int(max_len)
        if length < 2:
            raise ConfigError(f"max_len={length} must be >= 2 (BOS plus at least one token)")
        device = self._device()
        c = self._cond(cond, n, device, check_range=True)
        fill = self.pad_id if self.pad_id is not None else self.eos_id
        tokens = torch.full((n, 1), self.bos_id, dtype=torch.long, device=device)  # (n, 1)
        out = [tokens]
        finished = torch.zeros(n, dtype=torch.bool, device=device)
        logits, state = self.net(tokens, c)  # (n, 1, V)
        for step in range(length - 1):
            nxt = sample_categorical(
                logits[:, -1], temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )  # (n,)
            if self.eos_id is not None:
                nxt = torch.where(finished, torch.full_like(nxt, fill), nxt)
                finished |= nxt == self.eos_id
            out.append(nxt[:, None])
            if step == length - 2 or (self.eos_id is not None and bool(finished.all())):
                break
            logits, state = self.net(nxt[:, None], c, state)  # (n, 1, V)
        return torch.cat(out, dim=1)


class AutoregressiveDecoder(nn.Module):
    """An `Autoregressive` model as the decoder distribution of a sequence VAE (`VAE(likelihood="module")`).

    The VAE's latent code (with any condition appended), zc (B, latent + C), is the autoregressive model's float
    condition, so the model must be built with `cond_dim = latent + C` (Bowman et al. 2016, "Generating Sentences
    from a Continuous Space"; Gomez-Bombarelli et al. 2018 for SMILES). `log_prob` is the teacher-forced sequence
    log-likelihood; `sample` decodes with the given temperature (0 = greedy, the usual reconstruction decoder).
    """

    def __init__(self, model: Autoregressive, temperature: float = 1.0):
        super().__init__()
        if model.cond_dim < 1:
            raise ConfigError("AutoregressiveDecoder needs an Autoregressive model built with cond_dim >= 1")
        self.model, self.temperature = model, float(temperature)

    def log_prob(self, x: torch.Tensor, zc: torch.Tensor) -> torch.Tensor:
        """x (B, T) token ids starting with BOS, zc (B, cond_dim) -> log p(x | zc) (B,) in nats."""
        return self.model.log_prob(x, zc)

    def sample(
        self, zc: torch.Tensor, generator: torch.Generator | None = None, temperature: float | None = None
    ) -> torch.Tensor:
        """zc (B, cond_dim) -> token ids (B, L), L <= max_len, starting with BOS."""
        t = self.temperature if temperature is None else temperature
        return self.model.sample(zc.shape[0], cond=zc, temperature=t, generator=generator)
