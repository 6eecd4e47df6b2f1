"""Assistants as config subentries: personas with their own agent, device, tools and voice."""

from __future__ import annotations

from collections.abc import AsyncIterator
import json
from pathlib import Path
from typing import Any

from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntryState,
    ConfigSubentryData,
)
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er, llm
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.compat import device_by_identifier
from custom_components.shackleton.const import (
    DEFAULT_ASSISTANT,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_ASSISTANT,
)
from custom_components.shackleton.home_bridge import make_llm_context
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from harness.fakes import ChatReply, FakeLiveKit, FakeOpenAI

from .conftest import Room, entry_data, wait_for
from .readme_examples import async_run_example

FIXTURES = Path(__file__).parent / "fixtures"
KIDS = {
    "instructions": "You talk with children. Use short, friendly words.",
    "language": "en",
    "model": "kids-model",
    "voice": "nova",
    "tool_groups": ["notes"],
    "confirm_domains": [],
}
NOTE_TOOLS = {"note_save", "note_search", "note_list", "note_delete"}


def _used(hass: HomeAssistant, entry: MockConfigEntry, key: str) -> float:
    """Return this month's count of an OpenAI usage sensor of `entry`."""
    unique_id = f"{entry.entry_id}_openai_{key}_month"
    sensor = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id)
    assert sensor is not None, key
    return float(hass.states.get(sensor).state)


def _tools(request: dict[str, Any]) -> set[str]:
    return {tool["function"]["name"] for tool in request.get("tools", [])}


@pytest.fixture
async def home(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> AsyncIterator[MockConfigEntry]:
    """Set up an entry called Shackleton with two assistants: Shackleton, and Kids."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton",
        data=entry_data(fake_livekit, fake_openai),
        options=DEFAULT_OPTIONS,
        version=2,
        minor_version=1,
        subentries_data=[
            ConfigSubentryData(
                data={**DEFAULT_ASSISTANT, "language": "en"},
                subentry_type=SUBENTRY_ASSISTANT,
                title="Shackleton",
                unique_id=None,
            ),
            ConfigSubentryData(
                data=KIDS, subentry_type=SUBENTRY_ASSISTANT, title="Kids", unique_id=None
            ),
        ],
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


@pytest.fixture
async def kitchen(hass: HomeAssistant, home: MockConfigEntry) -> AsyncIterator[Room]:
    """Start a kitchen session on local audio, in the entry of `home`."""
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    session = await home.runtime_data.voice.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    await hass.async_block_till_done()
    yield Room(mic, speaker, session)
    mic.close()


async def test_each_assistant_has_its_agent_and_device(
    hass: HomeAssistant, home: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """Two agents on two devices; each answers with its own model, persona and tools."""
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), home.entry_id)
    assert sorted(str(device.name) for device in devices if device.config_subentry_id) == [
        "Kids",
        "Shackleton",
    ]
    for agent in ("conversation.shackleton", "conversation.kids"):
        assert hass.states.get(agent) is not None, agent
    fake_openai.chat_script = [ChatReply("Hello!"), ChatReply("Hi there!")]

    for agent in ("conversation.shackleton", "conversation.kids"):
        await hass.services.async_call(
            "conversation", "process", {"agent_id": agent, "text": "Hi"}, blocking=True
        )
    grown, kids = fake_openai.chat_requests
    assert grown["model"] == entry_data(None, fake_openai)["llm_model"]
    assert {"reminder_set", *NOTE_TOOLS} < _tools(grown)  # and Assist's
    assert kids["model"] == "kids-model"
    assert _tools(kids) == NOTE_TOOLS
    assert KIDS["instructions"] in kids["messages"][0]["content"]
    assert KIDS["instructions"] not in grown["messages"][0]["content"]


async def test_a_room_talks_to_the_assistant_it_chose(
    hass: HomeAssistant, home: MockConfigEntry, kitchen: Room, fake_openai: FakeOpenAI
) -> None:
    """The README's example: the kitchen turns to Kids mid-session, then Kids answers."""
    select = "select.shackleton_kitchen_assistant"
    state = hass.states.get(select)
    assert state.state == "Shackleton"
    assert state.attributes["options"] == ["Shackleton", "Kids"]
    fake_openai.transcripts = ["Turn on the light.", "Remember my football is on Saturday."]
    fake_openai.chat_script = [
        ChatReply("Done."),
        ChatReply("Okay."),  # the README's conversation.process to the Kids agent
        ChatReply("I will remember."),
    ]
    await kitchen.say("turn_on_kitchen_light")
    await kitchen.reply(1)
    before = fake_openai.chat_requests[0]
    assert before["model"] != "kids-model"
    assert KIDS["instructions"] not in before["messages"][0]["content"]

    await async_run_example(hass, "personas")
    assert hass.states.get(select).state == "Kids"
    assert fake_openai.chat_requests[1]["model"] == "kids-model"
    await kitchen.say("whats_the_time")
    await kitchen.reply(2)
    after = fake_openai.chat_requests[2]
    assert after["model"] == "kids-model"
    assert KIDS["instructions"] in after["messages"][0]["content"]
    assert _tools(after) == NOTE_TOOLS  # no device tools for the kids
    # The first reply in the entry's voice, the second in the Kids' own.
    assert fake_openai.tts_voices[0] != "nova"
    assert fake_openai.tts_voices[-1] == "nova"
    # The Kids' own model and voice count on the entry's usage sensors like the rest.
    billed = {
        "llm_input_tokens": sum(usage["prompt_tokens"] for usage in fake_openai.chat_usage),
        "tts_characters": sum(len(text) for text in fake_openai.tts_inputs),
    }
    await wait_for(lambda: {key: _used(hass, home, key) for key in billed} == billed)


async def test_the_room_choice_survives_a_restart_and_a_deleted_assistant(
    hass: HomeAssistant, home: MockConfigEntry
) -> None:
    """The choice is kept across reloads; when its assistant goes, the first one serves."""
    home.runtime_data.rooms.async_served("den")
    await hass.async_block_till_done()
    select = "select.shackleton_den_assistant"
    await hass.services.async_call(
        "select", "select_option", {"entity_id": select, "option": "Kids"}, blocking=True
    )
    assert await hass.config_entries.async_reload(home.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(select).state == "Kids"
    # Another agent using the Shackleton API from the den's device gets the Kids' tools.
    den = home.runtime_data.rooms.device_id("den")
    api = await llm.async_get_api(
        hass, f"{DOMAIN}-{home.entry_id}", make_llm_context(hass, "en", den, Context())
    )
    assert {tool.name for tool in api.tools} == NOTE_TOOLS

    [kids] = [s for s in home.subentries.values() if s.title == "Kids"]
    assert hass.config_entries.async_remove_subentry(home, kids.subentry_id)
    await hass.async_block_till_done()
    assert hass.states.get(select).state == "Shackleton"
    assert hass.states.get(select).attributes["options"] == ["Shackleton"]
    assert hass.states.get("conversation.kids") is None


async def test_add_and_change_an_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The subentry flow: clear errors, then a new agent; reconfigure changes it."""
    flows = hass.config_entries.subentries
    result = await flows.async_init(
        (loaded_entry.entry_id, SUBENTRY_ASSISTANT), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    for change, error in (
        ({"name": "  "}, {"name": "name_empty"}),
        ({"name": "shackleton (127.0.0.1)"}, {"name": "name_taken"}),  # rooms pick by name
        ({"name": "Kids", "instructions": " "}, {"instructions": "instructions_empty"}),
    ):
        result = await flows.async_configure(result["flow_id"], {**KIDS, **change})
        assert result["errors"] == error
    result = await flows.async_configure(result["flow_id"], {**KIDS, "name": "Kids"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    [kids] = [s for s in loaded_entry.subentries.values() if s.title == "Kids"]
    assert kids.data == KIDS
    assert hass.states.get("conversation.kids") is not None

    result = await flows.async_init(
        (loaded_entry.entry_id, SUBENTRY_ASSISTANT),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": kids.subentry_id},
    )
    answer = {**KIDS, "name": "Children", "model": "  ", "voice": ""}
    result = await flows.async_configure(result["flow_id"], answer)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    changed = loaded_entry.subentries[kids.subentry_id]
    assert changed.title == "Children"
    assert changed.data["model"] == ""  # blank: the entry's model
    agent = er.async_get(hass).async_get_entity_id("conversation", DOMAIN, kids.subentry_id)
    assert agent == "conversation.kids"  # the entity id stays; its device is renamed
    registry = dr.async_get(hass)
    device = device_by_identifier(registry, (DOMAIN, kids.subentry_id), loaded_entry.entry_id)
    assert device is not None
    assert device.name == "Children"


async def test_migration_from_a_stored_version_1_entry(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> None:
    """A 1.1 entry as a 2026.11 release stored it: its persona becomes the first assistant.

    Its agent keeps its entity id (an automation's agent_id keeps working), and the
    1.2 step (dotted confirm domains) runs first.
    """
    stored: dict[str, Any] = json.loads((FIXTURES / "config_entry_v1.json").read_text())
    stored["data"] = entry_data(fake_livekit, fake_openai)
    entry = MockConfigEntry(**stored)
    entry.add_to_hass(hass)
    old_agent = er.async_get(hass).async_get_or_create(
        "conversation", DOMAIN, entry.entry_id, config_entry=entry, suggested_object_id="home"
    )
    assert old_agent.entity_id == "conversation.home"

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert (entry.version, entry.minor_version) == (2, 1)
    [assistant] = entry.subentries.values()
    assert assistant.subentry_type == SUBENTRY_ASSISTANT
    assert assistant.title == stored["title"]
    assert assistant.data == {
        "instructions": "Talk like a ship's captain.",
        "language": "de",
        "voice": "onyx",
        "model": "",
        "tool_groups": ["devices", "notes"],
        "confirm_domains": ["lock", "cover_garage"],
    }
    persona = {"instructions", "language", "voice", "tool_groups", "confirm_domains"}
    assert not persona & set(entry.options)
    assert entry.options["min_endpointing_delay"] == 0.8  # the rest stays
    moved = er.async_get(hass).async_get("conversation.home")
    assert moved is not None
    assert (moved.unique_id, moved.config_subentry_id) == ((assistant.subentry_id,) * 2)
    assert hass.states.get("conversation.home") is not None


async def test_a_newer_entry_does_not_load(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """A downgrade (an entry from a later version) refuses to load rather than guess."""
    entry = MockConfigEntry(domain=DOMAIN, data=entry_data(None, fake_openai), version=3)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR
    assert entry.subentries == {}
