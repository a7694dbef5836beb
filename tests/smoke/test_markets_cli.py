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
        (["backtest", "--models", "hs,copula", "--source", "bundled"], "unknown baseline 'copula'"),
        (["backtest", "--start", "2010-01-01", "--end", "2005-01-01", "--source", "bundled"], "start"),
        (["simulate"], "give a command"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragment):
    proc = _run(*args, *(["--runs-dir", str(tmp_path)] if args[0] == "backtest" else []))
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert fragment in err, err
