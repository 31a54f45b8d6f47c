"""Benchmarks of issue 4: screen-pop latency, its floor, sockets, matching and routing throughput.

Run them with `make bench` (or `python -m benchmarks --help`); results go to benchmarks/RESULTS.md.
"""
