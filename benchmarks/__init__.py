"""Benchmarks of cosmos_upsample_fix: budget use, fidelity, speed, payload, planning cost.

Run from the repository root: ``python -m benchmarks.run [--quick] [--strict] [--out FILE]``.
``clips`` makes the inputs, ``budget_use``/``fidelity``/``speed``/``planning``/``offload``
measure and return data, ``goals`` judges it, ``render`` writes the Markdown report.
"""
