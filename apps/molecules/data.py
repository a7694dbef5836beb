"""Molecule data for the molecules app: the MOSES benchmark splits, prepared once from the molsets wheel, and the
reader of a user's own file of molecules (.smi / .csv / .sdf, optionally gzipped).

MOSES (Polykovskiy et al. 2020, MIT licence) ships its data inside the `molsets==0.3.1` wheel; `prepare` pip-downloads
that wheel (no install: its pinned dependencies do not build), keeps the raw members under data/molecules/raw/, and
writes data/molecules/prepared/: one SMILES per line per split, the two SMARTS tables of the Filters metric, the
reference statistics converted from pickles to plain arrays (`reference.convert_moses_stats`), and manifest.json.
The MOSES training file is ordered (not shuffled): draw training sets with `subsample`, never by taking a head.

A user's file is read leniently but never silently: every molecule is canonicalised with RDKit, and empty lines,
unparsable strings and salts / mixtures (more than one fragment) are skipped and counted in `MoleculeFile.skipped`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import shutil
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rdkit import Chem

from apps.molecules import chem
from apps.molecules.tokens import Tokenizer, Vocab
from shared.atomic import atomic_path, atomic_write_json, atomic_write_text
from shared.errors import ConfigError, DataError
from shared.wheels import extract_from_wheel

ROOT = Path(__file__).resolve().parents[2]  # repo root: defaults do not depend on the working directory
RAW_DIR = ROOT / "data" / "molecules" / "raw"  # gitignored (data/*/raw/)
PREPARED_DIR = ROOT / "data" / "molecules" / "prepared"  # gitignored (data/*/prepared/)

MOSES_REQUIREMENT = "molsets==0.3.1"
MOSES_LICENCE = "MIT"
MOSES_URL = "https://github.com/molecularsets/moses"
RAW_MEMBERS = {  # path inside the wheel -> flat file name in RAW_DIR
    "moses/dataset/data/train.csv.gz": "train.csv.gz",
    "moses/dataset/data/test.csv.gz": "test.csv.gz",
    "moses/dataset/data/test_scaffolds.csv.gz": "test_scaffolds.csv.gz",
    "moses/dataset/data/test_stats.npz": "test_stats.npz",
    "moses/dataset/data/test_scaffolds_stats.npz": "test_scaffolds_stats.npz",
    "moses/metrics/mcf.csv": "mcf.csv",
    "moses/metrics/wehi_pains.csv": "wehi_pains.csv",
}
SPLITS = ("train", "test", "test_scaffolds")
STATS = {"test_stats.npz": "test", "test_scaffolds_stats.npz": "test_scaffolds"}  # reference stats of the test sets
FILTERS = ("mcf.csv", "wehi_pains.csv")  # SMARTS of the Filters metric (MOSES's copies, not RDKit's PAINS)
PREPARED_FILES = (*(f"{s}.smi" for s in SPLITS), *FILTERS, *STATS, "manifest.json")

SMILES_SUFFIXES = (".smi", ".smiles", ".txt")
MOLECULE_SUFFIXES = (*SMILES_SUFFIXES, ".csv", ".sdf")
MAX_SMILES_CHARS = 2_000  # longer "SMILES" are junk (MOSES molecules have < 100 characters); RDKit would crawl
SKIP_REASONS = ("empty", "invalid", "multi_fragment", "too_large")
_BAD_RECORD = "\x00"  # what a record reader yields for a record it could not parse (no SMILES contains NUL)


def _log(msg: str) -> None:
    print(f"molecules data: {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ MOSES


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_raw(raw_dir: str | Path = RAW_DIR, timeout: float = 300.0) -> dict[str, Path]:
    """Make sure every raw MOSES file is in `raw_dir`, pip-downloading the molsets wheel for the missing ones;
    return {file name: path}."""
    raw_dir = Path(raw_dir)
    missing = {m: raw_dir / name for m, name in RAW_MEMBERS.items() if not (raw_dir / name).is_file()}
    if missing:
        _log(f"extracting {len(missing)} MOSES files from the {MOSES_REQUIREMENT} wheel into {raw_dir}")
        hint = (
            f"run `python -m apps.molecules prepare` once with access to PyPI, or copy "
            f"{', '.join(sorted(RAW_MEMBERS.values()))} from the {MOSES_REQUIREMENT} wheel into {raw_dir}"
        )
        extract_from_wheel(MOSES_REQUIREMENT, missing, hint, timeout)
    return {name: raw_dir / name for name in RAW_MEMBERS.values()}


def _read_moses_csv(path: Path) -> list[str]:
    """The SMILES column of a MOSES split (gzipped CSV with header `SMILES`; molsets 0.3.1 has no other column)."""
    fix = f"delete {path} and run prepare again to re-extract it"
    try:
        with gzip.open(path, "rt", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if "SMILES" not in header:
                raise DataError(f"{path} has no SMILES column (header {header[:4]}): {fix}")
            col = header.index("SMILES")
            smiles = [row[col] for row in reader if row]
    except (OSError, EOFError, zlib.error, csv.Error, IndexError) as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {str(e)[:80]}): {fix}") from e
    if not smiles or not all(smiles):
        raise DataError(f"{path} has no molecules or empty SMILES rows: {fix}")
    return smiles


def _prepared(prepared_dir: Path) -> bool:
    return all((prepared_dir / name).is_file() for name in PREPARED_FILES)


def prepare(raw_dir: str | Path = RAW_DIR, prepared_dir: str | Path = PREPARED_DIR, force: bool = False) -> Path:
    """Write the prepared MOSES files to `prepared_dir` and return it; a no-op when they are all there (unless force).

    Writes train.smi / test.smi / test_scaffolds.smi (one SMILES per line, in the order of the MOSES files, no
    header), copies mcf.csv and wehi_pains.csv, converts test_stats.npz and test_scaffolds_stats.npz (pickles) to
    plain arrays (adding the GuacaMol KL reference of each test set), and finally manifest.json (source, licence,
    counts, sha256 of the raw files): written last, so its presence means the preparation finished. Every file is
    written atomically.
    """
    raw_dir, prepared_dir = Path(raw_dir), Path(prepared_dir)
    if not force and _prepared(prepared_dir):
        return prepared_dir
    start = time.perf_counter()
    raw = fetch_raw(raw_dir)
    prepared_dir.mkdir(parents=True, exist_ok=True)
    counts, test_smiles = {}, {}
    for split in SPLITS:
        t0 = time.perf_counter()
        smiles = _read_moses_csv(raw[f"{split}.csv.gz"])
        atomic_write_text(prepared_dir / f"{split}.smi", "\n".join(smiles) + "\n")
        counts[split] = len(smiles)
        if split in STATS.values():
            test_smiles[split] = smiles
        _log(f"{split}.smi: {len(smiles):,} SMILES ({time.perf_counter() - t0:.1f} s)")
    for name in FILTERS:
        with atomic_path(prepared_dir / name) as tmp:
            shutil.copyfile(raw[name], tmp)
    from apps.molecules.reference import convert_moses_stats  # noqa: PLC0415  (pulls in torch and ChemNet; only prepare needs it)

    for name, split in STATS.items():
        t0 = time.perf_counter()
        convert_moses_stats(raw[name], prepared_dir / name, kl_smiles=test_smiles[split])  # + GuacaMol KL reference
        _log(f"{name}: reference statistics converted ({time.perf_counter() - t0:.1f} s)")
    manifest = {
        "dataset": "MOSES",
        "source": MOSES_REQUIREMENT,
        "url": MOSES_URL,
        "licence": MOSES_LICENCE,
        "counts": counts,
        "raw_sha256": {name: _sha256(path) for name, path in sorted(raw.items())},
    }
    atomic_write_json(prepared_dir / "manifest.json", manifest)
    _log(f"prepared {prepared_dir} in {time.perf_counter() - start:.1f} s")
    return prepared_dir


def load_split(name: str, prepared_dir: str | Path = PREPARED_DIR) -> list[str]:
    """The SMILES of MOSES split `name` ("train" | "test" | "test_scaffolds"), in file order; prepares on first use."""
    if name not in SPLITS:
        raise ConfigError(f"unknown MOSES split {name!r}: choose one of {', '.join(SPLITS)}")
    prepared_dir = Path(prepared_dir)
    path = prepared_dir / f"{name}.smi"
    if not path.is_file():
        prepare(RAW_DIR, prepared_dir)
    return path.read_text().splitlines()


def subsample(smiles: Sequence[str], n: int, seed: int) -> list[str]:
    """n SMILES drawn at random without replacement, in random order; n >= len(smiles) gives a shuffled copy."""
    if n < 0:
        raise ConfigError(f"cannot draw n={n} molecules: n must be >= 0")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(smiles)) if n >= len(smiles) else rng.choice(len(smiles), size=n, replace=False)
    return [smiles[i] for i in idx]


# ------------------------------------------------------------------------------------------- user files


@dataclass
class MoleculeFile:
    """The molecules read from one file: canonical SMILES in file order and the records skipped, by reason."""

    path: Path
    smiles: list[str]
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))

    @property
    def total(self) -> int:
        """Records read (molecules kept plus skipped; a header line is not a record)."""
        return len(self.smiles) + sum(self.skipped.values())

    def summary(self) -> str:
        """E.g. "read 9,000 molecules from x.smi; skipped 1,000 (empty 10, invalid 900, multi-fragment 90)"."""
        n_skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in self.skipped.items() if v)
        tail = f"; skipped {n_skipped:,} ({reasons})" if n_skipped else "; skipped none"
        return f"read {len(self.smiles):,} molecules from {self.path.name}{tail}"


def _suffix(path: Path) -> tuple[str, bool]:
    """The format suffix (".smi", ".csv", ...) and whether the file is gzipped."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def _open_text(path: Path, gz: bool):
    # errors="replace": binary junk becomes U+FFFD and then an invalid SMILES, counted, never a crash
    if gz:
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def _smiles_records(path: Path, gz: bool) -> Iterator[str]:
    """First whitespace-separated column of each line; a first line "smiles" / "SMILES" is a header."""
    with _open_text(path, gz) as f:
        for i, line in enumerate(f):
            parts = line.split(None, 1)
            first = parts[0] if parts else ""
            if i == 0 and first.lower() == "smiles":
                continue
            yield first


def _csv_records(path: Path, gz: bool) -> Iterator[str]:
    """The column named smiles (any case) of a CSV, else its first column.

    Without a smiles column, the first row is taken as a header unless its first cell is a valid molecule.
    """
    with _open_text(path, gz) as f:
        reader = csv.reader(f)
        col, first = 0, True
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:  # a field past csv's size limit or similar: one bad record, keep reading
                yield _BAD_RECORD
                continue
            if first:
                first = False
                names = [c.strip().lower() for c in row]
                if "smiles" in names:
                    col = names.index("smiles")
                    continue
                if not row or chem.mol(row[0].strip()) is None:
                    continue  # a header without a smiles column
            yield row[col].strip() if len(row) > col else ""


def _sdf_records(path: Path, gz: bool) -> Iterator[str]:
    """SMILES of each SDF record (_BAD_RECORD for an unparsable one, "" for a record without atoms)."""
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
        for m in Chem.ForwardSDMolSupplier(f, sanitize=True):
            if m is None:
                yield _BAD_RECORD
            elif m.GetNumAtoms() == 0:
                yield ""
            else:
                yield Chem.MolToSmiles(m)


def _records(path: Path) -> Iterator[str]:
    suffix, gz = _suffix(path)
    if suffix in SMILES_SUFFIXES:
        return _smiles_records(path, gz)
    if suffix == ".csv":
        return _csv_records(path, gz)
    return _sdf_records(path, gz)


def _check_path(path: Path) -> None:
    formats = f"give a {'/'.join(MOLECULE_SUFFIXES)} file (optionally .gz) of molecules"
    if not path.exists():
        raise DataError(f"no such file: {path}: {formats}")
    if path.is_dir():
        raise DataError(f"{path} is a folder: {formats}")
    suffix, _ = _suffix(path)
    if suffix not in MOLECULE_SUFFIXES:
        raise DataError(f"unknown molecule file type {''.join(path.suffixes) or '(none)'} of {path}: {formats}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty: {formats}")


def read_molecules(path: str | Path, max_atoms: int | None = None) -> MoleculeFile:
    """Canonical SMILES of the molecules in a .smi/.smiles/.txt, .csv or .sdf file (optionally .gz), in file order.

    Empty records, invalid molecules (MOSES `get_mol` semantics), salts and mixtures (more than one fragment) and,
    with `max_atoms`, molecules with more heavy atoms are skipped and counted in `skipped`; a file with nothing
    valid in it, or one that cannot be read, raises a one-line DataError.
    """
    path = Path(path)
    _check_path(path)
    out = MoleculeFile(path, [])
    skipped = out.skipped
    try:
        for s in _records(path):
            if not s:
                skipped["empty"] += 1
                continue
            m = None if len(s) > MAX_SMILES_CHARS or _BAD_RECORD in s else chem.mol(s)
            if m is None:
                skipped["invalid"] += 1
            elif chem.fragments(m) > 1:
                skipped["multi_fragment"] += 1
            elif max_atoms is not None and m.GetNumHeavyAtoms() > max_atoms:
                skipped["too_large"] += 1
            else:
                out.smiles.append(Chem.MolToSmiles(m))
    except (OSError, EOFError, zlib.error, UnicodeError) as e:
        raise DataError(f"cannot read {path} ({type(e).__name__}: {str(e)[:80]}): check the file is not corrupt") from e
    if not out.smiles:
        counts = ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in skipped.items() if v) or "no records"
        raise DataError(
            f"no valid single-fragment molecules in {path} ({counts}): give one molecule per record as SMILES "
            "(first column / a 'smiles' column) or SDF"
        )
    return out


def filter_vocabulary(smiles: Sequence[str], tokenizer: Tokenizer, vocab: Vocab) -> tuple[list[str], int]:
    """The SMILES whose every token is in `vocab` (as a trained model needs), and how many were dropped."""
    kept = []
    for s in smiles:
        try:
            tokens = tokenizer.split(s)
        except ValueError:
            continue
        if tokens and all(t in vocab for t in tokens):
            kept.append(s)
    return kept, len(smiles) - len(kept)
