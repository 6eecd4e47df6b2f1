"""Tuning tools behind the notebooks and the benchmarks: audio, VAD sweeps, prompt suites.

The notebooks in `notebooks/` only call these; the logic lives here, tested like the rest.
"""
