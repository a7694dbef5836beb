"""GuacaMol's distribution-learning scores (Brown et al. 2019, `guacamol/distribution_learning_benchmark.py`):
the KL-divergence benchmark score over 9 physico-chemical descriptors plus the internal nearest-neighbour
similarity, and the FCD score exp(-0.2 FCD). Labelled as GuacaMol's definitions wherever shown: our reference is
a sample of the MOSES test set, not ChEMBL, so the numbers are not comparable with GuacaMol's published ones.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from rdkit import Chem
from rdkit.Chem import Descriptors, rdFingerprintGenerator
from scipy.stats import entropy, gaussian_kde

from apps.molecules.similarity import tanimoto_reduce

GUACAMOL_DESCRIPTORS = (
    "BertzCT", "MolLogP", "MolWt", "TPSA",  # continuous: Gaussian KDE
    "NumHAcceptors", "NumHDonors", "NumRotatableBonds", "NumAliphaticRings", "NumAromaticRings",  # discrete
)  # fmt: skip
GUACAMOL_N = 10_000  # GuacaMol's KLDivBenchmark sample size, for the generated and for the reference set
GUACAMOL_SEED = 42  # GuacaMol's seed for the reference subset
_N_CONTINUOUS = 4


def guacamol_canonical(smiles: Sequence[str], n: int | None = None) -> list[str]:
    """GuacaMol's `canonicalize_list(include_stereocenters=False)`: canonical SMILES without stereo, invalid ones
    dropped, duplicates removed keeping the first; then the first `n`."""
    seen: dict[str, None] = {}
    for s in smiles:
        m = Chem.MolFromSmiles(s) if s else None
        if m is not None:
            seen.setdefault(Chem.MolToSmiles(m, isomericSmiles=False), None)
            if n is not None and len(seen) >= n:
                break
    return list(seen)


def guacamol_descriptors(smiles: Sequence[str]) -> np.ndarray:
    """(N, 9) GuacaMol physico-chemical descriptors (`GUACAMOL_DESCRIPTORS`, RDKit `Descriptors` functions) of
    parsable SMILES; non-finite values are set to 0 as GuacaMol does."""
    funcs = [getattr(Descriptors, name) for name in GUACAMOL_DESCRIPTORS]
    rows = [[f(m) for f in funcs] for m in (Chem.MolFromSmiles(s) for s in smiles) if m is not None]
    out = np.array(rows, dtype=np.float64).reshape(-1, len(funcs))
    out[~np.isfinite(out)] = 0.0
    return out


def guacamol_nn_similarity(smiles: Sequence[str], device: str | torch.device = "cpu") -> np.ndarray:
    """(N,) for each molecule the max ECFP4 Tanimoto to the OTHER molecules of the set (GuacaMol's
    `calculate_internal_pairwise_similarities(...).max(axis=1)`: Morgan radius 2 bit vectors of 4096 bits)."""
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=4096)
    mols = [m for m in (Chem.MolFromSmiles(s) for s in smiles) if m is not None]
    fps = np.stack([gen.GetFingerprintAsNumPy(m) for m in mols]).astype(np.uint8) if mols else np.zeros((0, 4096))
    return tanimoto_reduce(fps, fps, "max", exclude_self=True, device=device, desc="guacamol nn")


def guacamol_kl_reference(
    smiles: Sequence[str], n: int = GUACAMOL_N, seed: int = GUACAMOL_SEED, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Reference side of GuacaMol's KL benchmark: a random subset of `n` SMILES (seeded), canonicalised without
    stereo and deduplicated; returns its (M, 9) descriptors and (M,) nearest-neighbour similarities."""
    idx = np.random.default_rng(seed).choice(len(smiles), size=min(n, len(smiles)), replace=False)
    subset = guacamol_canonical([smiles[i] for i in idx])
    return guacamol_descriptors(subset), guacamol_nn_similarity(subset, device=device)


def continuous_kl(reference: np.ndarray, sampled: np.ndarray) -> float:
    """GuacaMol `continuous_kldiv`: KL(P_ref || Q_gen) of Gaussian KDEs on 1000 points over the joint range."""
    both = np.concatenate([reference, sampled])
    grid = np.linspace(both.min(), both.max(), num=1000)
    p = gaussian_kde(reference)(grid) + 1e-10
    q = gaussian_kde(sampled)(grid) + 1e-10
    return float(entropy(p, q))


def discrete_kl(reference: np.ndarray, sampled: np.ndarray) -> float:
    """GuacaMol `discrete_kldiv`: KL of 10-bin density histograms, the bins set by the reference values."""
    p, bins = np.histogram(reference, bins=10, density=True)
    q, _ = np.histogram(sampled, bins=bins, density=True)
    return float(entropy(p + 1e-10, q + 1e-10))


def guacamol_kl_divergences(
    gen_descriptors: np.ndarray, gen_nn: np.ndarray, ref_descriptors: np.ndarray, ref_nn: np.ndarray
) -> dict[str, float]:
    """The 10 KL divergences of GuacaMol's KL benchmark: 4 continuous descriptors (KDE), 5 discrete ones
    (histograms) and the internal nearest-neighbour similarity (KDE)."""
    kls = {}
    for i, name in enumerate(GUACAMOL_DESCRIPTORS):
        kl = continuous_kl if i < _N_CONTINUOUS else discrete_kl
        kls[name] = kl(ref_descriptors[:, i], gen_descriptors[:, i])
    kls["internal_similarity"] = continuous_kl(ref_nn, gen_nn)
    return kls


def guacamol_kl_score(
    generated: Sequence[str],
    ref_descriptors: np.ndarray,
    ref_nn: np.ndarray,
    n: int = GUACAMOL_N,
    device: str | torch.device = "cpu",
) -> float:
    """GuacaMol's KL divergence benchmark score (Brown et al. 2019), mean of exp(-KL_i) over the 10 KLs, in [0, 1].

    The generated side is the first `n` distinct valid molecules (canonical, no stereo); GuacaMol samples until it
    has n = 10,000 of them and only warns when there are fewer. The reference comes from `guacamol_kl_reference`.
    NaN (with a warning) when a KDE cannot be fitted (fewer than 2 distinct values, e.g. a handful of molecules).
    """
    unique = guacamol_canonical(generated, n)
    if len(unique) < n:
        warnings.warn(f"GuacaMol KL score on {len(unique)} distinct molecules instead of {n}", stacklevel=2)
    try:
        kls = guacamol_kl_divergences(
            guacamol_descriptors(unique), guacamol_nn_similarity(unique, device), ref_descriptors, ref_nn
        )
    except (np.linalg.LinAlgError, ValueError) as e:
        warnings.warn(f"GuacaMol KL score not computable ({e})", stacklevel=2)
        return float("nan")
    return float(np.mean([math.exp(-kl) for kl in kls.values()]))


def guacamol_fcd_score(fcd_value: float) -> float:
    """GuacaMol's FCD benchmark score, exp(-0.2 FCD), in (0, 1]."""
    return math.exp(-0.2 * fcd_value)
