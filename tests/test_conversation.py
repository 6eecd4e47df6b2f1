"""Shackleton as an Assist conversation agent, in a real hass with a fake OpenAI server."""

from __future__ import annotations

import asyncio
import sys

from homeassistant.components import conversation
from homeassistant.const import STATE_ON
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.shackleton.const import DOMAIN, EVENT_TOOL_CALL
from harness.fakes import ChatReply, FakeOpenAI

from .conftest import LIGHT, entry_data

AGENT = "conversation.shackleton_127_0_0_1"


async def _say(
    hass: HomeAssistant, text: str, conversation_id: str | None = None
) -> conversation.ConversationResult:
    return await conversation.async_converse(
        hass,
        text=text,
        conversation_id=conversation_id,
        context=Context(),
        language="en",
        agent_id=AGENT,
    )


async def test_assist_turns_on_a_light_and_keeps_context(
    hass: HomeAssistant,
    kitchen_light: None,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """conversation.process with Shackleton turns a light on; a follow-up sees it all."""
    audit = async_capture_events(hass, EVENT_TOOL_CALL)
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply("The kitchen light is on."),
        ChatReply("It has been on since you asked."),
    ]
    result = await hass.services.async_call(
        conversation.DOMAIN,
        "process",
        {"agent_id": AGENT, "text": "Turn on the kitchen light", "language": "en"},
        blocking=True,
        return_response=True,
    )
    assert result is not None
    assert hass.states.get(LIGHT).state == STATE_ON
    assert result["response"]["speech"]["plain"]["speech"] == "The kitchen light is on."
    assert [event.data["outcome"] for event in audit] == ["ok"]

    first, second = fake_openai.chat_requests
    system = first["messages"][0]["content"]
    assert "tool call did it" in system  # the persona's honesty rule
    assert "confirmation_token" in system  # Shackleton's API prompt
    assert "intent__HassTurnOn" in {tool["function"]["name"] for tool in first["tools"]}
    # The tool's result went back to the model with the call's id.
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == second["messages"][-2]["tool_calls"][0]["id"]

    follow_up = await _say(hass, "Since when?", result["conversation_id"])
    assert follow_up.response.speech["plain"]["speech"] == "It has been on since you asked."
    history = fake_openai.chat_requests[2]["messages"]
    roles = [m["role"] for m in history]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert history[1]["content"] == "Turn on the kitchen light"
    assert history[-1]["content"] == "Since when?"


async def test_hung_model_gets_an_apology_not_a_stall(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A model that never answers is cut off by the turn deadline; Assist hears why."""
    fake_openai.chat_script = [ChatReply(fault="hang"), ChatReply(fault="hang")]
    async with asyncio.timeout(15):  # the deadline is 6 s; the library default ~44 s
        result = await _say(hass, "Hello?")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert "Sorry" in result.response.speech["plain"]["speech"]
    fake_openai.released.set()


async def test_a_failing_tool_is_reported_to_the_model_and_the_caller(
    hass: HomeAssistant,
    kitchen_light: None,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """Bad arguments from the model come back to it as an error, and `ask` shows it."""
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Garden fountain"})]),
        ChatReply("I can't find a garden fountain."),
    ]
    answer = await hass.services.async_call(
        DOMAIN, "ask", {"text": "Start the fountain"}, blocking=True, return_response=True
    )
    assert answer is not None
    assert answer["tool_calls"] == [
        {"tool": "intent__HassTurnOn", "arguments": {"name": "Garden fountain"}, "success": False}
    ]
    tool_result = fake_openai.chat_requests[1]["messages"][-1]
    assert tool_result["role"] == "tool"
    assert "error" in tool_result["content"]


@pytest.mark.parametrize("agent", ["conversation.home_assistant", "self"])
async def test_home_assistant_agent_as_the_language_model(
    hass: HomeAssistant, kitchen_light: None, fake_openai: FakeOpenAI, agent: str
) -> None:
    """With Assist as the LLM stage, Shackleton's agent hands text to it.

    Calendar and reminder sentences run Shackleton's tools; pointing it at itself is
    refused.
    """
    model = "conversation.shackleton" if agent == "self" else agent
    data = entry_data(None, fake_openai) | {"llm_provider": "home_assistant", "llm_model": model}
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)

    if agent == "self":
        with pytest.raises(HomeAssistantError) as err:
            await hass.services.async_call(
                DOMAIN, "ask", {"text": "Hi"}, blocking=True, return_response=True
            )
        assert err.value.translation_key == "ask_failed"
    else:
        answer = await hass.services.async_call(
            DOMAIN, "ask", {"text": "Turn on the kitchen light"}, blocking=True,
            return_response=True,
        )  # fmt: skip
        assert answer is not None
        assert hass.states.get(LIGHT).state == STATE_ON
        assert answer["response"] == "Turned on the light"
        assert answer["tool_calls"] == [{"tool": "HassTurnOn", "arguments": {}, "success": None}]
        reminder = await hass.services.async_call(
            DOMAIN,
            "ask",
            {"text": "Remind me to water the plants in 10 minutes"},
            blocking=True,
            return_response=True,
        )
        assert reminder is not None
        [call] = reminder["tool_calls"]
        assert (call["tool"], call["success"]) == ("reminder_set", True)
        assert "water the plants" in reminder["response"]
    assert fake_openai.chat_requests == []  # no language model was asked
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_without_the_openai_sdk_text_says_why(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No OpenAI SDK (and none installable): the agent apologises, `ask` names the cause."""
    monkeypatch.setitem(sys.modules, "openai.types.chat", None)
    result = await _say(hass, "Hello?")
    assert result.response.response_type is intent.IntentResponseType.ERROR
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN, "ask", {"text": "Hello?"}, blocking=True, return_response=True
        )
    assert err.value.translation_key == "ask_failed"
    assert "OpenAI client" in str(err.value)
