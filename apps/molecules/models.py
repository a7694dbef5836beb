"""The molecules app's two models, built from the shared core, and their files.

- Language model: `shared.generative.Autoregressive` over an LSTM or transformer (`shared.nets.sequence`) reading
  SMILES or SELFIES tokens, conditioned on the 8-wide property vector of `conditioning.py` (Segler et al. 2018,
  "Generating focused molecule libraries..." for the CharRNN recipe MOSES benchmarks).
- VAE: `shared.generative.VAE` with a bidirectional GRU encoder (`SequenceEncoder`) and an LSTM decoder that
  reads the latent code as its condition (`AutoregressiveDecoder`; Gomez-Bombarelli et al. 2018).

A trained model is one folder: `model.safetensors` (weights) and `model.json` (its kind, sizes, vocabulary and
property scaler), loaded with safetensors only, so a model file handed to us is never unpickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from apps.molecules.conditioning import COND_DIM, PropertyScaler
from apps.molecules.config import LMConfig, VAEConfig
from apps.molecules.tokens import Tokenizer, Vocab
from shared.atomic import atomic_path, atomic_write_json
from shared.config import from_dict, to_dict
from shared.errors import CheckpointError
from shared.generative.autoregressive import Autoregressive, AutoregressiveDecoder
from shared.generative.vae import VAE
from shared.nets.sequence import LSTMLM, SequenceEncoder, TransformerLM


def build_lm(cfg: LMConfig, vocab_size: int, max_len: int, pad_id: int, bos_id: int, eos_id: int) -> Autoregressive:
    """The conditional language model: tokens (B, T) + cond (B, 8) -> next-token logits."""
    if cfg.arch == "lstm":
        net = LSTMLM(vocab_size, cfg.d_model, cfg.n_layers, cfg.dropout, cond_dim=COND_DIM)
    else:
        net = TransformerLM(vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, max_len, cfg.dropout, COND_DIM)
    return Autoregressive(net, vocab_size, bos_id, eos_id, pad_id, max_len, cond_dim=COND_DIM)


def build_vae(cfg: VAEConfig, vocab_size: int, max_len: int, pad_id: int, bos_id: int, eos_id: int) -> VAE:
    """The sequence VAE: tokens (B, T) -> q(z | x) (B, latent) -> p(x | z) autoregressive."""
    encoder = SequenceEncoder(vocab_size, cfg.d_model, cfg.n_layers, out_dim=cfg.d_model, pad_id=pad_id)
    decoder_net = LSTMLM(vocab_size, cfg.d_model, cfg.n_layers, cond_dim=cfg.latent_dim)
    decoder = AutoregressiveDecoder(
        Autoregressive(decoder_net, vocab_size, bos_id, eos_id, pad_id, max_len, cond_dim=cfg.latent_dim)
    )
    return VAE(encoder, decoder, cfg.d_model, cfg.latent_dim, likelihood="module", beta=cfg.beta)


@dataclass
class Bundle:
    """A trained model with everything needed to use it."""

    kind: str  # "lm" | "vae"
    model: torch.nn.Module
    vocab: Vocab
    tokenizer: Tokenizer
    max_len: int
    config: LMConfig | VAEConfig
    scaler: PropertyScaler | None = None

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        meta = {
            "kind": self.kind,
            "representation": self.tokenizer.kind,
            "max_len": self.max_len,
            "config": to_dict(self.config),
            "vocab": self.vocab.to_dict(),
            "scaler": None if self.scaler is None else self.scaler.to_dict(),
        }
        atomic_write_json(folder / "model.json", meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> Bundle:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "model.json").read_text())
            kind = meta["kind"]
            vocab = Vocab.from_dict(meta["vocab"])
            cfg_cls = LMConfig if kind == "lm" else VAEConfig
            cfg = from_dict(cfg_cls, meta["config"])
            build = build_lm if kind == "lm" else build_vae
            model = build(cfg, len(vocab), meta["max_len"], vocab.pad_id, vocab.bos_id, vocab.eos_id)
            model.load_state_dict(load_file(str(folder / "model.safetensors")))
        except FileNotFoundError as e:
            raise CheckpointError(f"no trained model in {folder} ({e.filename} missing): run `train` first") from None
        except (KeyError, ValueError, RuntimeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{folder} is not a molecules model of this version ({str(e)[:120]})") from None
        scaler = PropertyScaler.from_dict(meta["scaler"]) if meta.get("scaler") else None
        return cls(
            kind, model.to(device).eval(), vocab, Tokenizer(meta["representation"]), meta["max_len"], cfg, scaler
        )
