"""Set-up, unload, reload and the LiveKit link of Shackleton."""

from __future__ import annotations

from datetime import timedelta

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.shackleton.const import (
    DOMAIN,
    LIVEKIT_HEALTH_INTERVAL,
    LIVEKIT_RETRY_MAX,
)
from harness.fakes import FakeLiveKit, FakeOpenAI, closed_port_url

from .conftest import entry_data

CONNECTED = "binary_sensor.shackleton_127_0_0_1_livekit_server"
STATE = "sensor.shackleton_127_0_0_1_assistant_state"
SESSIONS = "sensor.shackleton_127_0_0_1_active_voice_sessions"


async def _advance(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await hass.async_block_till_done(wait_background_tasks=True)


async def test_setup_and_unload(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """A reachable server loads the entry connected; unloading leaves nothing running."""
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert hass.states.get(CONNECTED).state == STATE_ON
    assert hass.states.get(STATE).state == "idle"
    assert hass.states.get(SESSIONS).state == "0"

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.NOT_LOADED
    assert hass.states.get(CONNECTED).state == STATE_UNAVAILABLE


async def test_reload(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Reloading sets the entry up again with the same entities."""
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert hass.states.get(CONNECTED).state == STATE_ON


async def test_options_change_reloads(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_livekit: FakeLiveKit
) -> None:
    """Changing options reloads the entry, which checks the server again."""
    before = fake_livekit.requests
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, "voice": "nova"}
    )
    await hass.async_block_till_done()
    assert loaded_entry.state is ConfigEntryState.LOADED
    assert fake_livekit.requests == before + 1


async def test_refused_key_starts_reauth(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry, fake_livekit: FakeLiveKit
) -> None:
    """A secret the server refuses fails set-up and opens a reauth flow."""
    fake_livekit.keys["devkey"] = "another-secret-another-secret-00"
    mock_config_entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(mock_config_entry.entry_id)
    assert mock_config_entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_unreachable_server_loads_and_recovers(
    hass: HomeAssistant,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dead server still loads the entry; the link logs once, retries, and recovers."""
    fake_livekit.fail_status = 503
    entry = MockConfigEntry(
        domain=DOMAIN, title="Shackleton (127.0.0.1)", data=entry_data(fake_livekit, fake_openai)
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(CONNECTED).state == STATE_OFF
    assert hass.states.get(STATE).state == "offline"
    # Voice itself loaded: local sessions could still run.
    assert hass.states.get(SESSIONS).state == "0"

    # Still down at the next try: no second warning.
    await _advance(hass, freezer, LIVEKIT_RETRY_MAX)
    assert fake_livekit.requests == 2
    assert caplog.text.count("is unreachable") == 1

    fake_livekit.fail_status = None
    await _advance(hass, freezer, LIVEKIT_RETRY_MAX)
    assert hass.states.get(CONNECTED).state == STATE_ON
    assert hass.states.get(STATE).state == "idle"
    assert "is reachable again" in caplog.text

    # Healthy: the next check waits the full interval.
    await _advance(hass, freezer, LIVEKIT_HEALTH_INTERVAL - 1)
    assert fake_livekit.requests == 3
    await _advance(hass, freezer, 2)
    assert fake_livekit.requests == 4


async def test_closed_port_loads_offline(
    hass: HomeAssistant, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening at the URL: the entry loads, offline, with one clear warning."""
    data = entry_data(None, fake_openai) | {
        "livekit_url": closed_port_url("ws"),
        "livekit_api_key": "devkey",
        "livekit_api_secret": "devsecret-devsecret-devsecret-00",
    }
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton (127.0.0.1)", data=data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTED).state == STATE_OFF
    assert caplog.text.count("is unreachable") == 1
    assert "devsecret" not in caplog.text


async def test_key_revoked_later_starts_reauth(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A key revoked while running turns the sensor off, starts reauth and stops retrying."""
    fake_livekit.keys["devkey"] = "rotated-secret-rotated-secret-00"
    await _advance(hass, freezer, LIVEKIT_HEALTH_INTERVAL + 1)
    assert hass.states.get(CONNECTED).state == STATE_OFF
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    requests = fake_livekit.requests
    await _advance(hass, freezer, LIVEKIT_HEALTH_INTERVAL * 3)
    assert fake_livekit.requests == requests


async def test_no_server_raises_repair_issue(
    hass: HomeAssistant, fake_openai: FakeOpenAI, issue_registry: ir.IssueRegistry
) -> None:
    """Without a server the entry loads, voice entities are unavailable and a repair explains."""
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("binary_sensor.shackleton_livekit_server").state == STATE_UNAVAILABLE
    assert hass.states.get("sensor.shackleton_assistant_state").state == "offline"
    assert hass.states.get("switch.shackleton_voice_assistant").state == STATE_ON
    issue = issue_registry.async_get_issue(DOMAIN, f"no_livekit_server_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"title": "Shackleton"}

    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert issue_registry.async_get_issue(DOMAIN, f"no_livekit_server_{entry.entry_id}") is None
