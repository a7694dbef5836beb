"""Unit tests for apps/molecules/data.py: MOSES preparation on a tiny fake raw folder (and on a faked wheel
download), split loading and subsampling, and the reader of users' molecule files with its skip counts and one-line
errors. Nothing touches the network or the 1.6M-molecule MOSES files: `extract_from_wheel` is monkeypatched and the
stats conversion (apps/molecules/reference.py) is replaced by a stand-in module.
"""

import csv
import gzip
import hashlib
import json
import os
import sys
import types

import pytest
from rdkit import Chem, RDConfig

from apps.molecules import chem
from apps.molecules import data as md
from apps.molecules.tokens import Tokenizer, Vocab
from shared.errors import ConfigError, DataError

TRAIN = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CN1CCC[C@H]1c1cccnc1", "O=C(O)c1ccccc1O"]
TEST = ["CCN", "c1ccncc1"]
SCAFFOLDS = ["C1CCCCC1", "Cc1ccccc1", "OCCO"]


def nci_molecules(n: int) -> list[str]:
    """Canonical single-fragment molecules from RDKit's bundled first_5K.smi."""
    out = []
    with open(os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")) as f:
        for line in f:
            m = chem.mol(line.split()[0])
            if m is not None and chem.fragments(m) == 1:
                out.append(Chem.MolToSmiles(m))
            if len(out) == n:
                return out
    raise AssertionError("first_5K.smi has too few molecules")


def write_split(path, smiles):
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["SMILES"])
        w.writerows([s] for s in smiles)


def fake_raw_files() -> dict[str, bytes]:
    """{raw file name: content} of a tiny MOSES: the three splits, the two SMARTS tables, stand-in stats files."""
    out = {}
    for name, smiles in (("train", TRAIN), ("test", TEST), ("test_scaffolds", SCAFFOLDS)):
        lines = "SMILES\n" + "".join(f"{s}\n" for s in smiles)
        out[f"{name}.csv.gz"] = gzip.compress(lines.encode())
    out["mcf.csv"] = b"names,smarts\nMCF1,[#6]=&!@[#6]-[#6]#[#7]\n"
    out["wehi_pains.csv"] = b'"[#7]-[#7]","<regId=x(1)>"\n'
    out["test_stats.npz"] = b"pickled test stats"
    out["test_scaffolds_stats.npz"] = b"pickled scaffold stats"
    return out


@pytest.fixture
def fake_reference(monkeypatch):
    """A stand-in apps.molecules.reference whose convert_moses_stats copies the file and records the call."""
    calls = []

    def convert_moses_stats(src, dst, kl_smiles=None):
        calls.append((src.name, dst.name, kl_smiles))
        dst.write_bytes(b"converted " + src.read_bytes())

    module = types.ModuleType("apps.molecules.reference")
    module.convert_moses_stats = convert_moses_stats
    monkeypatch.setitem(sys.modules, "apps.molecules.reference", module)
    return calls


# ------------------------------------------------------------------------------------------------ MOSES


def test_prepare_writes_splits_filters_stats_and_manifest(tmp_path, fake_reference, monkeypatch):
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    raw.mkdir()
    for name, content in fake_raw_files().items():
        (raw / name).write_bytes(content)
    monkeypatch.setattr(md, "extract_from_wheel", lambda *a, **k: pytest.fail("all raw files are there"))

    assert md.prepare(raw, prepared) == prepared
    assert (prepared / "train.smi").read_text() == "".join(f"{s}\n" for s in TRAIN)
    assert md.load_split("test", prepared) == TEST
    assert md.load_split("test_scaffolds", prepared) == SCAFFOLDS
    assert (prepared / "mcf.csv").read_bytes() == (raw / "mcf.csv").read_bytes()
    assert (prepared / "wehi_pains.csv").read_bytes() == (raw / "wehi_pains.csv").read_bytes()
    assert (prepared / "test_stats.npz").read_bytes() == b"converted pickled test stats"
    assert sorted(fake_reference) == [
        ("test_scaffolds_stats.npz", "test_scaffolds_stats.npz", SCAFFOLDS),
        ("test_stats.npz", "test_stats.npz", TEST),
    ]
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["source"] == "molsets==0.3.1" and manifest["licence"] == "MIT"
    assert manifest["counts"] == {"train": 5, "test": 2, "test_scaffolds": 3}
    assert manifest["raw_sha256"]["mcf.csv"] == hashlib.sha256((raw / "mcf.csv").read_bytes()).hexdigest()
    assert set(manifest["raw_sha256"]) == set(md.RAW_MEMBERS.values())
    assert not [p for p in prepared.iterdir() if p.name.startswith(".")]  # no temporary files left behind

    # idempotent: a second call does nothing; force redoes it; a deleted output is re-made on load
    stamp = (prepared / "manifest.json").stat().st_mtime_ns
    md.prepare(raw, prepared)
    assert len(fake_reference) == 2 and (prepared / "manifest.json").stat().st_mtime_ns == stamp
    md.prepare(raw, prepared, force=True)
    assert len(fake_reference) == 4
    (prepared / "train.smi").unlink()
    monkeypatch.setattr(md, "RAW_DIR", raw)
    assert md.load_split("train", prepared) == TRAIN


def test_prepare_extracts_missing_raw_files_from_the_wheel(tmp_path, fake_reference, monkeypatch):
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    raw.mkdir()
    files = fake_raw_files()
    (raw / "mcf.csv").write_bytes(files["mcf.csv"])  # one file already there: only the others are fetched
    requested = {}

    def fake_extract(requirement, members, hint, timeout=300.0):
        requested.update(members)
        assert requirement == "molsets==0.3.1" and "molsets" in hint
        for member, dest in members.items():
            dest.write_bytes(files[md.RAW_MEMBERS[member]])
        return dict(members)

    monkeypatch.setattr(md, "extract_from_wheel", fake_extract)
    md.prepare(raw, prepared)
    assert set(requested) == set(md.RAW_MEMBERS) - {"moses/metrics/mcf.csv"}
    assert "moses/dataset/data/train.csv.gz" in requested
    assert md.load_split("train", prepared) == TRAIN


def test_prepare_rejects_a_csv_without_smiles_header(tmp_path, fake_reference):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, content in fake_raw_files().items():
        (raw / name).write_bytes(content)
    (raw / "test.csv.gz").write_bytes(gzip.compress(b"smiles_wrong\nCCO\n"))
    with pytest.raises(DataError, match="no SMILES column"):
        md.prepare(raw, tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "manifest.json").exists()


def test_load_split_unknown_name():
    with pytest.raises(ConfigError, match="choose one of train, test, test_scaffolds"):
        md.load_split("valid")


def test_subsample():
    smiles = [f"C{i}" for i in range(100)]
    a = md.subsample(smiles, 10, seed=3)
    assert a == md.subsample(smiles, 10, seed=3) and a != md.subsample(smiles, 10, seed=4)
    assert len(set(a)) == 10 and set(a) <= set(smiles)
    assert a != smiles[:10]
    everything = md.subsample(smiles, 1000, seed=0)
    assert sorted(everything) == sorted(smiles) and everything != smiles
    assert md.subsample(smiles, 0, seed=0) == []
    with pytest.raises(ConfigError):
        md.subsample(smiles, -1, seed=0)


# ------------------------------------------------------------------------------------------- user files


def garbage_file_lines() -> tuple[list[str], list[str]]:
    """90 valid molecules and 10 bad lines (3 empty, 3 invalid, 2 salts, 2 binary junk) -> (lines, canonical)."""
    good = nci_molecules(90)
    bad = ["", "   ", "\t", "C1CC", "this is not a molecule", "C" * 50_000, "CC(=O)[O-].[Na+]", "Cl.NCCO"]
    lines = good[:30] + bad[:4] + good[30:60] + bad[4:] + good[60:]
    return lines, good


JUNK = [b"\xff\xfe\x00\x89PNG\x1a\x00\x00garbage\xc3\x28", b"\x00\x01\x02\x03\x04 \xe2\x82"]


def test_read_smi_counts_each_skip_reason(tmp_path):
    lines, good = garbage_file_lines()
    path = tmp_path / "mols.smi"
    body = ("SMILES\n" + "\n".join(f"{s}\tname{i}" if s.strip() else s for i, s in enumerate(lines)) + "\n").encode()
    path.write_bytes(body + b"\n".join(JUNK) + b"\n")
    mf = md.read_molecules(path)
    assert mf.smiles == good
    assert mf.skipped == {"empty": 3, "invalid": 5, "multi_fragment": 2, "too_large": 0}
    assert mf.total == 100
    assert mf.summary() == "read 90 molecules from mols.smi; skipped 10 (empty 3, invalid 5, multi-fragment 2)"


def test_read_smi_gz_and_max_atoms(tmp_path):
    lines, good = garbage_file_lines()
    path = tmp_path / "mols.smiles.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    mf = md.read_molecules(path, max_atoms=20)
    small = [s for s in good if Chem.MolFromSmiles(s).GetNumHeavyAtoms() <= 20]
    assert 0 < len(small) < len(good) and mf.smiles == small
    assert mf.skipped["too_large"] == len(good) - len(small)
    assert "too-large" in mf.summary()


def test_read_csv_with_and_without_a_smiles_column(tmp_path):
    good = nci_molecules(20)
    named = tmp_path / "named.csv"
    with open(named, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "Smiles", "activity"])
        w.writerows([i, s, 0.5] for i, s in enumerate(good))
        w.writerow([99, "CC(=O)[O-].[Na+]", 1.0])
        w.writerow([100, "", 1.0])
        w.writerow([101])  # a short row: no smiles cell
    mf = md.read_molecules(named)
    assert mf.smiles == good and mf.skipped == {"empty": 2, "invalid": 0, "multi_fragment": 1, "too_large": 0}

    headless = tmp_path / "headless.csv.gz"
    headless.write_bytes(gzip.compress("".join(f"{s},{i}\n" for i, s in enumerate(good)).encode()))
    assert md.read_molecules(headless).smiles == good  # the first row is a molecule, not a header

    excel = tmp_path / "excel.csv"  # a byte-order mark and CRLF line ends, as spreadsheets write them
    excel.write_bytes(b"\xef\xbb\xbfSMILES,name\r\n" + "".join(f"{s},x\r\n" for s in good).encode())
    assert md.read_molecules(excel).smiles == good

    other_header = tmp_path / "other.csv"
    other_header.write_text("molecule,name\n" + "".join(f"{s},x\n" for s in good))
    assert md.read_molecules(other_header).smiles == good


def test_read_csv_survives_junk_and_huge_fields(tmp_path):
    good = nci_molecules(5)
    path = tmp_path / "junk.csv"
    huge = "C" * (csv.field_size_limit() + 10)
    path.write_bytes(("smiles\n" + "\n".join(good) + f"\n{huge}\n").encode() + JUNK[0] + b"\nCCO\n")
    mf = md.read_molecules(path)
    assert mf.smiles == good + ["CCO"] and mf.skipped["invalid"] == 2


def test_read_sdf_and_sdf_gz(tmp_path):
    source = os.path.join(RDConfig.RDDataDir, "NCI", "first_200.props.sdf")
    records = open(source).read().split("$$$$\n")[:5]
    broken = records[0].splitlines()
    broken[3] = "this is not a counts line"
    text = "$$$$\n".join([records[0], "\n".join(broken) + "\n", *records[1:]]) + "$$$$\n"
    expected = [Chem.MolToSmiles(m) for m in Chem.SDMolSupplier(source)][:5]
    for name, payload in (("mols.sdf", text.encode()), ("mols.sdf.gz", gzip.compress(text.encode()))):
        (tmp_path / name).write_bytes(payload)
        mf = md.read_molecules(tmp_path / name)
        assert mf.smiles == expected and mf.skipped["invalid"] == 1 and mf.total == 6


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p / "missing.smi", "no such file"),
        (lambda p: p, "is a folder"),
        (lambda p: (p / "mols.xyz").write_text("CCO\n") and p / "mols.xyz", "unknown molecule file type .xyz"),
        (lambda p: (p / "empty.smi").write_text("") or p / "empty.smi", "is empty"),
        (lambda p: (p / "hdr.csv").write_text("smiles\n") and p / "hdr.csv", "no records"),
        (lambda p: (p / "bad.smi").write_text("C1CC\nxx\n\n") and p / "bad.smi", "empty 1, invalid 2"),
        (lambda p: (p / "fake.smi.gz").write_text("CCO\n") and p / "fake.smi.gz", "cannot read"),
        (lambda p: (p / "e.smi.gz").write_bytes(gzip.compress(b"")) and p / "e.smi.gz", "no valid"),
    ],
)
def test_read_errors_are_one_line(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(DataError, match=match) as err:
        md.read_molecules(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_filter_vocabulary():
    tok = Tokenizer("smiles")
    vocab = Vocab.build(tok.split(s) for s in ["CCO", "c1ccccc1"])
    kept, n_skipped = md.filter_vocabulary(["CCO", "CCN", "c1ccccc1O", "C{C}", "OCC"], tok, vocab)
    assert kept == ["CCO", "c1ccccc1O", "OCC"] and n_skipped == 2
