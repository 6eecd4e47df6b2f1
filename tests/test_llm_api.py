"""Shackleton's LLM API in a real hass: Assist's device tools, confirmations, the audit."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components import conversation
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.components.intent import async_device_supports_timers
from homeassistant.components.lock import LockState
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    MockUser,
    async_capture_events,
)

from custom_components.shackleton.compat import LLM_CONTEXT_HAS_AGENT_ID
from custom_components.shackleton.const import DEFAULT_ASSISTANT, EVENT_TOOL_CALL, REDACTED
from custom_components.shackleton.home_bridge import HassHome, make_llm_context
from custom_components.shackleton.tools.api import (
    TOKEN_ARG,
    ConfirmationError,
    Confirmations,
    ShackletonAPI,
)
from custom_components.shackleton.voice.home import ToolCallError
from harness.fakes import ChatReply, FakeOllama, with_confirmation_token

from .conftest import ASSISTANT_ID, add_template, setup_front_door, switched, update_assistant

KITCHEN = "light.kitchen_light"
CELLAR = "light.cellar_light"
FRONT_DOOR = "lock.front_door"


@pytest.fixture
async def home(hass: HomeAssistant) -> None:
    """Two template lights (one hidden from Assist) and a template lock, all real."""
    booleans = {"kitchen": {}, "cellar": {}, "door_locked": {"initial": True}}
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": booleans})
    for key, name in (("kitchen", "Kitchen light"), ("cellar", "Cellar light")):
        await add_template(hass, "light", name, **switched(key))
    await setup_front_door(hass)
    await hass.async_block_till_done()
    async_expose_entity(hass, "conversation", CELLAR, False)
    async_expose_entity(hass, "conversation", FRONT_DOOR, True)  # locks are not by default


async def _instance(hass: HomeAssistant, entry: MockConfigEntry, context: Context) -> Any:
    llm_context = make_llm_context(hass, "en", None, context)
    return await llm.async_get_api(hass, f"shackleton-{entry.entry_id}", llm_context)


async def _call(
    hass: HomeAssistant, entry: MockConfigEntry, context: Context, tool: str, **args: Any
) -> Any:
    api = await _instance(hass, entry, context)
    result = await api.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=args))
    assert isinstance(result, llm.ToolResult)
    return result.data


@pytest.mark.usefixtures("home")
async def test_registered_with_assist_tools_and_audited(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, hass_admin_user: MockUser
) -> None:
    """The API is listed for conversation agents; a device call runs and is audited."""
    api_id = f"shackleton-{loaded_entry.entry_id}"
    assert api_id in {api.id for api in llm.async_get_apis(hass)}
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    context = Context(user_id=hass_admin_user.id)
    instance = await _instance(hass, loaded_entry, context)
    names = {tool.name for tool in instance.tools}
    assert {"intent__HassTurnOn", "intent__HassTurnOff", "homeassistant__GetLiveContext"} <= names
    assert "confirmation_token" in instance.api_prompt
    # Every tool names its integration and title, and says how it behaves.
    tools = {tool.name: tool for tool in instance.tools}
    assert all(tool.integration and tool.title for tool in instance.tools)
    assert tools["intent__HassTurnOff"].annotations.destructive  # a spoken yes guards it
    assert tools["note_list"].annotations.read_only
    assert tools["note_list"].integration == "shackleton"
    assert not tools["note_save"].annotations.destructive

    result = await _call(hass, loaded_entry, context, "intent__HassTurnOn", name="Kitchen light")
    assert result["response_type"] == "action_done"
    assert hass.states.get(KITCHEN).state == STATE_ON
    [event] = audit
    assert event.data["tool"] == "intent__HassTurnOn"
    assert event.data["outcome"] == "ok"
    assert event.data["arguments"] == {"name": REDACTED}  # transcripts are off by default
    assert event.data["user_id"] == hass_admin_user.id
    assert event.data["duration_ms"] >= 0
    assert event.context is context

    await hass.config_entries.async_unload(loaded_entry.entry_id)
    assert api_id not in {api.id for api in llm.async_get_apis(hass)}


@pytest.mark.usefixtures("home")
async def test_entities_hidden_from_assist_are_out_of_reach(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The cellar light is not exposed: the call fails and the light stays off."""
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    with pytest.raises(HomeAssistantError):
        await _call(hass, loaded_entry, Context(), "intent__HassTurnOn", name="Cellar light")
    assert hass.states.get(CELLAR).state == STATE_OFF
    assert audit[0].data["outcome"].startswith("error")


@pytest.mark.usefixtures("home")
async def test_unlock_needs_a_yes_in_a_later_turn(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Unlocking answers with a token; only a later turn presenting it unlocks the door."""
    hass.config_entries.async_update_entry(
        loaded_entry, options={**loaded_entry.options, "transcripts_in_events": True}
    )
    await hass.async_block_till_done()
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    asked = Context()
    answer = await _call(hass, loaded_entry, asked, "intent__HassTurnOff", name="Front door")
    assert answer["confirmation_required"] is True
    assert answer["targets"] == ["Front door"]
    token = answer[TOKEN_ARG]
    # "all" is how Assist's intents say "every matching entity": no way around the yes.
    every_lock = await _call(
        hass, loaded_entry, asked, "intent__HassTurnOff", name="all", domain=["lock"]
    )
    assert every_lock["confirmation_required"] is True
    assert every_lock["targets"] == ["Front door"]
    confirmed = {"name": "Front door", TOKEN_ARG: token}
    assert hass.states.get(FRONT_DOOR).state == LockState.LOCKED

    # The model may not answer for the user in the same turn...
    with pytest.raises(ConfirmationError, match="not answered"):
        await _call(hass, loaded_entry, asked, "intent__HassTurnOff", **confirmed)
    # ...nor forge a token, nor spend it on another action.
    yes = Context()
    with pytest.raises(ConfirmationError, match="unknown or expired"):
        await _call(
            hass, loaded_entry, yes, "intent__HassTurnOff", name="Front door", **{TOKEN_ARG: "x"}
        )
    with pytest.raises(ConfirmationError, match="different action"):
        await _call(
            hass, loaded_entry, yes, "intent__HassTurnOn", name="Front door", **{TOKEN_ARG: token}
        )
    assert hass.states.get(FRONT_DOOR).state == LockState.LOCKED

    # The user said yes: the next turn presents the token, once.
    await _call(hass, loaded_entry, yes, "intent__HassTurnOff", **confirmed)
    assert hass.states.get(FRONT_DOOR).state == LockState.UNLOCKED
    with pytest.raises(ConfirmationError, match="unknown or expired"):
        await _call(hass, loaded_entry, Context(), "intent__HassTurnOff", **confirmed)

    outcomes = [event.data["outcome"] for event in audit]
    assert outcomes[0] == "confirmation_required"
    assert outcomes[-2] == "ok"
    assert sum(outcome.startswith("error") for outcome in outcomes) == 4
    assert outcomes.count("confirmation_required") == 2
    # Arguments are shown when the options allow it; the token is not an argument.
    assert audit[-2].data["arguments"] == {"name": "Front door"}


def test_confirmation_tokens_expire() -> None:
    """A token older than its lifetime is refused like a forged one."""
    confirmations = Confirmations(ttl=0.0)
    token = confirmations.issue("intent__HassTurnOff", {"name": "Front door"}, "turn-1")
    with pytest.raises(ConfirmationError, match="unknown or expired"):
        confirmations.redeem(token, "intent__HassTurnOff", {"name": "Front door"}, "turn-2")


@pytest.mark.usefixtures("home")
async def test_voice_path_confirms_across_turns_and_reports_bad_arguments(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Through the voice engine's Home: turn numbers make the yes; bad arguments are errors."""
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    voice_home = HassHome(hass, loaded_entry)
    specs = {spec.name: spec for spec in (await voice_home.room_tools("hall")).specs}
    assert TOKEN_ARG in specs["intent__HassTurnOff"].parameters["properties"]
    asked = await voice_home.call_tool(
        "hall", "intent__HassTurnOff", {"name": "Front door"}, turn=1
    )
    token = asked[TOKEN_ARG]
    with pytest.raises(ToolCallError, match="not answered"):
        await voice_home.call_tool(
            "hall", "intent__HassTurnOff", {"name": "Front door", TOKEN_ARG: token}, turn=1
        )
    await voice_home.call_tool(
        "hall", "intent__HassTurnOff", {"name": "Front door", TOKEN_ARG: token}, turn=2
    )
    assert hass.states.get(FRONT_DOOR).state == LockState.UNLOCKED
    # The voice engine's turns are the entry's agent's.
    agent = loaded_entry.runtime_data.agents[ASSISTANT_ID]
    assert agent is not None
    expected = agent.entity_id if LLM_CONTEXT_HAS_AGENT_ID else None
    assert {event.data["agent_id"] for event in audit} == {expected}

    with pytest.raises(ToolCallError, match="Invalid arguments for intent__HassTurnOn"):
        await voice_home.call_tool(
            "hall", "intent__HassTurnOn", {"name": 42, "bogus": True}, turn=3
        )
    with pytest.raises(ToolCallError, match="not found"):
        await voice_home.call_tool("hall", "NoSuchTool", {}, turn=3)


@pytest.mark.usefixtures("home")
async def test_voice_home_builds_the_tools_once_a_turn_and_serves_rooms_explicitly(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn's tool calls, even at once, share one API instance; listing serves the room."""
    built: list[str | None] = []
    build = ShackletonAPI.async_get_room_instance

    async def counting(api: ShackletonAPI, context: llm.LLMContext, room: str | None) -> Any:
        built.append(room)
        return await build(api, context, room)

    monkeypatch.setattr(ShackletonAPI, "async_get_room_instance", counting)
    voice_home = HassHome(hass, loaded_entry)
    device_id = loaded_entry.runtime_data.rooms.device_id("den")
    # A tool call alone does not serve the room: no timer handler on its device.
    await voice_home.call_tool("den", "intent__HassTurnOn", {"name": "Kitchen light"}, turn=1)
    assert not async_device_supports_timers(hass, device_id)

    listed = await voice_home.room_tools("den")
    assert async_device_supports_timers(hass, device_id)
    assert "intent__HassStartTimer" in {spec.name for spec in listed.specs}
    assert listed.guide
    built.clear()
    await asyncio.gather(
        *(
            voice_home.call_tool("den", "intent__HassTurnOff", {"name": "Kitchen light"}, turn=2)
            for _ in range(3)
        )
    )
    await voice_home.call_tool("den", "intent__HassTurnOn", {"name": "Kitchen light"}, turn=2)
    assert built == ["den"]
    await voice_home.call_tool("den", "intent__HassTurnOff", {"name": "Kitchen light"}, turn=3)
    assert built == ["den", "den"]


@pytest.mark.usefixtures("home")
async def test_tool_groups_and_confirmation_domains_follow_the_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The assistant's groups and domains: without devices, only the notes are left."""
    update_assistant(hass, loaded_entry, tool_groups=["notes"], confirm_domains=[])
    await hass.async_block_till_done()
    instance = await _instance(hass, loaded_entry, Context())
    assert {tool.name for tool in instance.tools} == {
        "note_save",
        "note_search",
        "note_list",
        "note_delete",
    }
    update_assistant(hass, loaded_entry, tool_groups=DEFAULT_ASSISTANT["tool_groups"])
    await hass.async_block_till_done()
    await _call(hass, loaded_entry, Context(), "intent__HassTurnOff", name="Front door")
    assert hass.states.get(FRONT_DOOR).state == LockState.UNLOCKED


@pytest.mark.usefixtures("home")
async def test_another_conversation_agent_uses_the_api(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_ollama: FakeOllama
) -> None:
    """HA's own Ollama agent, with "Shackleton" picked as its API: tools, yes, audit.

    Nothing of Shackleton's runs the conversation: HA's chat log calls the tools.
    """
    ollama = MockConfigEntry(
        domain="ollama",
        title="Llama",
        data={"url": fake_ollama.url, "model": "llama3.2:latest"},
        options={"llm_hass_api": f"shackleton-{loaded_entry.entry_id}"},
    )
    ollama.add_to_hass(hass)
    assert await hass.config_entries.async_setup(ollama.entry_id)
    await hass.async_block_till_done()
    agent = "conversation.llama"
    assert hass.states.get(agent) is not None
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    fake_ollama.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply("The kitchen light is on."),
        ChatReply(tool_calls=[("intent__HassTurnOff", {"name": "Front door"})]),
        ChatReply("Should I unlock the front door?"),
        ChatReply(
            tool_calls=[("intent__HassTurnOff", with_confirmation_token({"name": "Front door"}))]
        ),
        ChatReply("Unlocked."),
    ]

    async def say(text: str, conversation_id: str | None) -> conversation.ConversationResult:
        return await conversation.async_converse(
            hass, text=text, conversation_id=conversation_id, context=Context(), agent_id=agent
        )

    first = await say("Turn on the kitchen light", None)
    assert first.response.speech["plain"]["speech"].strip() == "The kitchen light is on."
    assert hass.states.get(KITCHEN).state == STATE_ON
    offered = {tool["function"]["name"] for tool in fake_ollama.chat_requests[0]["tools"]}
    assert {"intent__HassTurnOn", "note_save", "reminder_set"} <= offered
    assert "Shackleton" in fake_ollama.chat_requests[0]["messages"][0]["content"]

    asked = await say("Unlock the front door", first.conversation_id)
    assert asked.response.speech["plain"]["speech"].strip() == "Should I unlock the front door?"
    assert hass.states.get(FRONT_DOOR).state == LockState.LOCKED
    await say("Yes", first.conversation_id)  # a new user turn: the token is honoured
    assert hass.states.get(FRONT_DOOR).state == LockState.UNLOCKED

    assert [event.data["outcome"] for event in audit] == ["ok", "confirmation_required", "ok"]
    assert [event.data["tool"] for event in audit] == [
        "intent__HassTurnOn",
        "intent__HassTurnOff",
        "intent__HassTurnOff",
    ]
    # HA names the caller (from 2026.11)
    assert {event.data["agent_id"] for event in audit} == {
        agent if LLM_CONTEXT_HAS_AGENT_ID else None
    }
    assert await hass.config_entries.async_unload(ollama.entry_id)
