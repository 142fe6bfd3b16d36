"""Benchmarks: programs that print measurements (run with ``python -m``), not tests."""
