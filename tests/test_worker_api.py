"""The external worker's WebSocket commands, against a real hass and HA's own WS client."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from homeassistant.components.websocket_api import const as websocket_api
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.shackleton.const import (
    CONF_ANNOUNCE_NOBODY,
    CONF_WORKER,
    DEFAULT_INSTRUCTIONS,
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_TURN,
    ISSUE_VOICE_UNAVAILABLE,
    NOBODY_QUEUE,
    WORKER_EXTERNAL,
)
from custom_components.shackleton.voice import protocol
from custom_components.shackleton.voice.home import Persona, RoomTools, ToolSpec, TurnReport
from custom_components.shackleton.voice.protocol import PROTOCOL, WorkerSettings
from custom_components.shackleton.voice_config import livekit_server, settings_from_entry
from custom_components.shackleton.worker_api import agent_name, async_get_hub
from harness.fakes import FakeLiveKit, FakeOpenAI

from .conftest import entry_data

LIGHT = "light.kitchen_light"
PREFIX = "shackleton/worker"


@pytest.fixture
async def external_entry(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI, kitchen_light: None
) -> MockConfigEntry:
    """Set up an entry served by an external worker, queueing unheard announcements."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (worker)",
        data=entry_data(fake_livekit, fake_openai),
        options={
            **DEFAULT_OPTIONS,
            "language": "en",
            CONF_WORKER: WORKER_EXTERNAL,
            CONF_ANNOUNCE_NOBODY: NOBODY_QUEUE,
        },
        entry_id="01JSHACKLETONWORKER0000000",
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return entry


class Worker:
    """A worker's WebSocket connection, through HA's test client."""

    def __init__(self, client: Any, entry_id: str) -> None:
        """Prepare."""
        self.client = client
        self.entry_id = entry_id
        self.subscription = 0
        self.events: list[dict[str, Any]] = []  # pushed while waiting for a result

    async def connect(
        self, protocol: int = PROTOCOL, entry_id: str | None = None
    ) -> dict[str, Any]:
        """Bind the connection to an entry; return the answer."""
        await self.client.send_json_auto_id(
            {
                "type": f"{PREFIX}/connect",
                "entry_id": entry_id or self.entry_id,
                "protocol": protocol,
                "name": "test worker",
            }
        )
        answer: dict[str, Any] = await self.client.receive_json()
        self.subscription = answer["id"]
        return answer

    async def event(self) -> dict[str, Any]:
        """Return the next event pushed to the worker."""
        if self.events:
            return self.events.pop(0)
        message = await self.client.receive_json()
        assert message["type"] == "event", message
        assert message["id"] == self.subscription
        event: dict[str, Any] = message["event"]
        return event

    async def ask(self, command: str, entry_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """Send a worker command; return its result (keeping events that come first)."""
        await self.client.send_json_auto_id(
            {"type": f"{PREFIX}/{command}", "entry_id": entry_id or self.entry_id, **fields}
        )
        while True:
            answer: dict[str, Any] = await self.client.receive_json()
            if answer["type"] == "result":
                return answer
            self.events.append(answer["event"])


def test_fatal_codes_are_home_assistants() -> None:
    """The codes a worker gives up on are the ones HA's WebSocket API sends."""
    assert {
        websocket_api.ERR_UNAUTHORIZED,
        websocket_api.ERR_NOT_FOUND,
        websocket_api.ERR_NOT_ALLOWED,
    } < protocol.FATAL_CODES


def test_messages_decode_to_what_was_encoded() -> None:
    """Tools and turns come out of the protocol as they went in; unknown fields are dropped."""
    tools = RoomTools([ToolSpec("noop", "Does nothing", {"type": "object"})], "Be kind.")
    assert protocol.room_tools(protocol.tools_result(tools)) == tools
    kids = replace(tools, persona=Persona("Be friendly.", "fr", model="small", voice="nova"))
    assert protocol.room_tools(protocol.tools_result(kids)) == kids
    turn = TurnReport(room="den", end_to_end=0.5, tools=["noop"], user_text="hi")
    fields = protocol.turn_fields(turn) | {"from_a_newer_worker": 1}
    assert protocol.turn_report("den", fields) == turn
    assert protocol.decode_audio(protocol.encode_audio(b"\x00\x01")) == b"\x00\x01"


async def _connected(
    hass_ws_client: WebSocketGenerator, hass: HomeAssistant, entry_id: str
) -> Worker:
    """Return a worker bound to an entry, its settings event read."""
    worker = Worker(await hass_ws_client(hass), entry_id)
    assert (await worker.connect())["success"]
    assert (await worker.event())["type"] == "settings"
    return worker


async def test_worker_gets_settings_and_runs_tools(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    external_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
) -> None:
    """Settings as the entry holds them, then tools listed and run in HA, refusals for the model."""
    runtime = external_entry.runtime_data.runtime
    assert runtime.voice_available is False
    assert runtime.voice_error == "no_worker"
    # An external entry loads no engine, and raises no "voice unavailable" repair.
    assert external_entry.runtime_data.voice.engine is None
    issue = f"{ISSUE_VOICE_UNAVAILABLE}_{external_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue) is None

    worker = Worker(await hass_ws_client(hass), external_entry.entry_id)
    assert (await worker.connect())["success"]
    settings = await worker.event()
    assert settings["type"] == "settings"
    values = settings["settings"]
    assert values["entry_id"] == external_entry.entry_id
    assert values["voice"]["llm"]["api_key"] == "sk-test"  # an admin's worker needs it
    assert values["voice"]["turn_taking"]["min_endpointing_delay"] == 0.55
    assert values["livekit"]["agent_name"] == agent_name(external_entry.entry_id)
    # What the worker reads is what the entry holds.
    decoded = WorkerSettings.from_message(values)
    assert decoded.voice == settings_from_entry(external_entry, hass.config.language)
    server = livekit_server(external_entry)
    assert server is not None
    assert decoded.livekit is not None
    assert (decoded.livekit["url"], decoded.livekit["api_key"]) == (server.url, server.api_key)
    assert runtime.voice_available is True

    tools = await worker.ask("tools", room="kitchen")
    names = {tool["name"] for tool in tools["result"]["tools"]}
    assert {"intent__HassTurnOn", "note_save"} <= names
    assert "Kitchen light" in tools["result"]["guide"]
    # The room's assistant comes with its tools: the entry's first, in HA's language.
    assert tools["result"]["persona"] == {
        "instructions": DEFAULT_INSTRUCTIONS,
        "language": "en",
        "model": "",
        "voice": "",
    }
    turn_on = {"room": "kitchen", "name": "intent__HassTurnOn", "turn": 1}
    called = await worker.ask("call_tool", **turn_on, arguments={"name": "Kitchen light"})
    assert called["success"], called
    assert hass.states.get(LIGHT).state == STATE_ON
    refused = await worker.ask("call_tool", **turn_on, arguments={"name": "Nowhere"})
    assert refused["error"]["code"] == "tool_error"


async def test_worker_reports_feed_the_entry(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, external_entry: MockConfigEntry
) -> None:
    """Sessions, states and turns reported by a worker show as the in-HA engine's would."""
    runtime = external_entry.runtime_data.runtime
    worker = await _connected(hass_ws_client, hass, external_entry.entry_id)
    assert (await worker.ask("report", room="kitchen", kind="session", active=True))["success"]
    assert runtime.room_states == {"kitchen": "listening"}
    assert (await worker.ask("report", room="kitchen", kind="state", state="speaking"))["success"]
    assert runtime.room_state("kitchen") == "speaking"
    turns: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_TURN, lambda event: turns.append(event.data))
    report = await worker.ask(
        "report",
        room="kitchen",
        kind="turn",
        turn={"end_to_end": 0.8, "tools": ["intent__HassTurnOn"], "user_text": "turn it on"},
    )
    assert report["success"]
    await hass.async_block_till_done()
    assert turns[0]["end_to_end_ms"] == 800
    assert turns[0]["user_text"] == "**REDACTED**"
    bad = await worker.ask("report", room="kitchen", kind="error")
    assert bad["error"]["code"] == "invalid_format"


async def test_announcements_reach_the_worker_or_wait_for_the_next(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, external_entry: MockConfigEntry
) -> None:
    """An announcement is pushed and acked; one never acked waits, through a reload."""
    runtime = external_entry.runtime_data.runtime
    worker = await _connected(hass_ws_client, hass, external_entry.entry_id)
    await worker.ask("report", room="kitchen", kind="session", active=True)
    announce = {"rooms": ["kitchen"]}
    response = await hass.services.async_call(
        DOMAIN,
        "announce",
        {"message": "Dinner is ready", **announce},
        blocking=True,
        return_response=True,
    )
    assert response["rooms"] == [{"room": "kitchen", "outcome": "spoken"}]
    pushed = await worker.event()
    assert pushed["type"] == "announce"
    assert (pushed["room"], pushed["text"]) == ("kitchen", "Dinner is ready")
    assert (await worker.ask("ack", request=pushed["id"], ok=True))["success"]

    # Said but never acknowledged, then the worker went: it waits in the queue.
    await hass.services.async_call(
        DOMAIN,
        "announce",
        {"message": "The post came", **announce},
        blocking=True,
        return_response=True,
    )
    assert (await worker.event())["text"] == "The post came"
    await worker.client.close()
    await hass.async_block_till_done()
    voice = external_entry.runtime_data.voice
    assert [item.text for item in voice.queued] == ["The post came"]
    assert runtime.room_states == {}
    assert runtime.voice_available is False
    # The queue outlives a reload (and a restart: it is stored).
    assert await hass.config_entries.async_reload(external_entry.entry_id)
    await hass.async_block_till_done()
    voice = external_entry.runtime_data.voice
    assert [item.text for item in voice.queued] == ["The post came"]
    assert async_get_hub(hass, external_entry.entry_id) is not None  # the reloaded entry's

    # The next worker to serve the kitchen says it.
    again = await _connected(hass_ws_client, hass, external_entry.entry_id)
    await again.ask("report", room="kitchen", kind="session", active=True)
    delivered = await again.event()
    assert (delivered["type"], delivered["text"]) == ("announce", "The post came")
    assert voice.queued == []
    # An unloaded entry has no hub for workers to find.
    assert await hass.config_entries.async_unload(external_entry.entry_id)
    assert async_get_hub(hass, external_entry.entry_id) is None


async def test_refusals(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    hass_read_only_access_token: str,
    external_entry: MockConfigEntry,
    loaded_entry: MockConfigEntry,
) -> None:
    """Non-admins, in-HA entries, unknown entries, other entries and old workers are refused."""
    reader = Worker(
        await hass_ws_client(hass, hass_read_only_access_token), external_entry.entry_id
    )
    answer = await reader.connect()
    assert answer["error"]["code"] == "unauthorized"
    assert (await reader.ask("tools", room="kitchen"))["error"]["code"] == "unauthorized"

    admin = Worker(await hass_ws_client(hass), external_entry.entry_id)
    # Not connected yet: no tools, no reports.
    assert (await admin.ask("tools", room="kitchen"))["error"]["code"] == "unauthorized"
    in_ha = await admin.connect(entry_id=loaded_entry.entry_id)
    assert in_ha["error"]["code"] == "not_allowed"
    assert "inside Home Assistant" in in_ha["error"]["message"]
    unknown = await admin.connect(entry_id="nope")
    assert unknown["error"]["code"] == "not_found"
    old = await admin.connect(protocol=PROTOCOL + 1)
    assert old["error"]["code"] == "protocol_mismatch"

    assert (await admin.connect())["success"]
    await admin.event()
    other = await admin.ask("tools", entry_id=loaded_entry.entry_id, room="kitchen")
    assert other["error"]["code"] == "unauthorized"
    second = await admin.connect(entry_id=loaded_entry.entry_id)
    assert second["error"]["code"] == "unauthorized"


async def test_switching_to_an_external_worker(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, loaded_entry: MockConfigEntry
) -> None:
    """Choosing the external worker reloads the entry without its engine, and lets workers in."""
    assert loaded_entry.runtime_data.voice.engine is not None
    # As if the voice packages had failed to install here: the worker makes that moot.
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"{ISSUE_VOICE_UNAVAILABLE}_{loaded_entry.entry_id}",
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=ISSUE_VOICE_UNAVAILABLE,
    )
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, CONF_WORKER: WORKER_EXTERNAL}
    )
    await hass.async_block_till_done(wait_background_tasks=True)
    voice = loaded_entry.runtime_data.voice
    assert voice.engine is None
    assert async_get_hub(hass, loaded_entry.entry_id) is not None
    issue = f"{ISSUE_VOICE_UNAVAILABLE}_{loaded_entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue) is None
    worker = Worker(await hass_ws_client(hass), loaded_entry.entry_id)
    assert (await worker.connect())["success"]
    assert (await worker.event())["type"] == "settings"

    # A turn-taking change reaches the worker live, without a reload.
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, "min_endpointing_delay": 0.8}
    )
    await hass.async_block_till_done()
    pushed = await worker.event()
    assert pushed["settings"]["voice"]["turn_taking"]["min_endpointing_delay"] == 0.8
    assert loaded_entry.runtime_data.voice is voice  # not reloaded


async def test_worker_conversations_and_speech(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, external_entry: MockConfigEntry
) -> None:
    """start_conversation waits for the worker; agents and speech engines answer through HA."""
    worker = Worker(await hass_ws_client(hass), external_entry.entry_id)
    await worker.connect()
    await worker.event()
    await worker.ask("report", room="kitchen", kind="session", active=True)

    call = hass.async_create_task(
        hass.services.async_call(
            DOMAIN,
            "start_conversation",
            {"room": "kitchen", "message": "Shall I turn the heating up?"},
            blocking=True,
            return_response=True,
        )
    )
    request = await worker.event()
    assert (request["type"], request["text"]) == (
        "start_conversation",
        "Shall I turn the heating up?",
    )
    assert (await worker.ask("ack", request=request["id"], ok=True))["success"]
    assert (await call)["room"] == "kitchen"

    answer = await worker.ask(
        "converse",
        room="kitchen",
        text="turn on the kitchen light",
        agent_id="conversation.home_assistant",
    )
    assert answer["success"], answer
    assert answer["result"]["tools"] == ["HassTurnOn"]  # the intent Assist matched
    assert hass.states.get(LIGHT).state == STATE_ON

    missing = await worker.ask("synthesize", engine="tts.nowhere", text="hi", language="en")
    assert missing["error"] == {
        "code": "tool_error",
        "message": "There is no text-to-speech engine tts.nowhere",
    }
    garbled = await worker.ask(
        "transcribe", engine="stt.nowhere", audio="%%%", rate=16000, language="en"
    )
    assert garbled["error"]["code"] == "invalid_format"
    unknown = await worker.ask(
        "transcribe", engine="stt.nowhere", audio="AAAA", rate=16000, language="en"
    )
    assert unknown["error"]["code"] == "tool_error"

    # Ending the room's session asks its worker to leave.
    await hass.services.async_call(DOMAIN, "end_session", {"room": "kitchen"}, blocking=True)
    assert await worker.event() == {"type": "leave", "room": "kitchen"}
