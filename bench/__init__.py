"""Benchmarks (`python -m bench`, `make bench`): each adds its own keys to bench/results.json."""
