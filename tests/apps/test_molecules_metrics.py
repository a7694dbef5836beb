"""Unit tests for the MOSES / GuacaMol metrics (apps/molecules/metrics.py), ChemNet and the Frechet distance
(fcd.py) and the reference statistics files (reference.py): hand-checked sets and closed forms; no network, no
MOSES data (molecules from the test itself and from RDKit's bundled NCI / WEHI files)."""

import csv
import pickle
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem, RDConfig

from apps.molecules import chem, fcd, metrics, reference
from shared.errors import DataError

# Drug-like molecules with >= 2-ring scaffolds (so Scaf is defined), one acyclic and one single-ring molecule.
DRUGS = [
    "CC(=O)Nc1ccc(O)cc1",
    "CN1CCC[C@H]1c1cccnc1",
    "O=C(O)Cc1ccccc1Nc1c(Cl)cccc1Cl",
    "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "COc1ccc2[nH]cc(CCN(C)C)c2c1",
    "c1ccc2c(c1)ccc1ccccc12",
    "O=C1CN=C(c2ccccc2)c2cc(Cl)ccc2N1",
    "Cc1ccc(S(=O)(=O)N2CCCC2)cc1",
    "CCOC(=O)C1=C(C)NC(C)=C(C(=O)OC)C1c1cccc(Cl)c1",
    "CCCCCC(=O)OCC",
]


def _nci(n: int) -> list[str]:
    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    return [line.split()[0] for line in path.read_text().splitlines()[:n]]


def _mols(smiles):
    return [chem.mol(s) for s in smiles]


@pytest.fixture(scope="module")
def filters(tmp_path_factory):
    """A small filter set in the MOSES file formats: one MCF SMARTS (with header) and two PAINS rows (no header,
    a quoted SMARTS padded with spaces as in wehi_pains.csv)."""
    d = tmp_path_factory.mktemp("filters")
    (d / "mcf.csv").write_text('names,smarts\nMCF4,"[H]C([H])([#6])[F,Cl,Br,I]"\n')
    (d / "wehi_pains.csv").write_text(
        '"[#6]-1(-[#6](~[#8])~[#7]~[#6](~[#16])~[#16]-1)=[#6]"      ,"<regId=ene_rhod_A>"\n'
        '"[#7](-[#1])(-[#1])-c:1:c:c:c:c:c:1"   ,"<regId=anil_nh2>"\n'
    )
    return reference.load_filters(d)


# ---------------------------------------------------------------- validity, uniqueness, novelty


def test_valid_and_unique_on_hand_lists():
    gen = ["CCO", "OCC", "", "C1CC", "c1ccccc1", "C(C)(C)(C)(C)C", "CCO", "xyz"]
    assert metrics.fraction_valid(gen) == pytest.approx(4 / 8)  # '', unclosed ring, pentavalent C, junk
    canon = metrics.canonical_valid(gen)
    assert canon == ["CCO", "CCO", "c1ccccc1", "CCO"]  # canonical, order and duplicates kept
    assert metrics.fraction_unique(canon, 3) == pytest.approx(2 / 3)
    with pytest.warns(UserWarning, match="unique@10"):
        assert metrics.fraction_unique(canon, 10) == pytest.approx(2 / 4)  # fewer than k: all of them, warned
    with pytest.raises(DataError):
        metrics.fraction_valid([])


def test_novelty_string_compare_with_train():
    canon = ["CCO", "CCO", "c1ccccc1", "CCN"]
    assert metrics.novelty(canon, set(canon)) == 0.0
    assert metrics.novelty(canon, ["CCO"]) == pytest.approx(2 / 3)  # distinct generated: 3, novel: 2
    assert metrics.novelty(canon, {"OCC"}) == 1.0  # plain string compare: train is taken as given


# ---------------------------------------------------------------- Tanimoto, SNN, IntDiv


def _tanimoto_brute(a, b):
    inter = (a[:, None, :] & b[None, :, :]).sum(-1)
    union = (a[:, None, :] | b[None, :, :]).sum(-1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def test_tanimoto_reduce_matches_brute_force_over_blocks():
    rng = np.random.default_rng(0)
    a = (rng.random((37, 64)) < 0.2).astype(np.uint8)
    b = (rng.random((53, 64)) < 0.2).astype(np.uint8)
    a[0] = 0
    b[5] = 0  # two empty fingerprints: T = 1 (MOSES)
    t = _tanimoto_brute(a, b)
    kw = dict(block=(8, 16))  # awkward sizes: several partial blocks
    np.testing.assert_allclose(metrics.tanimoto_reduce(a, b, "max", **kw), t.max(1), rtol=1e-6)
    np.testing.assert_allclose(metrics.tanimoto_reduce(a, b, "mean", **kw), t.mean(1), rtol=1e-6)
    p2 = np.sqrt((t**2).mean(1))
    np.testing.assert_allclose(metrics.tanimoto_reduce(a, b, "mean", p=2, **kw), p2, rtol=1e-6)
    s = _tanimoto_brute(a, a)
    np.fill_diagonal(s, 0)
    np.testing.assert_allclose(metrics.tanimoto_reduce(a, a, "max", exclude_self=True, **kw), s.max(1), rtol=1e-6)
    dense = (rng.random((9, 1024)) < 0.5).astype(np.uint8)  # > 256 bits set: the float32 product path
    np.testing.assert_allclose(
        metrics.tanimoto_reduce(dense, dense[::-1], "mean"), _tanimoto_brute(dense, dense[::-1]).mean(1), rtol=1e-6
    )


def test_snn_and_intdiv_hand_sets():
    fps = chem.morgan_bits(_mols(DRUGS))
    assert metrics.snn(fps, fps) == pytest.approx(1.0)
    same = chem.morgan_bits(_mols(["c1ccccc1O"] * 5))
    assert metrics.internal_diversity(same) == pytest.approx(0.0, abs=1e-7)
    assert metrics.internal_diversity(same, p=2) == pytest.approx(0.0, abs=1e-7)
    t = _tanimoto_brute(fps, fps)
    assert metrics.internal_diversity(fps) == pytest.approx(1 - t.mean(), rel=1e-6)  # j runs over i too
    assert metrics.internal_diversity(fps, p=2) == pytest.approx(1 - np.sqrt((t**2).mean(1)).mean(), rel=1e-6)


# ---------------------------------------------------------------- fragments, scaffolds


def test_frag_scaf_of_a_set_against_itself_and_two_ring_rule():
    mols = _mols(DRUGS)
    frag = Counter(f for m in mols for f in metrics.brics_fragments(m))
    scaf = Counter(s for s in map(metrics.scaffold, mols) if s is not None)
    assert metrics.frag_similarity(mols, frag) == pytest.approx(1.0)
    assert metrics.scaf_similarity(mols, scaf) == pytest.approx(1.0)
    assert metrics.scaffold(chem.mol("CCCCCC(=O)OCC")) is None  # acyclic
    assert metrics.scaffold(chem.mol("CC(C)Cc1ccc(C(C)C(=O)O)cc1")) is None  # one ring: MOSES min_rings=2
    assert metrics.scaffold(chem.mol("COc1ccc2[nH]cc(CCN(C)C)c2c1")) == "c1ccc2[nH]ccc2c1"
    assert metrics.brics_fragments(chem.mol("CC(=O)Nc1ccc(O)cc1")) == ["[1*]C(C)=O", "[16*]c1ccc(O)cc1", "[5*]N[5*]"]


def test_cos_similarity_closed_form():
    assert metrics.cos_similarity({"a": 1, "b": 1}, {"a": 1}) == pytest.approx(1 / np.sqrt(2))
    assert metrics.cos_similarity({"a": 3}, {"b": 2}) == 0.0
    assert np.isnan(metrics.cos_similarity({}, {"a": 1}))


# ---------------------------------------------------------------- filters


def test_filters_on_hand_molecules(filters):
    assert len(filters) == 3
    assert filters.passes(chem.mol("c1ccccc1"))
    assert not filters.passes(chem.mol("C[N+](C)(C)C"))  # charged
    assert not filters.passes(chem.mol("C1CCCCCCC1"))  # ring of 8 atoms
    assert filters.passes(chem.mol("C1CCCCCC1"))  # 7 is fine
    assert not filters.passes(chem.mol("COP(=O)(OC)OC"))  # phosphorus is not an allowed atom
    assert not filters.passes(chem.mol("CCCl"))  # MCF4: primary alkyl halide (needs the explicit hydrogens)
    assert not filters.passes(chem.mol("O=C1NC(=S)SC1=Cc1ccccc1"))  # PAINS ene_rhod
    assert not filters.passes(chem.mol("Nc1ccccc1"))  # PAINS row 2
    assert metrics.fraction_passes_filters(_mols(["c1ccccc1", "CCCl"]), filters) == 0.5
    clone = pickle.loads(pickle.dumps(filters))  # workers get the SMARTS and compile them again
    assert clone.smarts == filters.smarts and not clone.passes(chem.mol("CCCl"))


def test_filter_screen_never_changes_the_answer(filters):
    """The pattern-fingerprint screen only skips impossible matches: same verdicts as matching every pattern, on
    WEHI molecules (many PAINS hits) with the full MOSES-format PAINS file RDKit ships beside them."""
    rows = list(csv.reader(open(Path(RDConfig.RDDataDir) / "Pains" / "test_data" / "wehi_mols.csv")))
    mols = [m for m in (chem.mol(r[0]) for r in rows[:300]) if m is not None]
    pains = Path(RDConfig.RDDataDir) / "Pains" / "wehi_pains.csv"
    smarts = [r[0].strip() for r in csv.reader(open(pains)) if r]
    fast, slow = metrics.Filters(smarts), metrics.Filters(smarts, screen=False)
    h = [Chem.AddHs(m) for m in mols]
    verdicts = [fast.matches(x) for x in h]
    assert verdicts == [slow.matches(x) for x in h]
    assert sum(verdicts) > 20


def test_load_filters_errors(tmp_path):
    with pytest.raises(DataError, match="prepare"):
        reference.load_filters(tmp_path)


# ---------------------------------------------------------------- ChemNet and Frechet distance


def test_featurizer_equals_fcd_torch():
    from fcd_torch.utils import get_one_hot  # the reference implementation; only this pure function is used

    smiles = [Chem.MolToSmiles(m) for m in map(Chem.MolFromSmiles, _nci(400)) if m is not None]
    smiles += ["C.CCl", ".C", "[Li]C", "C" * 400, "C[Si](C)(C)Br", "Brc1ccc(I)cc1"]  # dots, unknowns, truncation
    theirs = np.stack([get_one_hot(s, 350) / 35 for s in smiles]).astype(np.float32)
    np.testing.assert_array_equal(fcd.featurize(smiles), theirs)


def test_chemnet_equals_fcd_torch_network():
    from fcd_torch.utils import load_imported_model

    layers = torch.load(fcd.weights_path(), map_location="cpu", weights_only=True)
    theirs = load_imported_model(layers).eval()
    x = torch.from_numpy(fcd.featurize(DRUGS)).transpose(1, 2)
    with torch.no_grad():
        np.testing.assert_allclose(fcd.load_chemnet()(x).numpy(), theirs(x).numpy(), atol=1e-6)
    act = fcd.chemnet_activations(DRUGS, batch_size=3)
    assert act.shape == (len(DRUGS), 512)
    np.testing.assert_allclose(act, fcd.chemnet_activations(DRUGS, batch_size=64), atol=1e-5)  # batch-size rounding


def test_same_padding_matches_keras_quirk():
    assert fcd.same_padding(350, 4, 2) == (1, 1)
    assert fcd.same_padding(175, 4, 2) == (1, 2)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 2, 6), rng.uniform(0.1, 2, 6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert fcd.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)
    s = np.cov(rng.normal(size=(5, 20)), rowvar=False)  # rank-deficient covariance against itself
    assert fcd.frechet_distance(mu1[:1].repeat(20), s, mu1[:1].repeat(20), s) == pytest.approx(0, abs=1e-6)


def test_frechet_distance_equals_fcd_torch_on_random_spd():
    from fcd_torch.utils import calculate_frechet_distance

    rng = np.random.default_rng(1)
    for d in (3, 17, 64):
        a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
        s1, s2 = a @ a.T / d + 1e-3 * np.eye(d), b @ b.T / d
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's sqrtm(disp=False) deprecation inside fcd_torch
            theirs = calculate_frechet_distance(mu1, s1, mu2, s2)
        assert fcd.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(theirs, rel=1e-8)


# ---------------------------------------------------------------- reference files and the whole metric set


def _fake_moses_stats(path, rng):
    stats = {
        "FCD": {"mu": rng.normal(size=512).astype(np.float32), "sigma": np.eye(512)},
        "SNN": {"fps": (rng.random((7, 1024)) < 0.05).astype(np.uint8)},
        "Frag": {"frag": Counter({"[1*]C(C)=O": 3, "[16*]c1ccccc1": 1})},
        "Scaf": {"scaf": Counter({"c1ccc2ccccc2c1": 2})},
        **{k: {"values": rng.normal(size=7).tolist()} for k in ("logP", "SA", "QED", "weight")},
    }
    np.savez(path, stats=np.array(stats, dtype=object))
    return stats


def test_converted_stats_round_trip_without_pickle(tmp_path):
    stats = _fake_moses_stats(tmp_path / "moses.npz", np.random.default_rng(0))
    reference.convert_moses_stats(tmp_path / "moses.npz", tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as z:  # loads with pickle off: plain arrays only
        assert z["snn_fps"].shape == (7, 128) and z["frag_keys"].dtype.kind == "U"
    ref = reference.load_reference(tmp_path / "plain.npz")
    np.testing.assert_array_equal(ref.fingerprints(), stats["SNN"]["fps"])
    np.testing.assert_array_equal(ref.fcd_mu, stats["FCD"]["mu"])
    assert ref.frag == stats["Frag"]["frag"] and ref.scaf == stats["Scaf"]["scaf"]
    np.testing.assert_allclose(ref.qed, stats["QED"]["values"])
    assert ref.kl_descriptors is None
    ref.save(tmp_path / "again.npz")
    again = reference.load_reference(tmp_path / "again.npz")
    assert again.frag == ref.frag and np.array_equal(again.snn_fps, ref.snn_fps)
    with pytest.raises(DataError, match="apps.molecules prepare"):
        reference.load_reference(tmp_path / "missing.npz")


def test_moses_metrics_of_a_set_against_itself(filters):
    ref = reference.reference_from_smiles(DRUGS, guacamol=False)
    assert ref.fcd_mu.shape == (512,) and ref.fingerprints().shape == (len(DRUGS), 1024)
    gen = DRUGS + ["", "C1CC"]  # two invalid strings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unique@k on fewer than k; no GuacaMol reference
        out = metrics.moses_metrics(gen, set(DRUGS), {"test": ref, "testsf": ref}, filters, progress=False)
    assert out["n_generated"] == 12 and out["n_valid"] == 10 and out["valid"] == pytest.approx(10 / 12)
    assert out["unique_1k"] == 1.0 and out["novelty"] == 0.0
    for name in ("test", "testsf"):
        assert out[f"snn_{name}"] == pytest.approx(1.0)
        assert out[f"frag_{name}"] == pytest.approx(1.0)
        assert out[f"scaf_{name}"] == pytest.approx(1.0)
        assert out[f"fcd_{name}"] == pytest.approx(0.0, abs=1e-4)
    assert out["guacamol_fcd_score"] == pytest.approx(1.0, abs=1e-4)
    for prop in chem.PROPERTIES:
        assert out[f"{prop}_w"] == pytest.approx(0.0, abs=1e-9)
    assert out["filters"] == 1.0  # no charge, P, macrocycle, CH2-halide, rhodanine or aniline NH2 among DRUGS
    assert np.isnan(out["guacamol_kl_score"])
    assert 0 < out["intdiv"] < 1 and 0 < out["intdiv2"] < 1


def test_guacamol_kl_score_of_a_set_against_itself():
    smiles = _nci(300)
    desc, nn = metrics.guacamol_kl_reference(smiles, n=300)
    assert desc.shape[1] == 9 and len(nn) == len(desc)
    assert metrics.guacamol_kl_score(smiles, desc, nn, n=300) == pytest.approx(1.0, abs=1e-6)
    with pytest.warns(UserWarning, match="50 distinct molecules instead of 300"):
        other = metrics.guacamol_kl_score(DRUGS * 3 + _nci(40), desc, nn, n=300)
    assert 0 < other < 0.95
    assert metrics.guacamol_fcd_score(0.0) == 1.0 and metrics.guacamol_fcd_score(5.0) == pytest.approx(np.exp(-1))


def test_moses_metrics_with_nothing_valid(filters):
    ref = reference.reference_from_smiles(DRUGS, guacamol=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metrics.moses_metrics(["", "C1CC", "xyz"], set(), {"test": ref}, filters, progress=False)
    assert out["valid"] == 0.0 and out["n_valid"] == 0
    assert all(np.isnan(out[key]) for key in ("unique_1k", "novelty", "fcd_test", "snn_test", "intdiv", "filters"))


def test_molecule_features_in_worker_processes_equal_serial(filters, monkeypatch):
    monkeypatch.setattr(metrics, "_MIN_PARALLEL", 1)
    canonical = metrics.canonical_valid(_nci(60) + DRUGS)
    serial = metrics.molecule_features(canonical, filters, n_jobs=1)
    parallel = metrics.molecule_features(canonical, filters, n_jobs=2)
    assert parallel.smiles == serial.smiles and parallel.frag == serial.frag and parallel.scaf == serial.scaf
    np.testing.assert_array_equal(parallel.fps, serial.fps)
    np.testing.assert_array_equal(parallel.passes, serial.passes)
    np.testing.assert_allclose(parallel.props, serial.props)
    assert 0 < serial.passes.mean() < 1  # NCI has charged, phosphorus and PAINS-like molecules
