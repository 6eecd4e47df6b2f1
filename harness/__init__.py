"""Helpers the tests and the benchmarks share.

Fake providers, a real LiveKit server, a LiveKit participant, and Home Assistant
started in a process of its own.
"""
