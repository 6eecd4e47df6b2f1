"""Helpers the tests and the benchmarks share.

Fake providers, a real LiveKit server, a LiveKit participant, Home Assistant started in a
process of its own (ha_process), and the integration's shape (shape: sizes, import cycles).
"""
