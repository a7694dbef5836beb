"""RDKit helpers every molecules module uses: parsing with RDKit's logging silenced, canonical SMILES, the four
MOSES properties (logP, SA, QED, molecular weight), and Morgan fingerprints.

Definitions follow MOSES 0.3.1 (`moses/metrics/utils.py`): logP = Crippen `MolLogP`, SA = Ertl & Schuffenhauer's
synthetic accessibility score from RDKit's Contrib `SA_Score` (the same fragment table MOSES ships), QED =
`QED.qed` (Bickerton et al. 2012), weight = `Descriptors.MolWt`; fingerprints are Morgan radius 2, 1024 bits.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

import numpy as np
from rdkit import Chem, RDConfig, RDLogger
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator

RDLogger.DisableLog("rdApp.*")  # invalid generated SMILES are expected; counting them is our job, not stderr's

PROPERTIES = ("logp", "sa", "qed", "weight")
PROPERTY_LABELS = {"logp": "logP", "sa": "SA score", "qed": "QED", "weight": "molecular weight"}
FP_BITS = 1024

_sascorer = None
_morgan = None


def mol(smiles: str) -> Chem.Mol | None:
    """An RDKit molecule, or None when the SMILES is empty, does not parse or does not sanitize (MOSES `get_mol`)."""
    if not smiles:
        return None
    m = Chem.MolFromSmiles(smiles)
    if m is None:
        return None
    try:
        Chem.SanitizeMol(m)
    except Exception:  # RDKit raises several unrelated exception types for unsanitizable molecules
        return None
    return m


def canonical(smiles: str) -> str | None:
    """Canonical SMILES, or None for an invalid one."""
    m = mol(smiles)
    return None if m is None else Chem.MolToSmiles(m)


def canonical_list(smiles: Iterable[str]) -> list[str | None]:
    return [canonical(s) for s in smiles]


def fragments(m: Chem.Mol) -> int:
    """Number of disconnected fragments (salts and mixtures have more than one)."""
    return len(Chem.GetMolFrags(m))


def sa_score(m: Chem.Mol) -> float:
    """Synthetic accessibility, 1 (easy) .. 10 (hard), from RDKit's Contrib SA_Score."""
    global _sascorer
    if _sascorer is None:
        path = os.path.join(RDConfig.RDContribDir, "SA_Score")
        if path not in sys.path:
            sys.path.append(path)
        import sascorer  # noqa: PLC0415  (RDKit ships it as a loose Contrib script)

        _sascorer = sascorer
    return float(_sascorer.calculateScore(m))


def properties(m: Chem.Mol) -> dict[str, float]:
    """The four MOSES properties of one molecule."""
    return {
        "logp": float(Crippen.MolLogP(m)),
        "sa": sa_score(m),
        "qed": float(QED.qed(m)),
        "weight": float(Descriptors.MolWt(m)),
    }


def property_table(smiles: Sequence[str]) -> np.ndarray:
    """(N, 4) float array of logp, sa, qed, weight; rows of invalid SMILES are NaN."""
    out = np.full((len(smiles), len(PROPERTIES)), np.nan)
    for i, s in enumerate(smiles):
        m = mol(s)
        if m is not None:
            p = properties(m)
            out[i] = [p[k] for k in PROPERTIES]
    return out


def morgan_bits(mols: Sequence[Chem.Mol]) -> np.ndarray:
    """(N, 1024) uint8 0/1 Morgan fingerprints, radius 2 (ECFP4-like, as MOSES `fingerprint(fp_type='morgan')`)."""
    global _morgan
    if _morgan is None:
        _morgan = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FP_BITS)
    out = np.zeros((len(mols), FP_BITS), dtype=np.uint8)
    for i, m in enumerate(mols):
        out[i] = _morgan.GetFingerprintAsNumPy(m)
    return out
