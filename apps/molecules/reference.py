"""Reference statistics the MOSES metrics compare against (test / scaffold-test sets), and the MCF + PAINS filters.

MOSES ships its test statistics as pickled npz files; `convert_moses_stats` turns one into a plain npz that loads
with `allow_pickle=False`. The file holds: `fcd_mu` (512,), `fcd_sigma` (512, 512) (ChemNet activations),
`snn_fps` (N, 128) uint8 (Morgan radius-2 1024-bit fingerprints packed with `np.packbits(axis=1)`),
`frag_keys`/`frag_counts` and `scaf_keys`/`scaf_counts` (BRICS fragment and >= 2-ring scaffold counters),
`logp`, `sa`, `qed`, `weight` (N,) values, and optionally `kl_descriptors` (M, 9) and `kl_nn_similarity` (M,), the
reference side of GuacaMol's KL benchmark for a 10,000-molecule sample (seed 42) of the reference SMILES.
`reference_from_smiles` computes the same statistics from any molecule set (a user's own test set).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from apps.molecules import chem, fcd, metrics
from shared.atomic import atomic_path
from shared.errors import DataError

PREPARE_HINT = "run `python -m apps.molecules prepare`"
_PROPS = ("logp", "sa", "qed", "weight")
_MOSES_PROPS = {"logp": "logP", "sa": "SA", "qed": "QED", "weight": "weight"}


@dataclass
class ReferenceStats:
    """Statistics of a reference molecule set. Fingerprints stay packed (22 MB for MOSES test instead of 180 MB);
    `fingerprints()` unpacks them for the Tanimoto products. kl_* are None when the file has no GuacaMol part."""

    fcd_mu: np.ndarray  # (512,)
    fcd_sigma: np.ndarray  # (512, 512)
    snn_fps: np.ndarray  # (N, 128) uint8, packed bits
    frag: Counter = field(repr=False)
    scaf: Counter = field(repr=False)
    logp: np.ndarray = field(repr=False)
    sa: np.ndarray = field(repr=False)
    qed: np.ndarray = field(repr=False)
    weight: np.ndarray = field(repr=False)
    kl_descriptors: np.ndarray | None = field(default=None, repr=False)  # (M, 9)
    kl_nn_similarity: np.ndarray | None = field(default=None, repr=False)  # (M,)

    def __repr__(self) -> str:
        n_kl = 0 if self.kl_descriptors is None else len(self.kl_descriptors)
        return (
            f"ReferenceStats(n={len(self.snn_fps)}, fragments={len(self.frag)}, scaffolds={len(self.scaf)}, "
            f"guacamol_kl_n={n_kl})"
        )

    def fingerprints(self) -> np.ndarray:
        """(N, 1024) uint8 0/1 Morgan fingerprints."""
        return np.unpackbits(self.snn_fps, axis=1, count=chem.FP_BITS)

    def save(self, path: str | Path) -> None:
        """Write the plain npz described in the module docstring (atomically)."""
        arrays = {
            "fcd_mu": np.asarray(self.fcd_mu),
            "fcd_sigma": np.asarray(self.fcd_sigma),
            "snn_fps": np.asarray(self.snn_fps, dtype=np.uint8),
            **_counter_arrays("frag", self.frag),
            **_counter_arrays("scaf", self.scaf),
            **{p: np.asarray(getattr(self, p), dtype=np.float64) for p in _PROPS},
        }
        if self.kl_descriptors is not None:
            arrays["kl_descriptors"] = np.asarray(self.kl_descriptors, dtype=np.float64)
            arrays["kl_nn_similarity"] = np.asarray(self.kl_nn_similarity, dtype=np.float64)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)


def _counter_arrays(name: str, counts: Counter) -> dict[str, np.ndarray]:
    keys = list(counts)
    return {
        f"{name}_keys": np.array(keys, dtype=str) if keys else np.zeros(0, dtype="<U1"),
        f"{name}_counts": np.array([counts[k] for k in keys], dtype=np.int64),
    }


def load_reference(path: str | Path) -> ReferenceStats:
    """Load a converted statistics file (no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"reference statistics {path} not found: {PREPARE_HINT}")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable statistics file ({e}): {PREPARE_HINT}") from e
    try:
        return ReferenceStats(
            fcd_mu=d["fcd_mu"],
            fcd_sigma=d["fcd_sigma"],
            snn_fps=d["snn_fps"],
            frag=Counter(dict(zip(d["frag_keys"].tolist(), d["frag_counts"].tolist()))),
            scaf=Counter(dict(zip(d["scaf_keys"].tolist(), d["scaf_counts"].tolist()))),
            **{p: d[p] for p in _PROPS},
            kl_descriptors=d.get("kl_descriptors"),
            kl_nn_similarity=d.get("kl_nn_similarity"),
        )
    except KeyError as e:
        raise DataError(f"{path} lacks {e.args[0]!r}: {PREPARE_HINT}") from e


def convert_moses_stats(
    src: str | Path, dest: str | Path, kl_smiles: Sequence[str] | None = None, device: str = "cpu"
) -> None:
    """Convert a MOSES `test_stats.npz` / `test_scaffolds_stats.npz` (pickled dict) to our plain npz at `dest`.

    `kl_smiles` (the set's SMILES, e.g. MOSES test) adds the GuacaMol KL reference (10,000-molecule sample,
    seed 42; about 15 s). Without it `guacamol_kl_score` is NaN for this reference.
    """
    # allow_pickle=True is safe here only because `src` comes from the pinned molsets==0.3.1 wheel that `prepare`
    # downloads from the package registry (MIT-licensed MOSES data): never point this at an untrusted file.
    with np.load(src, allow_pickle=True) as z:
        stats = z["stats"].item()
    kl_descriptors = kl_nn = None
    if kl_smiles is not None:
        kl_descriptors, kl_nn = metrics.guacamol_kl_reference(kl_smiles, device=device)
    ReferenceStats(
        fcd_mu=np.asarray(stats["FCD"]["mu"]),
        fcd_sigma=np.asarray(stats["FCD"]["sigma"]),
        snn_fps=np.packbits(np.asarray(stats["SNN"]["fps"], dtype=np.uint8), axis=1),
        frag=Counter(stats["Frag"]["frag"]),
        scaf=Counter(stats["Scaf"]["scaf"]),
        **{p: np.asarray(stats[_MOSES_PROPS[p]]["values"], dtype=np.float64) for p in _PROPS},
        kl_descriptors=kl_descriptors,
        kl_nn_similarity=kl_nn,
    ).save(dest)


def reference_from_smiles(
    smiles: Sequence[str],
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    n_jobs: int = 1,
    progress: bool = False,
    guacamol: bool = True,
) -> ReferenceStats:
    """The statistics of a reference set of SMILES (MOSES `compute_intermediate_statistics`): ChemNet mean and
    covariance, Morgan fingerprints, fragment and scaffold counts, the four properties and (unless
    `guacamol=False`) the GuacaMol KL reference. Every SMILES must be valid (duplicates are kept)."""
    canonical = [chem.canonical(s) for s in smiles]
    bad = [s for s, c in zip(smiles, canonical) if c is None]
    if bad:
        raise DataError(f"{len(bad)} reference SMILES are invalid (first: {bad[0]!r}): remove them first")
    if len(canonical) < 2:
        raise DataError(f"a reference set needs at least 2 molecules, got {len(canonical)}")
    feats = metrics.molecule_features(canonical, filters=None, properties=True, n_jobs=n_jobs, progress=progress)
    act = fcd.chemnet_activations(feats.smiles, batch_size, device, progress=progress, canonicalize=False)
    mu, sigma = fcd.gaussian_stats(act)
    kl_descriptors = kl_nn = None
    if guacamol:
        kl_descriptors, kl_nn = metrics.guacamol_kl_reference(canonical, device=device)
    return ReferenceStats(
        fcd_mu=mu,
        fcd_sigma=sigma,
        snn_fps=np.packbits(feats.fps, axis=1),
        frag=feats.frag,
        scaf=feats.scaf,
        **{p: feats.props[:, i].copy() for i, p in enumerate(chem.PROPERTIES)},
        kl_descriptors=kl_descriptors,
        kl_nn_similarity=kl_nn,
    )


def load_filters(directory: str | Path) -> metrics.Filters:
    """The MOSES Filters patterns: `mcf.csv` (header `names,smarts`, 22 MCF SMARTS) and `wehi_pains.csv` (no
    header; columns SMARTS, name; 480 PAINS SMARTS) from `directory`, compiled into a `metrics.Filters`.

    These are the files molsets 0.3.1 ships; RDKit's PAINS catalog differs from them in 17 SMARTS.
    """
    directory = Path(directory)
    smarts = []
    for name, has_header in (("mcf.csv", True), ("wehi_pains.csv", False)):
        path = directory / name
        if not path.is_file():
            raise DataError(f"filter file {path} not found: {PREPARE_HINT}")
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if has_header:
            header, rows = rows[0], rows[1:]
            if "smarts" not in header:
                raise DataError(f"{path} has no 'smarts' column: {PREPARE_HINT}")
            col = header.index("smarts")
        else:
            col = 0
        smarts += [row[col].strip() for row in rows if row]
    return metrics.Filters(smarts)
