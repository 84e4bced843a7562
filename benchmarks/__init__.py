"""Brokle's benchmarks: load and throughput harnesses behind ``make bench``.

``python -m benchmarks`` runs every benchmark registered in :mod:`benchmarks.__main__`
(or the ones named), prints a table per benchmark and writes
``benchmarks/results/<name>-<timestamp>.json``. Benchmarks report rates, ratios and
percentiles; they never pass or fail on absolute times.
"""
