"""Benchmarks: each compares genlab against a peer in the same run and reports the ratio (see README.md)."""
