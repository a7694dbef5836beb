"""Smoke + reference: `python -m apps.markets backtest` as a subprocess, offline on bundled data.

The reference run (../shared/notes/metrics.md: S&P 500 from arch, rolling 1000-day window refit every 20 days,
T = 4030, 97.5% VaR) says historical simulation fails independence, GARCH(1,1)-Normal and -t fail coverage (150 and
143 hits for 100.8 expected) and filtered historical simulation passes all (106 hits, p_uc 0.60, p_ind 0.90,
Z2 -0.10). Our baselines must reproduce it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "apps.markets", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_reference_backtest_is_reproduced(tmp_path):
    proc = _run("backtest", "--source", "bundled", "--runs-dir", str(tmp_path), "--run-name", "ref")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "markets" / "ref"
    m = json.loads((run / "metrics.json").read_text())
    assert m["backtest_days"] == 4030
    assert m["hs_pass_christoffersen"] is False
    assert m["garch_n_hits"] == 150 and m["garch_t_hits"] == 143
    assert not m["garch_n_pass_kupiec"] and not m["garch_t_pass_kupiec"]
    assert m["fhs_hits"] == 106 and m["fhs_pass_kupiec"] and m["fhs_pass_christoffersen"] and m["fhs_pass_z2"]
    assert m["fhs_kupiec_p"] == pytest.approx(0.60, abs=0.01) and m["fhs_christoffersen_p"] == pytest.approx(
        0.90, abs=0.01
    )
    assert m["fhs_z2"] == pytest.approx(-0.10, abs=0.01)
    assert (run / "backtest.csv").read_text().startswith("date,ret,hs_var,hs_es")
    assert "data:image/png;base64," in (run / "report.html").read_text()


def test_portfolio_backtest_on_a_short_window(tmp_path):
    proc = _run(
        "backtest",
        "--source",
        "bundled",
        "--universe",
        "sp500-20",
        "--tickers",
        "AAPL,MSFT,JPM",
        "--weights",
        "0.4,0.4,0.2",
        "--start",
        "2018-01-01",
        "--window",
        "250",
        "--refit-every",
        "50",
        "--alpha",
        "0.05",
        "--models",
        "hs,fhs",
        "--runs-dir",
        str(tmp_path),
        "--run-name",
        "short",
    )
    if proc.returncode != 0 and "sp500_dataset" in proc.stderr:
        pytest.skip("the sp500-20 universe needs one online `pip download skfolio` (not reachable here)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "markets" / "short" / "metrics.json").read_text())
    assert m["alpha"] == 0.05 and m["backtest_days"] > 1000 and "fhs_kupiec_p" in m and "garch_n_hits" not in m


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["backtest", "--alpha", "0.7"], "--alpha must be in (0, 0.5)"),
        (["backtest", "--tickers", "A,B", "--weights", "0.5"], "1 weights for 2 tickers"),
        (["backtest", "--tickers", "A,B", "--weights", "0.5,0.6"], "sum to 1.1"),
        (["backtest", "--models", "hs,copula", "--source", "bundled"], "unknown model 'copula'"),
        (["backtest", "--start", "2010-01-01", "--end", "2005-01-01", "--source", "bundled"], "start"),
        (["simulate"], "give a command"),
        (["all", "--tickers", "AAPL,MSFT", "--weights", "0.7,0.7"], "sum to 1.4"),
        (["all", "--tickers", "AAPL,MSFT", "--weights", "1.2,-0.2"], "--long-short"),
        (["all", "--tickers", "NOPE", "--source", "bundled"], "NOPE"),
        (["all", "--generators", "cvae,timegan"], "unknown generator 'timegan'"),
        (["evaluate", "--split", "1980-01-01", "--source", "bundled"], "--split 1980-01-01"),
        (["report", "--run-name", "never-ran"], "run `python -m apps.markets evaluate` first"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragment):
    proc = _run(*args, *(["--runs-dir", str(tmp_path)] if args[0] != "simulate" else []))
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert fragment in err, err


TINY_RUN = [
    "--tickers", "AAPL,MSFT,JPM",
    "--weights", "0.5,0.3,0.2", "--source", "bundled", "--start", "2005-01-01", "--end", "2012-12-31",
    "--split", "2011-01-01", "--train.steps", "60", "--eval-paths", "20", "--scenarios", "100",
    "--horizon", "15", "--backtest-samples", "200", "--window", "10",
]  # fmt: skip


def test_tiny_end_to_end_scenario_run(tmp_path):
    """data -> train -> generate -> evaluate -> report on 3 stocks, tiny budgets; every output is written."""
    common = ["--runs-dir", str(tmp_path), "--run-name", "tiny", *TINY_RUN]
    proc = _run("all", *common)
    if proc.returncode != 0 and "sp500_dataset" in proc.stderr:
        pytest.skip("the sp500-20 universe needs one online `pip download skfolio` (not reachable here)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "markets" / "tiny"
    import pandas as pd

    frame = pd.read_parquet(run / "scenarios" / "cvae.parquet")
    assert list(frame.columns) == ["scenario", "date", "asset", "return"]
    assert len(frame) == 100 * 15 * 3 and frame["return"].notna().all()
    assert frame["date"].min() > pd.Timestamp("2012-12-28")  # scenarios start after the last day of data
    m = json.loads((run / "metrics.json").read_text())
    assert {"cvae_emd_1", "garch_t_acf_abs", "cvae_memorisation_ratio", "fhs_kupiec_p", "hs_var_99_10d"} <= set(m)
    ev = json.loads((run / "evaluation.json").read_text())
    assert {r["name"] for r in ev["facts"]} >= {"cvae", "cgan", "garch-t", "fhs", "bootstrap", "hs"}
    assert {r["date"] for r in ev["stress"]} == {"2008-09-12"}  # 2020 lies outside the data
    html = (run / "report.html").read_text()
    assert "Stylized facts" in html and "data:image/png;base64" in html
    assert (run / "generators" / "cvae.safetensors").is_file()
    # a second evaluate reuses the saved deep generators (no retraining) and gives the same figures
    again = _run("evaluate", *common)
    assert again.returncode == 0 and "training cvae" not in again.stderr, again.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text())["cvae_emd_1"] == m["cvae_emd_1"]
