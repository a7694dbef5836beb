"""The molecules report (apps/molecules/report.py) on a hand-made run folder: a MOSES run with every output, a
run on the user's own file, and a run with nothing but an empty metrics.json. No models, no MOSES data: molecules
come from RDKit's bundled NCI file and the test-set reference is replaced by the generated properties."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rdkit import RDConfig

from apps.molecules import chem, reference
from apps.molecules.config import preset
from apps.molecules.report import PUBLISHED, build_report
from shared.config import replace
from shared.runs import RunDir

METRICS = {
    "valid": 0.9123, "unique_1k": 1.0, "unique_10k": 0.9987, "novelty": 0.8765, "fcd_test": 0.0612,
    "fcd_testsf": 0.5432, "snn_test": 0.5911, "snn_testsf": 0.5521, "frag_test": 0.9971, "frag_testsf": 0.9952,
    "scaf_test": 0.8642, "scaf_testsf": 0.1012, "intdiv": 0.8551, "intdiv2": 0.8497, "filters": 0.9876,
    "logp_w": 0.0421, "sa_w": 0.0312, "qed_w": 0.0054, "weight_w": 1.2345, "guacamol_kl_score": 0.9432,
    "guacamol_fcd_score": 0.9879, "n_generated": 30000.0, "n_train": 200000.0,
    "cond_qed_0.9_median": 0.871, "cond_qed_0.9_median_reranked": 0.893, "cond_qed_0.9_valid": 0.954,
    "cond_logp_3_median": 2.2, "cond_logp_3_median_reranked": 2.9, "cond_logp_3_valid": 0.949,
    "recon_exact": 0.6123, "recon_valid": 0.9456, "recon_n": 1000.0, "interp_valid": 0.8234,
}  # fmt: skip


def _nci(n: int) -> list[str]:
    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    return [line.split()[0] for line in path.read_text().splitlines()[:n]]


def _generated(smiles: list[str]) -> pd.DataFrame:
    df = pd.DataFrame({"smiles": smiles + ["C1CC(", "c1ccc"], "valid": [True] * len(smiles) + [False, False]})
    df["novel"] = [i % 3 != 0 for i in range(len(df))]
    props = chem.property_table(list(df["smiles"]))
    for j, p in enumerate(chem.PROPERTIES):
        df[p] = props[:, j]
    return df


def _full_run(root: Path) -> RunDir:
    run = RunDir.open("molecules", "fake", root)
    run.write_metrics(METRICS)
    smiles = _nci(30)
    _generated(smiles).to_csv(run.samples / "generated.csv", index=False)
    rng = np.random.default_rng(0)
    rows = [
        (f"{p}={v:g}", p, v, mode, s, v + rng.normal(0, 0.1 if p == "qed" else 0.8))
        for p, v in (("qed", 0.9), ("logp", 3.0))
        for mode in ("conditioned", "reranked")
        for s in smiles[:20]
    ]
    pd.DataFrame(rows, columns=["target", "property", "target_value", "mode", "smiles", "value"]).to_csv(
        run.samples / "conditional.csv", index=False
    )
    interp = [
        (k, t, s, chem.mol(s) is not None)
        for k in range(4)
        for t, s in zip(np.linspace(0, 1, 5), [smiles[k], smiles[k + 5], "C1CC(", smiles[k + 9], smiles[k + 12]])
    ]
    pd.DataFrame(interp, columns=["pair", "t", "smiles", "valid"]).to_csv(
        run.samples / "interpolation.csv", index=False
    )
    for kind, keys in (("lm", ("loss/loss", "accuracy")), ("vae", ("loss/loss", "recon", "kl"))):
        log = run.sub(f"train-{kind}").train_log
        log.write_text("".join(json.dumps({"step": s, **{k: 3.0 / s for k in keys}}) + "\n" for s in range(1, 41)))
    return run


def test_full_moses_run(tmp_path, monkeypatch):
    run = _full_run(tmp_path)
    props = {p: v for p, v in zip(chem.PROPERTIES, chem.property_table(_nci(60)[30:]).T)}
    monkeypatch.setattr(reference, "load_reference", lambda path: SimpleNamespace(**props))
    path = build_report(preset("tiny"), run)
    assert path == run.report_path and path.is_file()
    html = path.read_text()
    for model in PUBLISHED:
        assert f"<td>{model}</td>" in html
    assert "published (MOSES paper, mean of 3 runs)" in html and "this run (N=30,000)" in html
    assert "0.0612" in html and "0.9987" in html and "0.5432" in html  # FCD/Test, Unique@10k, FCD/TestSF
    assert "lower than that of 5 of the 5 published MOSES generators" in html
    assert "GuacaMol definitions (reference: MOSES test, not ChEMBL)" in html and "0.9432" in html
    assert "qed=0.9" in html and "yes / yes" in html and "no / yes" in html  # logp=3: 2.2 off, 2.9 on target
    assert "61.2%" in html and "82.3%" in html  # recon_exact, interp_valid
    # molecule grid, property histograms, conditional plot, interpolation strips, two training curves
    assert html.count('src="data:image/png;base64,') == 6
    assert "missing" not in html


def test_user_dataset_without_optional_outputs(tmp_path):
    run = RunDir.open("molecules", "mine", tmp_path)
    metrics = {k: v for k, v in METRICS.items() if not k.endswith("sf") and not k.startswith(("recon", "interp"))}
    run.write_metrics({**metrics, "scaf_test": float("nan"), "cond_qed_0.9_median_reranked": float("nan")})
    _generated(_nci(30)).to_csv(run.samples / "generated.csv", index=False)
    (run.path / "holdout.smi").write_text("\n".join(_nci(45)[30:]) + "\n")
    cfg = preset("tiny")
    cfg = replace(cfg, data=replace(cfg.data, source=str(tmp_path / "mine.smi")))
    html = build_report(cfg, run).read_text()
    assert "CharRNN" not in html and "published (MOSES paper" not in html
    assert "0.0612" in html and "held-out molecules (n=15)" in html and "yes / –" in html  # NaN shown as a dash
    assert "conditional.csv is missing" in html and "No VAE results" in html and "No training logs" in html
    assert html.count('src="data:image/png;base64,') == 2  # molecule grid and property histograms


@pytest.mark.parametrize("metrics", [{}, {"n_train": 10.0, "recon_exact": 0.5}])
def test_empty_run_does_not_crash(tmp_path, metrics):
    run = RunDir.open("molecules", "empty", tmp_path)
    run.write_metrics(metrics)
    (run.samples / "generated.csv").write_text("")  # an empty file, as a killed run could leave
    (run.samples / "interpolation.csv").write_text("t,smiles,valid\n")
    html = build_report(preset("tiny"), run).read_text()
    assert "has no MOSES metrics" in html and "generated.csv is missing" in html
