"""Sampling molecules from a trained model: unconditional batches for the benchmark, batches near property
targets (conditioning, stratified over ranges, then importance re-ranking), and the VAE's latent-space tools
(reconstruction, neighbourhood sampling, interpolation).

All randomness comes from one `torch.Generator` seeded by the caller, so a sample is reproducible.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from apps.molecules import chem
from apps.molecules.conditioning import Target, rerank, target_values, unconditional
from apps.molecules.models import Bundle
from shared.errors import ConfigError
from shared.sampling.interpolation import interpolation_path


def decode(bundle: Bundle, ids: torch.Tensor) -> list[str]:
    """Token ids (N, L) -> SMILES strings ('' where the tokens do not form a string the tokenizer can join)."""
    out = []
    for toks in bundle.vocab.decode(ids.cpu()):
        try:
            out.append(bundle.tokenizer.join(toks))
        except Exception:  # a SELFIES decoder error or similar: an invalid sample, counted by the metrics
            out.append("")
    return out


@torch.no_grad()
def sample_lm(
    bundle: Bundle,
    n: int,
    cond_fn: Callable[[int], torch.Tensor] = unconditional,
    temperature: float = 1.0,
    top_k: int = 0,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "sampling",
) -> list[str]:
    """n raw samples (valid or not) from the language model; cond_fn(m) -> (m, 8) condition for a batch of m."""
    if bundle.kind != "lm":
        raise ConfigError(f"sampling needs the language model, got a {bundle.kind} model")
    device = next(bundle.model.parameters()).device
    out: list[str] = []
    with tqdm(total=n, desc=desc, disable=not progress, unit="mol", dynamic_ncols=True) as bar:
        while len(out) < n:
            m = min(batch_size, n - len(out))
            ids = bundle.model.sample(
                m, cond=cond_fn(m).to(device), temperature=temperature, top_k=top_k, generator=generator
            )
            out += decode(bundle, ids)
            bar.update(m)
    return out


def valid_unique(smiles: Sequence[str]) -> list[str]:
    """Canonical SMILES of the valid, single-fragment samples, first occurrence kept, order preserved."""
    seen, out = set(), []
    for s in smiles:
        m = chem.mol(s)
        if m is None or chem.fragments(m) != 1:
            continue
        c = chem.canonical(s)
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


@dataclass
class TargetedSample:
    """Molecules generated near property targets."""

    smiles: list[str]  # canonical, valid, unique
    props: np.ndarray  # (n, 4) logp, sa, qed, weight
    drawn: int  # raw samples drawn
    valid_fraction: float  # valid fraction of the raw draws
    ess: float | None  # effective sample size of the re-ranking weights (None without re-ranking)


def sample_near(
    bundle: Bundle,
    targets: Sequence[Target],
    n: int,
    rerank_pool: int = 4,
    temperature: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    max_draws: int | None = None,
) -> TargetedSample:
    """n valid unique molecules conditioned on `targets`; with rerank_pool > 1, a pool of rerank_pool * n valid
    molecules is drawn and n are picked from it by importance resampling toward the targets. Gives up after
    max_draws raw samples (default 50 per wanted molecule), returning fewer molecules with a warning."""
    if bundle.scaler is None:
        raise ConfigError("this model was trained without properties; retrain with the default --models lm")
    want = n * max(1, rerank_pool)
    max_draws = max_draws or 50 * want

    def cond_fn(m: int) -> torch.Tensor:
        return bundle.scaler.cond(target_values(targets, m, generator))

    pool: list[str] = []
    drawn = n_valid = 0
    while len(pool) < want and drawn < max_draws:
        rate = len(pool) / drawn if drawn else 1.0  # draws still needed, inflated by the valid rate seen so far
        m = int(min(4 * want, max_draws - drawn, (want - len(pool)) / max(rate, 0.05) * 1.1)) + 16
        raw = sample_lm(
            bundle, m, cond_fn, temperature, top_k, generator=generator, progress=progress, desc="targeted sampling"
        )
        drawn += m
        n_valid += sum(chem.mol(s) is not None for s in raw)
        pool = valid_unique(pool + raw)
    if not pool:
        raise ConfigError(f"no valid molecule in {drawn} draws; the model is not trained enough")
    if len(pool) < want:  # a barely trained model: keep the proportions, return fewer molecules
        warnings.warn(f"only {len(pool)} valid molecules in {drawn} draws (wanted {want})", stacklevel=2)
        n = max(1, len(pool) // max(1, rerank_pool))
    valid_fraction = n_valid / drawn
    pool = pool[:want]
    props = chem.property_table(pool)
    ess = None
    if rerank_pool > 1:
        idx, ess = rerank(targets, props, n, generator)
        pool, props = [pool[i] for i in idx], props[idx]
    return TargetedSample(pool, props, drawn, valid_fraction, ess)


# ------------------------------------------------------------------------------------------ VAE latent space


def encode_smiles(bundle: Bundle, smiles: Sequence[str]) -> tuple[torch.Tensor, np.ndarray]:
    """Posterior means (K, latent) of the molecules that tokenise within the vocabulary, and which those are."""
    token_lists, ok = [], []
    for s in smiles:
        try:
            token_lists.append(bundle.tokenizer.split(s))
            ok.append(True)
        except ValueError:
            token_lists.append([])
            ok.append(False)
    ids, kept = bundle.vocab.encode(token_lists, bundle.max_len)
    kept = kept & np.asarray(ok)
    device = next(bundle.model.parameters()).device
    with torch.no_grad():
        mu, _ = bundle.model.encode(ids[torch.from_numpy(kept)].to(device))
    return mu, kept


@torch.no_grad()
def decode_latents(
    bundle: Bundle, z: torch.Tensor, greedy: bool = True, generator: torch.Generator | None = None
) -> list[str]:
    """Latent codes (K, latent) -> SMILES (greedy decoding by default, the usual reconstruction decoder)."""
    ids = bundle.model.decoder.sample(z, generator=generator, temperature=0.0 if greedy else 1.0)
    return decode(bundle, ids)


def reconstruction(bundle: Bundle, smiles: Sequence[str], batch_size: int = 500) -> dict:
    """Encode (posterior mean) and greedily decode held-out molecules; the fraction reconstructed exactly
    (canonical SMILES equal), and the valid fraction of the decodes."""
    exact = valid = total = 0
    for start in range(0, len(smiles), batch_size):
        chunk = [chem.canonical(s) for s in smiles[start : start + batch_size]]
        chunk = [s for s in chunk if s]
        mu, kept = encode_smiles(bundle, chunk)
        decoded = decode_latents(bundle, mu)
        sources = [s for s, k in zip(chunk, kept) if k]
        for src, out in zip(sources, decoded):
            c = chem.canonical(out)
            valid += c is not None
            exact += c == src
        total += len(sources)
    if total == 0:
        raise ConfigError("none of the molecules to reconstruct fits the VAE's vocabulary")
    return {"recon_exact": exact / total, "recon_valid": valid / total, "recon_n": total}


def decode_valid(
    bundle: Bundle,
    z: torch.Tensor,
    tries: int = 16,
    temperature: float = 0.7,
    generator: torch.Generator | None = None,
) -> list[str]:
    """Latent codes (K, latent) -> SMILES: the greedy decode where it is valid, else the most frequent valid
    canonical SMILES among `tries` decodes sampled at `temperature` ('' when none is valid). The decoding
    procedure of Gomez-Bombarelli et al. 2018 (section "Representation of molecules in latent space": decode
    each point several times, keep the most frequent valid molecule); tries=0 is plain greedy decoding."""
    out = [chem.canonical(s) or "" for s in decode_latents(bundle, z)]
    bad = [i for i, s in enumerate(out) if not s]
    if not bad or tries <= 0:
        return out
    zb = z[bad].repeat_interleave(tries, dim=0)  # (len(bad) * tries, latent)
    ids = bundle.model.decoder.sample(zb, generator=generator, temperature=temperature)
    draws = [chem.canonical(s) for s in decode(bundle, ids)]
    for j, i in enumerate(bad):
        valid = [s for s in draws[j * tries : (j + 1) * tries] if s]
        if valid:
            out[i] = max(set(valid), key=valid.count)
    return out


def interpolate(
    bundle: Bundle,
    a: str,
    b: str,
    steps: int = 9,
    method: str = "slerp",
    tries: int = 16,
    generator: torch.Generator | None = None,
) -> list[str]:
    """SMILES decoded at `steps` points between the posterior means of molecules a and b (`decode_valid`:
    greedy, with `tries` sampled decodes where the greedy one is invalid; tries=0 = greedy only)."""
    mu, kept = encode_smiles(bundle, [a, b])
    if not kept.all():
        bad = [s for s, k in zip((a, b), kept) if not k]
        raise ConfigError(f"cannot encode {bad[0]!r}: invalid, or tokens outside the VAE's vocabulary")
    path = interpolation_path(mu[:1], mu[1:], steps, method)  # (steps, 1, latent)
    return decode_valid(bundle, path[:, 0], tries=tries, generator=generator)


def neighbourhood(
    bundle: Bundle, smiles: str, n: int = 20, radius: float = 0.5, generator: torch.Generator | None = None
) -> list[str]:
    """Molecules decoded from n points z = mu + radius * eps around a molecule's posterior mean."""
    mu, kept = encode_smiles(bundle, [smiles])
    if not kept.all():
        raise ConfigError(f"cannot encode {smiles!r}: invalid, or tokens outside the VAE's vocabulary")
    eps = torch.randn(n, mu.shape[1], generator=generator).to(mu.device)
    return decode_latents(bundle, mu + radius * eps)
