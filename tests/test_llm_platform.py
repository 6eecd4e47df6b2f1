"""Shackleton's tools in HA's Assist API (llm.py), for any agent set to control the home."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.components.llm import async_get_tools as async_get_platform_tools
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util import dt as dt_util
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.shackleton.compat import LLM_CONTEXT_HAS_AGENT_ID
from custom_components.shackleton.const import DOMAIN, EVENT_TOOL_CALL
from custom_components.shackleton.home_bridge import make_llm_context
from custom_components.shackleton.tools.api import TOKEN_ARG, GuardedTool
from harness.fakes import ChatReply, FakeLiveKit, FakeOllama, FakeOpenAI

from .conftest import entry_data, update_assistant
from .readme_examples import async_run_example

PREFIX = f"{DOMAIN}__"
OWN_TOOLS = {
    "note_save",
    "note_search",
    "note_list",
    "note_delete",
    "reminder_set",
    "reminder_list",
    "reminder_cancel",
}


def _llm_context(hass: HomeAssistant) -> llm.LLMContext:
    return make_llm_context(hass, "en", None, Context())


async def _assist(hass: HomeAssistant) -> llm.APIInstance:
    return await llm.async_get_api(hass, llm.LLM_API_ASSIST, _llm_context(hass))


def _ours(instance: llm.APIInstance) -> dict[str, llm.Tool]:
    return {tool.name: tool for tool in instance.tools if tool.name.startswith(PREFIX)}


async def _ollama_agent(hass: HomeAssistant, fake_ollama: FakeOllama) -> str:
    """Set up HA's own Ollama agent, set to control Home Assistant with Assist."""
    ollama = MockConfigEntry(
        domain="ollama",
        title="Llama",
        data={"url": fake_ollama.url, "model": "llama3.2:latest"},
        options={"llm_hass_api": llm.LLM_API_ASSIST},
    )
    ollama.add_to_hass(hass)
    assert await hass.config_entries.async_setup(ollama.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get("conversation.llama") is not None
    return "conversation.llama"


async def _process(hass: HomeAssistant, agent: str, text: str) -> str:
    """Run the README's example: `conversation.process` to the other agent."""
    response = await hass.services.async_call(
        "conversation",
        "process",
        {"agent_id": agent, "text": text},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    speech: Any = response["response"]["speech"]
    return str(speech["plain"]["speech"]).strip()


async def test_ollama_agent_with_assist_saves_a_note_and_sets_a_reminder(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_ollama: FakeOllama
) -> None:
    """Another agent's tool calls reach the entry's stores, audited like Shackleton's own."""
    agent = await _ollama_agent(hass, fake_ollama)
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    due = (dt_util.now() + timedelta(days=1)).replace(tzinfo=None).isoformat(timespec="minutes")
    fake_ollama.chat_script = [
        ChatReply(
            tool_calls=[("shackleton__note_save", {"text": "The spare key is under the pot"})]
        ),
        ChatReply("Noted."),
        ChatReply(
            tool_calls=[("shackleton__reminder_set", {"text": "Water the plants", "due": due})]
        ),
        ChatReply("I will remind you."),
    ]

    reply = await async_run_example(hass, "tools-in-other-agents")
    assert reply["response"]["speech"]["plain"]["speech"].strip() == "Noted."
    offered = {tool["function"]["name"] for tool in fake_ollama.chat_requests[0]["tools"]}
    assert {f"{PREFIX}{name}" for name in OWN_TOOLS} <= offered
    assert not OWN_TOOLS & offered  # only Shackleton's own API names them so
    assert await _process(hass, agent, "Remind me tomorrow to water the plants") == (
        "I will remind you."
    )

    notes = loaded_entry.runtime_data.notes.notes.values()
    assert [note.text for note in notes] == ["The spare key is under the pot"]
    [reminder] = loaded_entry.runtime_data.reminders.reminders.values()
    assert reminder.text == "Water the plants"
    assert reminder.due.startswith(due)
    assert reminder.room is None  # said as a notification: another agent's turn is text
    assert [(event.data["tool"], event.data["outcome"]) for event in audit] == [
        ("shackleton__note_save", "ok"),
        ("shackleton__reminder_set", "ok"),
    ]
    assert {event.data["entry_id"] for event in audit} == {loaded_entry.entry_id}
    # HA names the caller (from 2026.11)
    assert {event.data["agent_id"] for event in audit} == {
        agent if LLM_CONTEXT_HAS_AGENT_ID else None
    }


async def test_assist_tools_are_prefixed_tagged_and_guarded(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The same tools as Shackleton's API, with HA's prefix, behind the same guard."""
    own = await llm.async_get_api(hass, f"shackleton-{loaded_entry.entry_id}", _llm_context(hass))
    assist = await _assist(hass)
    ours = _ours(assist)
    assert set(ours) == {f"{PREFIX}{name}" for name in OWN_TOOLS}
    own_tools = {tool.name: tool for tool in own.tools}
    for name, tool in ours.items():
        twin = own_tools[name.removeprefix(PREFIX)]
        assert isinstance(tool, GuardedTool)
        assert tool.integration == DOMAIN
        assert tool.title == twin.title
        assert tool.annotations == twin.annotations
        # The guard's token argument on every tool that changes something, as in our API.
        schema = probatio.to_openapi(tool.parameters)
        assert schema == probatio.to_openapi(twin.parameters)
        assert (TOKEN_ARG in schema["properties"]) is not tool.annotations.read_only

    # The guard checks arguments first and audits the refusal, as in Shackleton's own API.
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    call = llm.ToolInput(tool_name=f"{PREFIX}note_delete", tool_args={"id": "nope"})
    with pytest.raises(HomeAssistantError, match="No such note"):
        await assist.async_call_tool(call)
    [event] = audit
    assert event.data["tool"] == f"{PREFIX}note_delete"
    assert event.data["outcome"].startswith("error")


async def test_own_api_lists_each_tool_once(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Shackleton's own API drops Assist's copies of its tools, keeping its own names."""
    own = await llm.async_get_api(hass, f"shackleton-{loaded_entry.entry_id}", _llm_context(hass))
    names = [tool.name for tool in own.tools]
    assert len(names) == len(set(names))
    assert set(names) >= OWN_TOOLS
    assert not [name for name in names if name.startswith(PREFIX)]
    assert "intent__HassTurnOn" in names  # Assist's device tools are still there


async def test_tool_groups_other_apis_and_unloading(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The first assistant's tool groups apply; nothing for other APIs, nor once unloaded."""
    update_assistant(hass, loaded_entry, tool_groups=["devices", "notes"])
    await hass.async_block_till_done()
    assert {name.removeprefix(PREFIX) for name in _ours(await _assist(hass))} == {
        "note_save",
        "note_search",
        "note_list",
        "note_delete",
    }
    # What every loaded integration's llm.py offers another API (HA's own "Home
    # Assistant" API from 2026.11, or any later one): nothing of ours.
    other = await async_get_platform_tools(hass, _llm_context(hass), "another_api")
    assert not [tool.name for tool in other.tools if tool.name.startswith(PREFIX)]

    update_assistant(hass, loaded_entry, tool_groups=["devices"])
    await hass.async_block_till_done()
    assert not _ours(await _assist(hass))

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert not _ours(await _assist(hass))


async def test_the_first_loaded_entry_offers_the_tools(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """With two entries, the first one's tools; the other's once the first unloads."""
    other = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (garage)",
        data=entry_data(fake_livekit, fake_openai),
        options={**loaded_entry.options, "tool_groups": ["timers"]},
    )
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert set(_ours(await _assist(hass))) == {f"{PREFIX}{name}" for name in OWN_TOOLS}

    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assist = await _assist(hass)
    assert set(_ours(assist)) == {
        f"{PREFIX}reminder_set",
        f"{PREFIX}reminder_list",
        f"{PREFIX}reminder_cancel",
    }
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    await assist.async_call_tool(llm.ToolInput(tool_name=f"{PREFIX}reminder_list", tool_args={}))
    assert [event.data["entry_id"] for event in audit] == [other.entry_id]
    assert await hass.config_entries.async_unload(other.entry_id)
