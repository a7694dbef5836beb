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
    """Rows as a Markdown table; a row with `skipped` (a reason) shows the reason instead of its times."""
    head = "| benchmark | sizes | ours (s) | peer | peer (s) | peer / ours |\n|---|---|---|---|---|---|\n"
    out = []
    for r in rows:
        if r.get("skipped"):
            out.append(f"| {r['name']} | {r['sizes']} | - | {r['peer']} | - | not run: {r['skipped']} |\n")
            continue
        extra = f" ({r['fraction_of_peak']:.0%} of peak {r['peak_kind']})" if r.get("fraction_of_peak") else ""
        out.append(
            f"| {r['name']} | {r['sizes']} | {r['ours_s']:.4g} | {r['peer']} | {r['peer_s']:.4g} "
            f"| {r['ratio']:.2f}x{extra} |\n"
        )
    return head + "".join(out)


# ------------------------------------------------------------------------------------------------ kernel rows


def device_peaks(device: torch.device, copy_mib: int = 1024, matmul_n: int = 8192) -> dict:
    """The device's measured peaks, in the same run as the kernels they grade: copy bandwidth (GB/s, bytes read +
    written by one large device-to-device copy) and float32 / bf16 matmul rate (TFLOP/s). Smaller sizes on CPU."""
    if device.type != "cuda":
        copy_mib, matmul_n = min(copy_mib, 256), min(matmul_n, 1024)
    n = copy_mib * 2**20 // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    t_copy = median_time(lambda: dst.copy_(src), repeats=10, warmup=2)
    peaks = {"copy_GBps": 2 * src.numel() * 4 / t_copy / 1e9}
    for dtype in (torch.float32, torch.bfloat16) if device.type == "cuda" else (torch.float32,):
        a = torch.randn(matmul_n, matmul_n, device=device, dtype=dtype)
        t_mm = median_time(lambda a=a: a @ a, repeats=5, warmup=2)
        peaks[f"matmul_{str(dtype).removeprefix('torch.')}_TFLOPs"] = 2 * matmul_n**3 / t_mm / 1e12
    return peaks


def kernel_row(
    name: str,
    sizes: str,
    ours: Callable[[], object],
    reference: Callable[[], object],
    bytes_moved: int | None = None,
    peaks: dict | None = None,
    repeats: int = 5,
) -> dict:
    """A kernel against its PyTorch eager reference on the same inputs: median times, ratio = reference / kernel,
    and, for a memory-bound kernel, the achieved bandwidth (`bytes_moved`: the least bytes the op must read and
    write) as a fraction of the measured copy peak."""
    t_ours = median_time(ours, repeats=repeats)
    t_ref = median_time(reference, repeats=repeats)
    row = {"name": name, "sizes": sizes, "ours_s": t_ours, "peer": "PyTorch eager reference", "peer_s": t_ref}
    row["ratio"] = t_ref / t_ours
    if bytes_moved is not None:
        row["achieved_GBps"] = bytes_moved / t_ours / 1e9
        if peaks and peaks.get("copy_GBps"):
            row["fraction_of_peak"] = row["achieved_GBps"] / peaks["copy_GBps"]
            row["peak_kind"] = "copy bandwidth"
    return row


def skipped_row(name: str, sizes: str, peer: str, why: str) -> dict:
    """A row that this machine cannot measure (e.g. a Triton kernel without CUDA), kept in the table with why."""
    return {"name": name, "sizes": sizes, "ours_s": None, "peer": peer, "peer_s": None, "ratio": None, "skipped": why}
