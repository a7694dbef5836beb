"""Smoke: `python -m apps.molecules` as a subprocess on the tiny preset: the whole pipeline on MOSES, your own
file with garbage lines, targeted sampling, determinism, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rdkit import RDConfig

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--preset", "tiny", "--threads", "1")


def _run(*args, runs: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "apps.molecules", args[0], *TINY, *args[1:], "--runs-dir", str(runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


def _nci(n: int) -> list[str]:
    """The first n single-fragment molecules of RDKit's bundled NCI set."""
    lines = Path(RDConfig.RDDataDir, "NCI", "first_5K.smi").read_text().splitlines()
    return [ln.split()[0] for ln in lines if ln.strip() and "." not in ln.split()[0]][:n]


def test_tiny_moses_pipeline_end_to_end(tmp_path):
    proc = _run("all", "--run-name", "t", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "molecules" / "t"
    m = json.loads((run / "metrics.json").read_text())
    for key in (
        "valid",
        "unique_10k",
        "novelty",
        "fcd_test",
        "fcd_testsf",
        "snn_test",
        "frag_test",
        "intdiv",
        "filters",
        "logp_w",
        "guacamol_kl_score",
        "cond_qed_0.7_median",
        "recon_exact",
        "interp_valid",
        "interp_valid_greedy",
    ):
        assert key in m, key
    assert m["n_generated"] == 300 and 0 <= m["valid"] <= 1
    gen = pd.read_csv(run / "samples" / "generated.csv")
    assert list(gen.columns[:3]) == ["smiles", "valid", "novel"] and len(gen) == 300
    assert (run / "samples" / "generated.sdf").stat().st_size > 0
    assert (run / "models" / "lm" / "model.safetensors").is_file()
    html = (run / "report.html").read_text()
    assert "CharRNN" in html and "data:image/png;base64," in html

    # targeted sampling writes CSV + SDF; the same seed gives the same molecules
    for name in ("a", "b"):
        proc = _run("sample", "--run-name", "t", "--target", "qed=0.7", "logp=2:4", "--n", "20", runs=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        (run / "samples" / "sample.csv").rename(run / "samples" / f"{name}.csv")
    a, b = (pd.read_csv(run / "samples" / f"{x}.csv") for x in "ab")
    assert len(a) >= 1 and a["smiles"].tolist() == b["smiles"].tolist()

    # a second `train` finds the finished models and does not retrain
    proc = _run("train", "--run-name", "t", runs=tmp_path)
    assert proc.returncode == 0 and "already trained" in proc.stderr


def test_own_file_with_garbage_lines_trains_and_evaluates(tmp_path):
    good = _nci(270)
    garbage = [
        "",
        "not_a_smiles",
        "C1CC",
        "CC(=O)[O-].[Na+]",
        "\x00\x01\x02junk",
        "(((",
        "c1ccccc",
        "XYZ",
        "CCO.CCN",
        "[Zz]",
    ] * 3
    lines = good[:90] + garbage[:10] + good[90:180] + garbage[10:20] + good[180:] + garbage[20:]
    path = tmp_path / "mine.smi"
    path.write_text("\n".join(lines) + "\n")
    proc = _run("all", "--run-name", "own", "--data.source", str(path), "--models", "lm", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped 30" in proc.stderr
    m = json.loads((tmp_path / "molecules" / "own" / "metrics.json").read_text())
    assert "fcd_test" in m and "fcd_testsf" not in m and m["n_train"] > 200


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "--data.source", "{tmp}/missing.smi"), "missing.smi"),
        (("train", "--data.source", "{tmp}/empty.smi"), "empty"),
        (("sample", "--target", "qed=9"), "outside the plausible range"),
        (("sample", "--target", "potency=3"), "bad target"),
        (("train", "--models", "gan"), "--models"),
        (("report",), "evaluate"),
        (("train", "--preset", "huge"), "preset"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    (tmp_path / "empty.smi").write_text("")
    args = [a.format(tmp=tmp_path) for a in args]
    proc = _run(*args, "--run-name", "bad", runs=tmp_path)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], proc.stderr[-1000:]
