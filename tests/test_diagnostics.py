"""Diagnostics: settings and live state, with every secret redacted."""

from __future__ import annotations

import json

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from syrupy.assertion import SnapshotAssertion


async def test_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    """Diagnostics show the settings and state, and no key or secret."""
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, loaded_entry)
    text = json.dumps(diagnostics)
    for secret in (
        loaded_entry.data["livekit_api_secret"],
        loaded_entry.data["livekit_api_key"],
        loaded_entry.data["openai_api_key"],
    ):
        assert secret not in text
    assert diagnostics["runtime"]["livekit_connected"] is True
    assert diagnostics["runtime"]["voice_available"] is True
    # Load times vary per run; the loop's share must stay small.
    voice = diagnostics["runtime"].pop("voice")
    assert voice["mode"] == "pipeline"
    assert voice["plugin_import_seconds"] < voice["import_seconds"]
    # Ports differ per run; the snapshot keeps the rest stable.
    diagnostics["data"]["livekit_url"] = "ws://livekit.test"
    diagnostics["data"]["openai_base_url"] = "http://openai.test/v1"
    assert diagnostics == snapshot
