"""Entities of Shackleton: registry snapshots, pushed states and the voice switch."""

from __future__ import annotations

from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import device_registry as dr, entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, mock_restore_cache
from syrupy.assertion import SnapshotAssertion
from syrupy.filters import props

from .conftest import ASSISTANT_ID, on_recorded_release

SWITCH = "switch.shackleton_127_0_0_1_voice_assistant"
STATE = "sensor.shackleton_127_0_0_1_assistant_state"


@on_recorded_release
async def test_entities(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
) -> None:
    """Every entity's registry entry and state match the snapshot (a room's too)."""
    loaded_entry.runtime_data.rooms.async_served("kitchen")
    await hass.async_block_till_done()
    entities = er.async_entries_for_config_entry(entity_registry, loaded_entry.entry_id)
    disabled = [e.entity_id for e in entities if e.disabled_by is not None]
    # The day's usage counters too: the month's statistics have the days (test_usage.py).
    usage_today = [
        f"sensor.shackleton_127_0_0_1_openai_{name}_today"
        for name in (
            "language_model_input_tokens",
            "language_model_output_tokens",
            "speech_to_text_audio",
            "text_to_speech_characters",
        )
    ]
    assert sorted(disabled) == sorted(
        ["sensor.shackleton_127_0_0_1_last_turn_latency", *usage_today]
    )
    domains = {entity.domain for entity in entities}
    assert domains == {
        "ai_task", "assist_satellite", "binary_sensor", "conversation", "notify", "select",
        "sensor", "switch", "todo",
    }  # fmt: skip
    for entity in sorted(entities, key=lambda e: e.entity_id):
        assert entity == snapshot(name=f"{entity.entity_id}-entry")
        # The usage totals' last_reset is this month's start: checked in test_usage.py.
        assert hass.states.get(entity.entity_id) == snapshot(
            name=f"{entity.entity_id}-state", exclude=props("last_reset")
        )


async def test_service_device(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, device_registry: dr.DeviceRegistry
) -> None:
    """The entry's entities hang off its service device; each assistant has its own."""
    devices = dr.async_entries_for_config_entry(device_registry, loaded_entry.entry_id)
    by_subentry = {device.config_subentry_id: device for device in devices}
    assert set(by_subentry) == {None, ASSISTANT_ID}
    for device in devices:
        assert device.entry_type is dr.DeviceEntryType.SERVICE
        assert device.name == "Shackleton (127.0.0.1)"
    agent = er.async_get(hass).async_get("conversation.shackleton_127_0_0_1")
    assert agent is not None
    assert agent.device_id == by_subentry[ASSISTANT_ID].id
    assert agent.config_subentry_id == ASSISTANT_ID


async def test_voice_switch_takes_assistant_offline(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Turning voice off shows the assistant offline; on again, idle."""
    await hass.services.async_call("switch", "turn_off", {ATTR_ENTITY_ID: SWITCH}, blocking=True)
    assert hass.states.get(SWITCH).state == STATE_OFF
    assert hass.states.get(STATE).state == "offline"
    await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: SWITCH}, blocking=True)
    assert hass.states.get(SWITCH).state == STATE_ON
    assert hass.states.get(STATE).state == "idle"


async def test_voice_switch_survives_restart(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> None:
    """A switched-off assistant stays off after Home Assistant restarts."""
    mock_restore_cache(hass, [State(SWITCH, STATE_OFF)])
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert hass.states.get(SWITCH).state == STATE_OFF
    assert hass.states.get(STATE).state == "offline"
