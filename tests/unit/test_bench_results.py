"""benchmarks/ result files: a run of some benchmarks replaces their rows and keeps the rest of the day's table."""

from __future__ import annotations

import json

from benchmarks import harness
from benchmarks.__main__ import main


def _row(name, ours):
    return {"name": name, "sizes": "s", "ours_s": ours, "peer": "p", "peer_s": 2.0, "ratio": 2.0 / ours}


def test_partial_runs_update_rows_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "RESULTS", tmp_path)
    json_path, md_path = harness.write_results([_row("a", 1.0), _row("b", 1.0)])
    harness.write_results([_row("b", 0.5), _row("c", 1.0)])
    rows = json.loads(json_path.read_text())["rows"]
    assert [(r["name"], r["ours_s"]) for r in rows] == [("a", 1.0), ("b", 0.5), ("c", 1.0)]
    assert md_path.read_text().count("\n| ") == 4  # header + three rows


def test_unknown_benchmark_name_is_an_error(capsys):
    assert main(["nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
