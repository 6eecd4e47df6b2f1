"""The dashboard card's file and its token endpoint, through HA's real HTTP server."""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
import re
from typing import Any

from homeassistant.components.frontend import DATA_EXTRA_MODULE_URL
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from livekit import api
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.shackleton.card import CARD_FILE, CARD_URL, TOKEN_URL, RateLimiter
from custom_components.shackleton.const import DOMAIN
from custom_components.shackleton.voice.client import tool_summary
from harness.fakes import FakeLiveKit, FakeOpenAI

from .conftest import entry_data, wait_for


async def _set_options(hass: HomeAssistant, entry: MockConfigEntry, **changes: Any) -> None:
    hass.config_entries.async_update_entry(entry, options={**entry.options, **changes})
    await hass.async_block_till_done()


async def _token(
    hass_client: ClientSessionGenerator, access_token: str | None, body: Any
) -> tuple[int, dict[str, Any], Any]:
    client = await (hass_client() if access_token is None else hass_client(access_token))
    response = await client.post(TOKEN_URL, json=body)
    return response.status, dict(response.headers), await response.json()


async def test_card_is_served_and_loaded_on_every_dashboard(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
) -> None:
    """The integration serves the built card; the frontend loads it without a resource step."""
    # The frontend is up first, as on any real install (an after-dependency).
    assert await async_setup_component(hass, "frontend", {})
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)

    urls = [url for url in hass.data[DATA_EXTRA_MODULE_URL].urls if url.startswith(CARD_URL)]
    assert len(urls) == 1
    client = await hass_client()
    response = await client.get(urls[0])
    assert response.status == HTTPStatus.OK
    assert response.content_type == "text/javascript"
    body = await response.read()
    assert body == CARD_FILE.read_bytes()
    assert b"customElements.define" in body
    # livekit-client comes as a chunk, fetched only on Connect, from beside the module.
    chunk = re.search(rb'import\("\./(chunks/livekit-client[^"]+\.js)"\)', body)
    assert chunk is not None
    response = await client.get(f"{CARD_URL.rsplit('/', 1)[0]}/{chunk[1].decode()}")
    assert response.status == HTTPStatus.OK
    assert b"LiveKit" in await response.read()
    assert await hass.config_entries.async_unload(mock_config_entry.entry_id)


async def test_token_is_scoped_short_lived_and_calls_the_agent(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_admin_user: MockUser,
    fake_livekit: FakeLiveKit,
) -> None:
    """An admin gets a token for one room, as their HA identity, and the agent goes there."""
    await _set_options(hass, loaded_entry, card_token_minutes=3)
    status, _, body = await _token(hass_client, None, {"room": "kitchen"})
    assert status == HTTPStatus.OK, body
    assert set(body) == {"url", "token", "room", "identity", "expires_at"}
    assert body["url"] == loaded_entry.data["livekit_url"]
    assert body["room"] == "kitchen"

    key, secret = next(iter(fake_livekit.keys.items()))
    claims = api.TokenVerifier(key, secret).verify(body["token"])
    assert claims.identity == body["identity"] == f"ha-{hass_admin_user.id}"
    assert claims.video is not None
    assert claims.video.room == "kitchen"
    granted = claims.video
    assert (granted.room_join, granted.can_publish, granted.can_subscribe) == (True, True, True)
    assert not any((granted.room_admin, granted.room_list, granted.agent, granted.room_create))
    expires = datetime.fromisoformat(body["expires_at"])
    assert 170 < (expires - datetime.now(UTC)).total_seconds() <= 180
    # Secrets stay on the server: the body has only the signed token.
    assert secret not in str(body)
    assert key not in {body["url"], body["identity"]}

    # The agent sets off for that room (the fake server refuses it, as no LiveKit runs).
    await wait_for(lambda: ("shackleton-agent", "kitchen") in fake_livekit.rtc_joins)
    assert "kitchen" in loaded_entry.runtime_data.voice.backend.links

    # A browser URL from the options replaces the one Home Assistant uses.
    await _set_options(hass, loaded_entry, livekit_browser_url="wss://livekit.example.com")
    status, _, body = await _token(hass_client, None, {"room": "office"})
    assert status == HTTPStatus.OK
    assert body["url"] == "wss://livekit.example.com"


async def test_non_admins_get_only_the_rooms_the_options_allow(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_read_only_user: MockUser,
    hass_read_only_access_token: str,
    fake_livekit: FakeLiveKit,
) -> None:
    """By default only administrators may use the card; the options open rooms to others."""
    status, _, body = await _token(hass_client, hass_read_only_access_token, {"room": "kitchen"})
    assert status == HTTPStatus.FORBIDDEN
    assert body["code"] == "room_not_allowed"
    assert "kitchen" in body["message"]
    assert "options" in body["message"]

    await _set_options(hass, loaded_entry, dashboard_rooms=["kitchen"])
    status, _, body = await _token(hass_client, hass_read_only_access_token, {"room": "kitchen"})
    assert status == HTTPStatus.OK
    key, secret = next(iter(fake_livekit.keys.items()))
    claims = api.TokenVerifier(key, secret).verify(body["token"])
    assert claims.identity == f"ha-{hass_read_only_user.id}"
    assert claims.video is not None
    assert claims.video.room == "kitchen"
    status, _, body = await _token(hass_client, hass_read_only_access_token, {"room": "office"})
    assert (status, body["code"]) == (HTTPStatus.FORBIDDEN, "room_not_allowed")


async def test_token_needs_authentication(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_client_no_auth: ClientSessionGenerator
) -> None:
    """Without HA credentials there is nothing: 401, and no token."""
    client = await hass_client_no_auth()
    response = await client.post(TOKEN_URL, json={"room": "kitchen"})
    assert response.status == HTTPStatus.UNAUTHORIZED
    assert "token" not in await response.text()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"room": "no spaces"}, "invalid_room"),
        ({"room": ""}, "invalid_room"),
        ([], "invalid_room"),
        ({"room": "kitchen", "config_entry_id": "nope"}, "not_configured"),
    ],
)
async def test_bad_requests_get_a_translated_error(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    body: Any,
    code: str,
) -> None:
    """A bad room or entry is refused with a code for the card and a message for people."""
    status, _, answer = await _token(hass_client, None, body)
    assert status in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND)
    assert answer["code"] == code
    assert answer["message"]
    assert "{" not in answer["message"]


async def test_a_body_that_is_not_json_is_a_bad_request(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    """A body that does not parse is refused like a missing room, in words."""
    client = await hass_client()
    response = await client.post(TOKEN_URL, data="room=kitchen")
    answer = await response.json()
    assert response.status == HTTPStatus.BAD_REQUEST
    assert answer["code"] == "invalid_room"
    assert answer["message"]
    assert not loaded_entry.runtime_data.voice.backend.links


async def test_no_voice_and_several_entries_are_explained(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """Voice switched off, or two entries and no choice, say so."""
    loaded_entry.runtime_data.runtime.voice_enabled = False
    status, _, body = await _token(hass_client, None, {"room": "kitchen"})
    assert (status, body["code"]) == (HTTPStatus.SERVICE_UNAVAILABLE, "voice_disabled")
    assert loaded_entry.title in body["message"]
    loaded_entry.runtime_data.runtime.voice_enabled = True

    other = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (garage)",
        data=entry_data(fake_livekit, fake_openai),
        options=dict(loaded_entry.options),
    )
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    status, _, body = await _token(hass_client, None, {"room": "kitchen"})
    assert (status, body["code"]) == (HTTPStatus.BAD_REQUEST, "entry_required")
    body = {"room": "kitchen", "config_entry_id": other.entry_id}
    status, _, answer = await _token(hass_client, None, body)
    assert status == HTTPStatus.OK
    assert await hass.config_entries.async_unload(other.entry_id)


async def test_tokens_are_rate_limited_per_user(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_read_only_access_token: str,
) -> None:
    """A runaway card cannot mint tokens in a loop; other users are not held up."""
    statuses = [(await _token(hass_client, None, {"room": "kitchen"}))[0] for _ in range(7)]
    assert statuses == [HTTPStatus.OK] * 6 + [HTTPStatus.TOO_MANY_REQUESTS]
    status, headers, body = await _token(hass_client, None, {"room": "kitchen"})
    assert (status, body["code"]) == (HTTPStatus.TOO_MANY_REQUESTS, "rate_limited")
    assert 0 < int(headers["Retry-After"]) <= 60
    assert headers["Retry-After"] in body["message"]
    # Another user has their own allowance (refused here only for the room).
    status, _, body = await _token(hass_client, hass_read_only_access_token, {"room": "kitchen"})
    assert body["code"] == "room_not_allowed"


def test_rate_limiter_window_slides() -> None:
    """Requests free up one by one as they leave the window."""
    limiter = RateLimiter(rate=2, window=10.0)
    assert limiter.retry_after("u", now=0.0) == 0
    assert limiter.retry_after("u", now=4.0) == 0
    assert limiter.retry_after("u", now=5.0) == pytest.approx(5.0)
    assert limiter.retry_after("u", now=10.0) == 0  # the first left the window
    assert limiter.retry_after("u", now=11.0) == pytest.approx(3.0)
    assert limiter.retry_after("v", now=11.0) == 0


@pytest.mark.parametrize(
    ("name", "result", "ok", "summary"),
    [
        (
            "intent__HassTurnOn",
            {"data": {"success": [{"name": "Kitchen light", "id": "light.kitchen"}]}},
            True,
            "Kitchen light → on",
        ),
        (
            "intent__HassTurnOff",
            {"data": {"success": [{"name": "Porch"}, {"name": "Hall"}]}},
            True,
            "Porch, Hall → off",
        ),
        ("HassListAddItem", {"data": {"success": []}}, True, "List add item"),
        ("calendar_list_events", [{"summary": "Dentist"}], True, "Calendar list events"),
        ("reminder_set", None, False, "Reminder set failed"),
        ("HassVacuumStart", {"data": {"success": [{"name": "Robbie"}]}}, True, "Robbie → done"),
    ],
)
def test_tool_summaries_for_the_card(name: str, result: Any, ok: bool, summary: str) -> None:
    """A tool's result becomes a few words for the card's result cards."""
    assert tool_summary(name, result, ok=ok) == summary
