"""Shackleton's tools for the language model: its LLM API, calendars, notes and reminders."""
