"""core-demo: trains every generative family of the shared core on real small data and writes one report.

Stands in for `make demo` until the apps land; also the entry point used to show multi-process training
(`torchrun --nproc_per_node 2 -m apps.core_demo --families ar`).
"""
