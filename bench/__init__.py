"""Benchmarks run by `make bench`; results and how to read them in docs/BENCHMARKS.md."""
