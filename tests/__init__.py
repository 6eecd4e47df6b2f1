"""Tests of the Shackleton integration."""
