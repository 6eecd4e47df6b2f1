"""The generated table of voice requirement sets per Home Assistant release."""

from __future__ import annotations

import re

import pytest

from custom_components.shackleton.voice_sets import (
    CHECKED_THROUGH,
    VOICE_SETS,
    voice_requirements,
)


def _agents(requirements: tuple[str, ...] | None) -> str | None:
    """Return the livekit-agents version a set pins, or None for no set."""
    if requirements is None:
        return None
    return next(r.split("==")[1] for r in requirements if r.startswith("livekit-agents=="))


@pytest.mark.parametrize(
    ("ha_version", "agents"),
    [
        ("2026.11.0", "1.8.8"),
        ("2027.1.0", "1.8.8"),  # newer than checked: like the newest checked release
        ("2026.10.4", None),
        ("2026.10.0", None),
        ("2026.9.4", "1.6.8"),
        ("2026.8.0", "1.6.8"),
        ("2026.7.4", "1.5.16"),
        ("2026.2.3", "1.5.16"),
        ("2026.1.3", "1.8.9"),
        ("2025.12.0", "1.8.9"),
        ("2025.11.3", None),  # older than any checked release
        ("2025.4.4", None),
    ],
)
def test_voice_requirements_by_release(ha_version: str, agents: str | None) -> None:
    """Each release gets its range's set; releases with no set, or unchecked, get None."""
    assert _agents(voice_requirements(ha_version)) == agents


def test_newest_checked_release_has_the_open_row() -> None:
    """Only the first row is open-ended, and it starts at or before the newest checked."""
    assert VOICE_SETS[0].last is None
    assert all(row.last is not None for row in VOICE_SETS[1:])
    assert voice_requirements(CHECKED_THROUGH) == VOICE_SETS[0].requirements


def test_every_set_pins_the_voice_stack_exactly() -> None:
    """Every set pins livekit-agents, its plugins (same version) and livekit exactly."""
    sets = [row.requirements for row in VOICE_SETS if row.requirements]
    assert sets
    for requirements in sets:
        pins = dict(r.split("==") for r in requirements)
        assert all(re.fullmatch(r"[a-z-]+==[0-9][0-9.]*", r) for r in requirements)
        agents = pins["livekit-agents"]
        for plugin in ("silero", "openai", "groq"):
            assert pins[f"livekit-plugins-{plugin}"] == agents
        assert "livekit" in pins


def test_rows_without_a_set_say_why() -> None:
    """A range where nothing installs carries a reason."""
    assert all(row.reason for row in VOICE_SETS if not row.requirements)
