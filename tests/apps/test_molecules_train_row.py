"""Acceptance check of the MOSES metrics: a random sample of the MOSES training set, scored against the test
reference, reproduces the published "Train" row (MOSES README: SNN/Test 0.6419, Frag/Test 1.0, Scaf/Test 0.9907,
IntDiv 0.8567, Filters 1.0).

Needs the prepared MOSES data (`apps.molecules.data.prepare()`, which extracts the molsets wheel on first use).
The full 30,000-molecule check with every metric is run by hand (30k train sample, seed 0, 104 s on 2 cores:
SNN/Test 0.6420, Frag/Test 0.9999, Scaf/Test 0.9475, IntDiv 0.8568, Filters 1.0, FCD/Test 0.048 at N = 30k). This
test keeps to ~30 s on 2 CPU cores by scoring 4,000 molecules with `moses_metrics` and the scaffolds of 30,000.
FCD is not checked: it falls with N (0.63 at 2k, 0.048 at 30k; a + b/N extrapolates to 0.010 for the whole
training set, published 0.008), so the published row, computed on the whole training set, is out of reach here.
"""

import numpy as np
import pytest

from apps.molecules import chem, data, metrics, reference

N_METRICS = 4_000  # SNN / IntDiv / Filters are means over molecules: the sample size barely moves them
N_SCAF = 30_000  # the MOSES sample size


@pytest.fixture(scope="module")
def moses():
    prepared = data.prepare()
    train = data.load_split("train", prepared)
    sample_idx = np.random.default_rng(0).choice(len(train), size=N_SCAF, replace=False)
    return {
        "train": train,
        "sample": [train[i] for i in sample_idx],
        "test": reference.load_reference(prepared / "test_stats.npz"),
        "filters": reference.load_filters(prepared),
    }


def test_train_sample_reproduces_the_published_train_row(moses):
    gen = moses["sample"][:N_METRICS]
    out = metrics.moses_metrics(
        gen,
        set(moses["train"]),
        {"test": moses["test"]},
        moses["filters"],
        k=(1000,),
        progress=False,
        guacamol_n=N_METRICS,
    )
    assert out["valid"] == 1.0 and out["unique_1k"] == 1.0
    # Every molecule is a training molecule; a rare few re-canonicalise differently with today's RDKit than with
    # the one that wrote MOSES (1 in the 30k sample), which MOSES's string compare then counts as novel.
    assert out["novelty"] <= 0.001
    assert out["snn_test"] == pytest.approx(0.6419, abs=0.01)
    assert out["frag_test"] == pytest.approx(1.0, abs=0.01)
    assert out["intdiv"] == pytest.approx(0.8567, abs=0.01)
    assert out["filters"] == 1.0  # MOSES built its training set with these filters
    for prop in chem.PROPERTIES:  # the training and test sets share one property distribution
        assert out[f"{prop}_w"] < (0.05 if prop != "weight" else 1.5)
    assert 0.85 < out["guacamol_kl_score"] <= 1.0


def test_train_sample_scaffold_similarity(moses):
    """Scaf/Test grows with the sample size (a cosine of sparse counters over ~77k scaffolds): the published 0.9907
    is the value for the WHOLE training set (our run on all 1,584,663 molecules gives 0.99074, and Frag 0.99998),
    while a sample of 30,000 gives 0.942-0.948 with three seeds. So the tolerance is 0.05 here; below 30,000 it
    would have to grow further (0.88 at 10,000, 0.80 at 5,000)."""
    mols = [chem.mol(s) for s in moses["sample"]]  # MOSES SMILES are RDKit-canonical already: parse once
    assert len(mols) == N_SCAF
    scaf = metrics.scaf_similarity(mols, moses["test"].scaf)
    assert scaf == pytest.approx(0.9907, abs=0.05)
    assert 0.93 < scaf < 0.96  # 0.9475 for seed 0
