"""Benchmarks of Shackleton."""
