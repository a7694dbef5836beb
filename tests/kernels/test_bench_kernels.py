"""The kernel benchmark rows: every op's bench module runs at toy sizes (Triton's interpreter on the CPU) and gives
rows with times and ratios; without CUDA the full-size run reports each kernel as not run, with the reason."""

from __future__ import annotations

import pytest
import torch

from benchmarks import kernels
from benchmarks.harness import markdown_table

pytest.importorskip("triton")


def test_every_kernel_has_a_bench_row_at_toy_sizes():
    rows = kernels.run(torch.device("cpu"), tiny=True)
    names = " ".join(r["name"] for r in rows)
    for op in kernels.OPS:
        assert kernels.op_module(op).NAME in names
    for r in rows:
        assert r["name"].startswith("kernel ") and r["ours_s"] > 0 and r["peer_s"] > 0 and r["ratio"] > 0
    assert markdown_table(rows).count("\n| kernel ") == len(rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only report")
def test_without_cuda_kernel_rows_say_why():
    rows = kernels.run(torch.device("cpu"))
    assert len(rows) == len(kernels.OPS) and all("CUDA" in r["skipped"] for r in rows)
    assert "not run: needs a CUDA device" in markdown_table(rows)
