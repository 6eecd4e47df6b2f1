"""Rooms: agent tokens, joining against real network faults, and the session actions."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys

from google.protobuf.json_format import MessageToJson
from homeassistant.const import STATE_OFF
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
import jwt
from livekit import api
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.shackleton.const import DOMAIN
from custom_components.shackleton.voice.rooms import AGENT_IDENTITY, agent_token
from custom_components.shackleton.voice.settings import Backoff, LiveKitServer
from harness.fakes import FakeLiveKit, FakeOpenAI, closed_port_url

from .conftest import entry_data, wait_for

SECRET = "devsecret-devsecret-devsecret-00"


def test_agent_token_is_scoped_to_one_room() -> None:
    """The agent's token names it an agent, for one room, for at most an hour."""
    server = LiveKitServer("ws://lk.test", "devkey", SECRET)
    token = agent_token(server, "kitchen")
    claims = api.TokenVerifier("devkey", SECRET).verify(token)
    # livekit-api's verifier drops `kind`; read it from the signed payload itself.
    raw = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert raw["kind"] == "agent"
    assert raw["exp"] - raw["nbf"] == 3600
    assert claims.identity == AGENT_IDENTITY
    assert claims.video is not None
    assert claims.video.room == "kitchen"
    assert claims.video.room_join is True
    assert not claims.video.room_admin
    assert not claims.video.room_list
    assert "devkey" not in repr(server)
    assert SECRET not in repr(server)


def test_backoff_grows_with_jitter_and_caps() -> None:
    """Waits double per attempt, vary within the upper half, and stop at the cap."""
    backoff = Backoff(initial=1.0, maximum=8.0)
    assert all(0.5 <= backoff.delay(1) <= 1.0 for _ in range(50))
    assert all(4.0 <= backoff.delay(4) <= 8.0 for _ in range(50))
    assert all(4.0 <= backoff.delay(30) <= 8.0 for _ in range(50))
    assert len({backoff.delay(3) for _ in range(20)}) > 1


def test_integration_imports_without_the_voice_stack() -> None:
    """Loading the integration must not import livekit's native or agents modules."""
    code = (
        "import sys, custom_components.shackleton, custom_components.shackleton.config_flow; "
        "import custom_components.shackleton.sensor, custom_components.shackleton.services; "
        "bad = [m for m in ('livekit.rtc', 'livekit.agents', 'onnxruntime') if m in sys.modules]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr or result.stdout


async def _setup(hass: HomeAssistant, data: dict[str, object]) -> MockConfigEntry:
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton (test)", data=data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return entry


async def test_closed_port_retries_and_logs_once(
    hass: HomeAssistant, fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: the agent retries with backoff, says so once, and leaves cleanly."""
    data = entry_data(None, fake_openai) | {
        "livekit_url": closed_port_url("ws"),
        "livekit_api_key": "devkey",
        "livekit_api_secret": SECRET,
    }
    entry = await _setup(hass, data)
    await hass.services.async_call(DOMAIN, "start_session", {"room": "kitchen"}, blocking=True)
    manager = entry.runtime_data.voice
    assert manager is not None
    link = manager.backend.links["kitchen"]
    await wait_for(lambda: link.attempts >= 3)
    assert link.last_error == "cannot_connect"
    assert caplog.text.count("cannot join (cannot_connect)") == 1
    assert SECRET not in caplog.text
    assert "eyJ" not in caplog.text  # no JWT, the agent's token included, reaches the logs
    assert hass.states.get("binary_sensor.shackleton_test_livekit_server").state == STATE_OFF
    await hass.services.async_call(DOMAIN, "end_session", {"room": "kitchen"}, blocking=True)
    assert "kitchen" not in manager.backend.links
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_key_is_reported_as_auth(
    hass: HomeAssistant,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server refusing the agent's token is named an authentication problem."""
    entry = await _setup(hass, entry_data(fake_livekit, fake_openai))
    await hass.services.async_call(
        DOMAIN, "start_session", {"room": "hall", "config_entry_id": entry.entry_id}, blocking=True
    )
    # Starting twice is harmless: one link per room.
    await hass.services.async_call(DOMAIN, "start_session", {"room": "hall"}, blocking=True)
    manager = entry.runtime_data.voice
    assert manager is not None
    link = manager.backend.links["hall"]
    await wait_for(lambda: link.last_error is not None)
    assert fake_livekit.rtc_attempts >= 1
    assert link.last_error == "invalid_auth"
    assert caplog.text.count("cannot join (invalid_auth)") == 1
    assert "eyJ" not in caplog.text
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert not manager.backend.links


@pytest.mark.parametrize(
    ("service", "data", "key"),
    [
        ("start_session", {"room": "no spaces please"}, "invalid_room"),
        ("start_session", {"room": "x" * 65}, "invalid_room"),
        ("start_session", {"room": "kitchen", "config_entry_id": "nope"}, "entry_not_found"),
        ("end_session", {"room": "kitchen"}, "no_session"),
    ],
)
async def test_action_errors(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    service: str,
    data: dict[str, str],
    key: str,
) -> None:
    """Bad targets get translated validation errors."""
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, service, data, blocking=True)
    assert err.value.translation_key == key
    assert err.value.translation_domain == DOMAIN
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)


async def test_action_errors_about_the_entry(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> None:
    """No server, switched off, not loaded, or ambiguous: each says so."""
    no_server = await _setup(hass, entry_data(None, fake_openai))
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "start_session", {"room": "a"}, blocking=True)
    assert err.value.translation_key == "no_livekit_server"

    with_server = await _setup(hass, entry_data(fake_livekit, fake_openai))
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "start_session", {"room": "a"}, blocking=True)
    assert err.value.translation_key == "entry_required"

    await hass.services.async_call(
        "switch",
        "turn_off",
        {"entity_id": "switch.shackleton_test_voice_assistant_2"},
        blocking=True,
    )
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "start_session",
            {"room": "a", "config_entry_id": with_server.entry_id},
            blocking=True,
        )
    assert err.value.translation_key == "voice_disabled"

    assert await hass.config_entries.async_unload(no_server.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN,
            "start_session",
            {"room": "a", "config_entry_id": no_server.entry_id},
            blocking=True,
        )
    assert err.value.translation_key == "entry_not_loaded"
    assert await hass.config_entries.async_unload(with_server.entry_id)


def _signed(key: str, secret: str, event: api.WebhookEvent) -> tuple[str, dict[str, str]]:
    body = MessageToJson(event)
    digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    token = api.AccessToken(key, secret).with_sha256(digest).to_jwt()
    return body, {"Authorization": token, "Content-Type": "application/webhook+json"}


def _joined(room: str, kind: int = 0) -> api.WebhookEvent:
    return api.WebhookEvent(
        event="participant_joined",
        room=api.Room(name=room),
        participant=api.ParticipantInfo(identity="ada", kind=kind),  # type: ignore[arg-type]
    )


async def test_webhook_joins_rooms_with_the_prefix(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """A signed participant_joined for a room with our prefix makes the agent join it."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (test)",
        data=entry_data(fake_livekit, fake_openai),
        options={"auto_join_prefix": "home-"},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    client = await hass_client_no_auth()
    path = f"/api/webhook/shackleton_{entry.entry_id}"
    manager = entry.runtime_data.voice

    # Forged: signed with another secret.
    body, headers = _signed("devkey", "not-the-secret-not-the-secret-00", _joined("home-den"))
    response = await client.post(path, data=body, headers=headers)
    assert response.status == 401
    assert not manager.backend.links

    # Not ours: wrong prefix, an agent, another event.
    for event in (
        _joined("office"),
        _joined("home-den", kind=api.ParticipantInfo.Kind.AGENT),
        api.WebhookEvent(event="room_started", room=api.Room(name="home-den")),
    ):
        body, headers = _signed("devkey", SECRET, event)
        assert (await client.post(path, data=body, headers=headers)).status == 200
    assert not manager.backend.links

    body, headers = _signed("devkey", SECRET, _joined("home-den"))
    assert (await client.post(path, data=body, headers=headers)).status == 200
    assert set(manager.backend.links) == {"home-den"}
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Unloaded: the webhook is gone.
    assert (await client.post(path, data=body, headers=headers)).status == 200
    assert not manager.backend.links


async def test_webhook_without_prefix_joins_nothing(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    loaded_entry: MockConfigEntry,
) -> None:
    """With no prefix configured, people entering rooms do not summon the agent."""
    client = await hass_client_no_auth()
    body, headers = _signed("devkey", SECRET, _joined("home-den"))
    response = await client.post(
        f"/api/webhook/shackleton_{loaded_entry.entry_id}", data=body, headers=headers
    )
    assert response.status == 200
    assert not loaded_entry.runtime_data.voice.backend.links
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
