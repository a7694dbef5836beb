"""Benchmark harness: timing with warm-up and repeats (medians), a machine name, and result files.

Each benchmark is a function returning a list of rows: {"name", "ours_s", "peer", "peer_s", "ratio", "sizes"}
where ratio = peer time / our time (> 1 means genlab is faster). Results go to
benchmarks/results/<machine>-<date>.json and a Markdown table beside it.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

from shared.atomic import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds after `warmup` untimed calls (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def machine() -> dict:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "name": f"{platform.node() or 'host'}-{dev}".replace(" ", "_"),
        "device": dev,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def write_results(rows: list[dict]) -> tuple[Path, Path]:
    """Write today's result files for this machine. Rows already there under another name are kept (in place),
    so a run of some benchmarks updates their rows and leaves the rest of the day's table."""
    m = machine()
    stem = f"{m['name']}-{date.today().isoformat()}"
    json_path, md_path = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    if json_path.is_file():
        new = {r["name"]: r for r in rows}
        old = json.loads(json_path.read_text()).get("rows", [])
        kept = [new.pop(r["name"], r) for r in old]
        rows = kept + [r for r in rows if r["name"] in new]
    atomic_write_json(json_path, {"machine": m, "date": date.today().isoformat(), "rows": rows})
    atomic_write_text(
        md_path,
        f"# Benchmarks on {m['device']} ({m['threads']} threads), {date.today()}\n\n" + markdown_table(rows) + "\n",
    )
    return json_path, md_path


def markdown_table(rows: list[dict]) -> str:
    head = "| benchmark | sizes | ours (s) | peer | peer (s) | peer / ours |\n|---|---|---|---|---|---|\n"
    return head + "".join(
        f"| {r['name']} | {r['sizes']} | {r['ours_s']:.4g} | {r['peer']} | {r['peer_s']:.4g} | {r['ratio']:.2f}x |\n"
        for r in rows
    )
