"""Molecule strings <-> token lists <-> integer tensors: the SMILES and SELFIES tokenizers and the vocabulary.

SMILES are split with the atom-level regular expression of Schwaller et al. 2019 (Molecular Transformer): a
bracket atom such as `[C@@H]` or `[nH]` is one token, as are `Br`, `Cl` and two-digit ring closures `%10`. SELFIES
(Krenn et al. 2020) are encoded with the `selfies` package and split into its bracketed symbols; joining decodes
back to SMILES. A `Vocab` maps tokens to ids with `<pad>`=0, `<bos>`=1, `<eos>`=2 and encodes whole lists of
molecules at once with numpy (1M molecules in seconds, not minutes).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from shared.errors import CheckpointError, ConfigError

# Schwaller et al. 2019, "Molecular Transformer", ACS Cent. Sci. 5, 1572 (the regex of their SI): `Br?` and `Cl?`
# also match plain B and C; `%\d{2}` is a two-digit ring closure; everything else is one character.
SMILES_PATTERN = r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
_SMILES_RE = re.compile(SMILES_PATTERN)

KINDS = ("smiles", "selfies")
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
_CHUNK = 100_000  # molecules encoded per numpy pass: bounds the flat token list to a few million entries


class Tokenizer:
    """Splits a SMILES into tokens and joins tokens back into a SMILES; `kind` is "smiles" or "selfies"."""

    def __init__(self, kind: str = "smiles"):
        if kind not in KINDS:
            raise ConfigError(f"unknown representation {kind!r}: choose one of {', '.join(KINDS)}")
        self.kind = kind
        if kind == "selfies":
            import selfies  # noqa: PLC0415  (only the SELFIES models need it)

            self._sf = selfies

    def __repr__(self) -> str:
        return f"Tokenizer({self.kind!r})"

    def split(self, smiles: str) -> list[str]:
        """Tokens of one SMILES; ValueError when the regex does not cover the string (or SELFIES cannot encode it)."""
        if self.kind == "smiles":
            tokens = _SMILES_RE.findall(smiles)
            if sum(map(len, tokens)) != len(smiles):  # findall skips what it cannot match: some characters are left
                raise ValueError(f"SMILES {smiles[:80]!r} has characters outside the tokenizer's alphabet")
            return tokens
        try:
            encoded = self._sf.encoder(smiles)
        except Exception as e:  # selfies.EncoderError, and RDKit-free parse errors of its own
            raise ValueError(f"SELFIES cannot encode {smiles[:80]!r}") from e
        if encoded is None:
            raise ValueError(f"SELFIES cannot encode {smiles[:80]!r}")
        return list(self._sf.split_selfies(encoded))

    def split_many(self, smiles: Iterable[str]) -> tuple[list[list[str]], np.ndarray]:
        """Token lists of many SMILES and a bool mask (N,) of those that split; failures get an empty list."""
        out, ok = [], []
        for s in smiles:
            try:
                out.append(self.split(s))
                ok.append(True)
            except ValueError:
                out.append([])
                ok.append(False)
        return out, np.asarray(ok, dtype=bool)

    def join(self, tokens: Sequence[str]) -> str:
        """The SMILES the tokens spell (SELFIES tokens are decoded; the decoder may raise on malformed symbols)."""
        if self.kind == "smiles":
            return "".join(tokens)
        return self._sf.decoder("".join(tokens))


class Vocab:
    """Token <-> id table: `<pad>`=0, `<bos>`=1, `<eos>`=2, then the tokens in sorted order."""

    pad_id, bos_id, eos_id = 0, 1, 2

    def __init__(self, tokens: Iterable[str]):
        regular = sorted(set(tokens) - set(SPECIALS))
        self.itos: list[str] = [*SPECIALS, *regular]
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_count: int = 1) -> Vocab:
        """The vocabulary of every token seen at least `min_count` times."""
        counts = Counter(itertools.chain.from_iterable(token_lists))
        return cls(t for t, c in counts.items() if c >= min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"

    def encode_one(self, tokens: Sequence[str]) -> list[int] | None:
        """[bos, ids..., eos], or None when a token is outside the vocabulary."""
        ids = [self.stoi.get(t, -1) for t in tokens]
        if -1 in ids:
            return None
        return [self.bos_id, *ids, self.eos_id]

    def encode(self, token_lists: Sequence[Sequence[str]], max_len: int) -> tuple[torch.Tensor, np.ndarray]:
        """Ids (N, max_len) int64 = [bos, ids..., eos, pad...] and kept (N,) bool.

        A molecule with more than max_len - 2 tokens, a token outside the vocabulary, or no tokens at all is not
        kept: its row is all pad. Callers select `ids[torch.from_numpy(kept)]`.
        """
        if max_len < 3:
            raise ConfigError(f"max_len={max_len} leaves no room for a token between <bos> and <eos>: use >= 3")
        n = len(token_lists)
        ids = np.full((n, max_len), self.pad_id, dtype=np.int64)
        kept = np.zeros(n, dtype=bool)
        for start in range(0, n, _CHUNK):
            chunk = token_lists[start : start + _CHUNK]
            ids[start : start + len(chunk)], kept[start : start + len(chunk)] = self._encode_chunk(chunk, max_len)
        return torch.from_numpy(ids), kept

    def _encode_chunk(self, token_lists: Sequence[Sequence[str]], max_len: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(token_lists)
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=n)  # (n,)
        total = int(lengths.sum())
        flat = np.fromiter(  # (total,) ids of every token, -1 for unknown ones
            map(self.stoi.get, itertools.chain.from_iterable(token_lists), itertools.repeat(-1)),
            dtype=np.int64,
            count=total,
        )
        row = np.repeat(np.arange(n), lengths)  # (total,) which molecule each token belongs to
        unknown = np.bincount(row[flat < 0], minlength=n) > 0
        kept = (lengths > 0) & (lengths <= max_len - 2) & ~unknown  # (n,)
        pos = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1  # column after <bos>
        out = np.full((n, max_len), self.pad_id, dtype=np.int64)
        take = kept[row]
        out[row[take], pos[take]] = flat[take]
        out[kept, 0] = self.bos_id
        out[np.flatnonzero(kept), lengths[kept] + 1] = self.eos_id
        return out, kept

    def decode(self, ids: torch.Tensor) -> list[list[str]]:
        """Token lists of ids (N, L): a leading <bos> is skipped, reading stops at the first <eos>, pads are skipped.

        Any other special token in the middle is kept as its string (it makes the molecule invalid, as it should).
        """
        rows = ids.detach().cpu().tolist() if isinstance(ids, torch.Tensor) else np.asarray(ids).tolist()
        itos, out = self.itos, []
        for r in rows:
            if r and r[0] == self.bos_id:
                r = r[1:]
            if self.eos_id in r:
                r = r[: r.index(self.eos_id)]
            out.append([itos[i] for i in r if i != self.pad_id])
        return out

    def to_dict(self) -> dict:
        """JSON-able form, saved beside the model's weights."""
        return {"tokens": list(self.itos)}

    @classmethod
    def from_dict(cls, d: dict) -> Vocab:
        tokens = list(d.get("tokens", []))
        if tuple(tokens[:3]) != SPECIALS or len(set(tokens)) != len(tokens):
            raise CheckpointError("the saved vocabulary is corrupt (specials missing or repeated tokens): retrain")
        vocab = cls(())
        vocab.itos, vocab.stoi = tokens, {t: i for i, t in enumerate(tokens)}  # the ids the model was trained with
        return vocab
