"""The MOSES metric set (Polykovskiy et al. 2020, molsets 0.3.1 semantics), plus GuacaMol's distribution-learning
scores (`guacamol.py`), computed from generated SMILES against reference statistics (`reference.py`); Tanimoto
reductions live in `similarity.py`, ChemNet and the Frechet distance in `fcd.py`.

MOSES semantics kept exactly (see `moses/metrics/metrics.py`, `utils.py` of molsets 0.3.1): Valid is the fraction
of all generated strings (empty ones included) that parse and sanitize; every later metric uses the canonical valid
list WITH duplicates, re-parsed from its canonical SMILES; Unique@k looks at the first k of that list (fewer: a
warning and all of them); Novelty counts unique canonical SMILES absent from the training SMILES (string compare);
SNN is the mean over generated molecules of the max Tanimoto to the reference fingerprints; IntDiv_p is
1 - mean_i (mean_j T_ij^p)^(1/p) with j running over the whole generated list, i itself included; Frag / Scaf are
cosine similarities of BRICS-fragment / Bemis-Murcko-scaffold (>= 2 rings) counters; Filters is the fraction with
no ring of >= 8 atoms, no formal charge, only C N S O F Cl Br H atoms and no MCF / PAINS match on the molecule with
explicit hydrogens; logP / SA / QED / weight are 1-D Wasserstein distances to the test values.
Tanimoto similarities are exact intersection counts from 0/1 matrix products (bfloat16 / float16 inputs with float32
accumulation are exact for these counts), reduced in chunks, so 30k molecules against 176k reference fingerprints
take seconds.
"""

from __future__ import annotations

import math
import multiprocessing
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold
from scipy.stats import wasserstein_distance
from tqdm.auto import tqdm

from apps.molecules import chem, fcd
from apps.molecules.guacamol import (  # noqa: F401  (re-exported: the metric set in one namespace)
    GUACAMOL_N,
    guacamol_fcd_score,
    guacamol_kl_reference,
    guacamol_kl_score,
)
from apps.molecules.similarity import internal_diversity, snn, tanimoto_reduce  # noqa: F401
from shared.errors import ConfigError, DataError

if TYPE_CHECKING:
    from apps.molecules.reference import ReferenceStats

ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})


# ---------------------------------------------------------------- validity, uniqueness, novelty


def fraction_valid(smiles: Sequence[str]) -> float:
    """Fraction of the generated strings that parse and sanitize (empty strings are invalid)."""
    if len(smiles) == 0:
        raise DataError("no generated molecules to score: sample some first")
    return sum(chem.mol(s) is not None for s in smiles) / len(smiles)


def canonical_valid(smiles: Sequence[str]) -> list[str]:
    """Canonical SMILES of the valid strings, order and duplicates kept (MOSES `remove_invalid(canonize=True)`)."""
    return [c for c in (chem.canonical(s) for s in smiles) if c is not None]


def fraction_unique(canonical: Sequence[str], k: int | None = None) -> float:
    """Unique@k: distinct canonical SMILES among the first k (all of them, with a warning, when fewer than k)."""
    if k is not None:
        if len(canonical) < k:
            warnings.warn(f"unique@{k} computed on only {len(canonical)} valid molecules", stacklevel=2)
        canonical = canonical[:k]
    if len(canonical) == 0:
        return float("nan")
    return len(set(canonical)) / len(canonical)


def novelty(canonical: Sequence[str], train: set[str] | Sequence[str]) -> float:
    """Fraction of the distinct canonical generated SMILES that are not training SMILES (plain string compare)."""
    unique = set(canonical)
    if not unique:
        return float("nan")
    train = train if isinstance(train, (set, frozenset)) else set(train)
    return len(unique - train) / len(unique)


# ---------------------------------------------------------------- fragments, scaffolds


def brics_fragments(m: Chem.Mol) -> list[str]:
    """SMILES of the BRICS fragments of a molecule (MOSES `fragmenter`)."""
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(m)).split(".")


def scaffold(m: Chem.Mol, min_rings: int = 2) -> str | None:
    """Canonical Bemis-Murcko scaffold SMILES, or None when it has fewer than `min_rings` rings (MOSES
    `compute_scaffold(mol, min_rings=2)`: acyclic and one-ring scaffolds are not counted)."""
    try:
        scaf = MurckoScaffold.GetScaffoldForMol(m)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(scaf)
    if smiles == "" or scaf.GetRingInfo().NumRings() < min_rings:
        return None
    return smiles


def cos_similarity(ref_counts: Mapping[str, int], gen_counts: Mapping[str, int]) -> float:
    """Cosine similarity of two {key: count} maps (missing keys count 0); NaN when either is empty."""
    if not ref_counts or not gen_counts:
        return float("nan")
    dot = sum(c * ref_counts.get(k, 0) for k, c in gen_counts.items())
    norm_ref = math.sqrt(sum(c * c for c in ref_counts.values()))
    norm_gen = math.sqrt(sum(c * c for c in gen_counts.values()))
    return dot / (norm_ref * norm_gen)


def frag_similarity(mols: Sequence[Chem.Mol], ref_counts: Mapping[str, int]) -> float:
    """Frag: cosine similarity of the BRICS fragment counts of `mols` and the reference counts."""
    return cos_similarity(ref_counts, Counter(f for m in mols for f in brics_fragments(m)))


def scaf_similarity(mols: Sequence[Chem.Mol], ref_counts: Mapping[str, int]) -> float:
    """Scaf: cosine similarity of the scaffold (>= 2 rings) counts of `mols` and the reference counts."""
    return cos_similarity(ref_counts, Counter(s for s in map(scaffold, mols) if s is not None))


# ---------------------------------------------------------------- filters


class Filters:
    """MCF + PAINS SMARTS compiled once, with a substructure screen.

    Each query's RDKit pattern fingerprint must be a subset of the molecule's for a match to be possible (RDKit's
    `SubstructLibrary` screen), so the exact `HasSubstructMatch` runs only on the few candidates: about 4x faster,
    the same answers (checked on 10,000 WEHI molecules with 2,521 matches and in the tests). Pickles as its SMARTS.
    """

    def __init__(self, smarts: Sequence[str], screen: bool = True):
        self.smarts = list(smarts)
        self.screen = screen
        self.patterns = []
        for s in self.smarts:
            p = Chem.MolFromSmarts(s)
            if p is None:
                raise DataError(f"filter SMARTS {s!r} does not parse: re-run `python -m apps.molecules prepare`")
            self.patterns.append(p)
        self._query_words = np.stack([_pattern_words(p) for p in self.patterns]) if self.patterns else None

    def __getstate__(self):
        return {"smarts": self.smarts, "screen": self.screen}

    def __setstate__(self, state):
        self.__init__(state["smarts"], state["screen"])

    def __len__(self) -> int:
        return len(self.patterns)

    def matches(self, h_mol: Chem.Mol) -> bool:
        """Whether any pattern matches `h_mol` (a molecule with explicit hydrogens)."""
        if self._query_words is None:
            return False
        if self.screen:
            mol_words = _pattern_words(h_mol)
            candidates = np.flatnonzero(~(self._query_words & ~mol_words).any(1))
        else:
            candidates = range(len(self.patterns))
        return any(h_mol.HasSubstructMatch(self.patterns[i]) for i in candidates)

    def passes(self, m: Chem.Mol) -> bool:
        """MOSES `mol_passes_filters`: no ring >= 8 atoms, uncharged, allowed atoms only, no MCF / PAINS match,
        and a non-empty SMILES (no stereo) that parses again."""
        if any(len(ring) >= 8 for ring in m.GetRingInfo().AtomRings()):
            return False
        if any(a.GetFormalCharge() != 0 or a.GetSymbol() not in ALLOWED_ATOMS for a in m.GetAtoms()):
            return False
        if self.matches(Chem.AddHs(m)):
            return False
        smiles = Chem.MolToSmiles(m, isomericSmiles=False)
        return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


def _pattern_words(m: Chem.Mol) -> np.ndarray:
    """RDKit pattern fingerprint (2048 bits) as (32,) uint64 words."""
    bits = np.frombuffer(Chem.PatternFingerprint(m, fpSize=2048).ToBitString().encode(), dtype=np.uint8) == 49
    return np.packbits(bits).view(np.uint64)


def fraction_passes_filters(mols: Sequence[Chem.Mol], filters: Filters) -> float:
    """Filters: fraction of molecules passing `Filters.passes`."""
    return float(np.mean([filters.passes(m) for m in mols])) if len(mols) else float("nan")


# ---------------------------------------------------------------- one pass over the molecules


class MoleculeFeatures:
    """Everything MOSES needs per valid molecule, computed in one pass (optionally in worker processes).

    smiles: canonical SMILES re-made from the re-parsed molecule (what MOSES's unique@k, novelty and FCD see);
    fps (N, 1024) uint8 Morgan bits; frag / scaf: Counters; passes (N,) bool or None; props (N, 4) float
    (logp, sa, qed, weight) or None; n_dropped: canonical SMILES that did not parse again (MOSES would fail).
    """

    def __init__(self, rows: list, with_filters: bool, with_properties: bool, n_dropped: int):
        self.smiles = [r[0] for r in rows]
        packed = np.frombuffer(b"".join(r[1] for r in rows), np.uint8).reshape(len(rows), chem.FP_BITS // 8)
        self.fps = np.unpackbits(packed, axis=1)  # (N, 1024)
        self.frag = Counter(f for r in rows for f in r[2])
        self.scaf = Counter(r[3] for r in rows if r[3] is not None)
        self.passes = np.array([r[4] for r in rows], dtype=bool) if with_filters else None
        self.props = np.array([r[5] for r in rows], dtype=np.float64).reshape(-1, 4) if with_properties else None
        self.n_dropped = n_dropped


_WORKER: dict = {}  # what each worker process needs: the compiled filters and whether to compute properties
_MIN_PARALLEL = 1000  # below this many molecules starting workers costs more than it saves


def _init_worker(filters: Filters | None, with_properties: bool) -> None:
    _WORKER["filters"], _WORKER["props"] = filters, with_properties


def _molecule_row(smiles: str):
    m = chem.mol(smiles)
    if m is None:
        return None
    filters = _WORKER["filters"]
    props = chem.properties(m) if _WORKER["props"] else None
    return (
        Chem.MolToSmiles(m),
        np.packbits(chem.morgan_bits([m])[0]).tobytes(),
        brics_fragments(m),
        scaffold(m),
        filters.passes(m) if filters is not None else None,
        tuple(props[k] for k in chem.PROPERTIES) if props is not None else None,
    )


def molecule_features(
    canonical: Sequence[str],
    filters: Filters | None = None,
    properties: bool = True,
    n_jobs: int = 1,
    progress: bool = False,
) -> MoleculeFeatures:
    """Parse each canonical SMILES again (as MOSES does) and compute fingerprints, fragments, scaffolds, the
    filter verdict (when `filters` is given) and the four properties; `n_jobs` > 1 uses worker processes."""
    bar = dict(total=len(canonical), desc="molecules", unit="mol", disable=not progress, leave=False)
    if n_jobs > 1 and len(canonical) >= _MIN_PARALLEL:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ctx.Pool(n_jobs, initializer=_init_worker, initargs=(filters, properties)) as pool:
            rows = list(tqdm(pool.imap(_molecule_row, canonical, chunksize=256), **bar))
    else:
        _init_worker(filters, properties)
        rows = [_molecule_row(s) for s in tqdm(canonical, **bar)]
    kept = [r for r in rows if r is not None]
    if len(kept) < len(rows):
        warnings.warn(f"{len(rows) - len(kept)} canonical SMILES did not parse again; left out", stacklevel=2)
    return MoleculeFeatures(kept, filters is not None, properties, len(rows) - len(kept))


# ---------------------------------------------------------------- everything


@contextmanager
def _stage(name: str, timings: dict | None) -> Iterator[None]:
    start = time.perf_counter()
    yield
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _k_name(k: int) -> str:
    return f"{k // 1000}k" if k % 1000 == 0 else str(k)


def moses_metrics(
    generated: Sequence[str],
    train: set[str] | Sequence[str],
    refs: Mapping[str, ReferenceStats],
    filters: Filters,
    *,
    k: Sequence[int] = (1000, 10_000),
    n_jobs: int = 1,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
    progress: bool = True,
    guacamol_n: int = GUACAMOL_N,
    timings: dict[str, float] | None = None,
) -> dict[str, float]:
    """All MOSES metrics (molsets 0.3.1 semantics) plus GuacaMol's KL and FCD scores, as a flat dict.

    generated: the sampled strings, invalid and empty ones included. train: the training SMILES (novelty).
    refs: {"test": ..., "testsf": ...} (at least "test"); each name gives fcd_/snn_/frag_/scaf_<name>; properties
    and the GuacaMol KL score use "test". filters: from `reference.load_filters`. n_jobs: worker processes for the
    per-molecule RDKit pass; device: for ChemNet and the Tanimoto products. `timings`, when given, receives the
    seconds spent per stage. Keys: n_generated, n_valid, valid, unique_1k, unique_10k, novelty, fcd_*, snn_*,
    frag_*, scaf_*, intdiv, intdiv2, filters, logp_w, sa_w, qed_w, weight_w, guacamol_fcd_score, guacamol_kl_score.
    """
    if "test" not in refs:
        raise ConfigError(f"moses_metrics needs a 'test' reference, got {sorted(refs)}")
    if len(generated) == 0:
        raise DataError("no generated molecules to score: sample some first")
    nan = float("nan")
    out: dict[str, float] = {"n_generated": len(generated)}
    with _stage("parse", timings):
        bar = tqdm(generated, desc="parse", unit="mol", disable=not progress, leave=False)
        canonical = canonical_valid(bar)
    out["n_valid"] = len(canonical)
    out["valid"] = len(canonical) / len(generated)
    with _stage("molecules", timings):
        feats = molecule_features(canonical, filters, properties=True, n_jobs=n_jobs, progress=progress)
    smiles, n = feats.smiles, len(feats.smiles)
    for kk in k:
        out[f"unique_{_k_name(kk)}"] = fraction_unique(smiles, kk) if n else nan
    out["novelty"] = novelty(smiles, train)
    with _stage("chemnet", timings):
        stats = None
        if n >= 2:
            act = fcd.chemnet_activations(smiles, batch_size, device, progress=progress, canonicalize=False)
            stats = fcd.gaussian_stats(act)
    for name, ref in refs.items():
        with _stage("fcd", timings):
            out[f"fcd_{name}"] = fcd.frechet_distance(ref.fcd_mu, ref.fcd_sigma, *stats) if stats else nan
        with _stage("snn", timings):
            out[f"snn_{name}"] = snn(feats.fps, ref.fingerprints(), device, progress) if n else nan
        out[f"frag_{name}"] = cos_similarity(ref.frag, feats.frag)
        out[f"scaf_{name}"] = cos_similarity(ref.scaf, feats.scaf)
    with _stage("intdiv", timings):
        out["intdiv"] = internal_diversity(feats.fps, 1, device, progress) if n else nan
        out["intdiv2"] = internal_diversity(feats.fps, 2, device, progress) if n else nan
    out["filters"] = float(feats.passes.mean()) if n else nan
    test = refs["test"]
    for i, prop in enumerate(chem.PROPERTIES):
        out[f"{prop}_w"] = float(wasserstein_distance(getattr(test, prop), feats.props[:, i])) if n else nan
    out["guacamol_fcd_score"] = guacamol_fcd_score(out["fcd_test"])
    with _stage("guacamol", timings):
        if test.kl_descriptors is None or n == 0:
            if n:
                warnings.warn(
                    "the test reference has no GuacaMol KL statistics: guacamol_kl_score is NaN", stacklevel=2
                )
            out["guacamol_kl_score"] = nan
        else:
            out["guacamol_kl_score"] = guacamol_kl_score(
                canonical, test.kl_descriptors, test.kl_nn_similarity, guacamol_n, device
            )
    return out
