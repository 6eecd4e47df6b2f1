"""The browser test of the dashboard card."""
