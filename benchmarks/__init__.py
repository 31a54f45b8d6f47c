"""Benchmarks of issues 4 and 9: screen-pop latency, its floor, sockets, matching and routing throughput.

Run them with `make bench` (or `python -m benchmarks --help`); results go to benchmarks/RESULTS.md.
"""
