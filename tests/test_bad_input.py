"""Bad input at the edges: refused in words before any provider is asked."""

from __future__ import annotations

from typing import Any

from homeassistant.components import conversation
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import intent
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.const import DOMAIN
from harness.fakes import FakeOpenAI

HUGE = "Turn on the light. " * 5300  # about 100 kB
LONG_ROOM = "r" * 1000


@pytest.mark.parametrize(
    ("action", "data", "key"),
    [
        ("ask", {"text": "   \n\t "}, "text_empty"),
        ("ask", {"text": ""}, "text_empty"),
        ("ask", {"text": HUGE}, "text_too_long"),
        ("ask", {"text": "Hello", "context": HUGE}, "text_too_long"),
        ("announce", {"message": "  "}, "text_empty"),
        ("announce", {"message": "x" * 10_000, "rephrase": True}, "text_too_long"),
        ("start_conversation", {"room": "kitchen", "message": "x" * 10_000}, "text_too_long"),
        ("start_conversation", {"room": LONG_ROOM, "message": "Hi"}, "invalid_room"),
        ("start_session", {"room": LONG_ROOM}, "invalid_room"),
        ("announce", {"message": "Hi", "rooms": [LONG_ROOM]}, "invalid_room"),
    ],
)
async def test_actions_refuse_bad_input_before_any_provider(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    action: str,
    data: dict[str, Any],
    key: str,
) -> None:
    """Blank or oversized text, and absurd room names, get a translated error at once."""
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            DOMAIN, action, data, blocking=True, return_response=action != "start_session"
        )
    assert err.value.translation_key == key
    message = str(err.value)
    assert "{" not in message  # every placeholder filled
    assert len(message) < 200  # a 1,000-character room name is not quoted in full
    assert fake_openai.chat_requests == []


@pytest.mark.parametrize(("text", "words"), [(HUGE, "at most 8000"), (" \n ", "empty")])
async def test_the_agent_refuses_bad_text_in_words(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI, text: str,
    words: str,
) -> None:  # fmt: skip
    """The Assist dialog gets the reason as its answer; the model is never asked."""
    result = await conversation.async_converse(
        hass, text=text, conversation_id=None, context=Context(), language="en",
        agent_id="conversation.shackleton_127_0_0_1",
    )  # fmt: skip
    assert result.response.response_type is intent.IntentResponseType.ERROR
    assert words in result.response.speech["plain"]["speech"]
    assert fake_openai.chat_requests == []
