"""Ask, announce, start_conversation and rooms as devices, in a real hass."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from homeassistant.components import persistent_notification
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.util import dt as dt_util
import probatio
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.shackleton import async_remove_config_entry_device
from custom_components.shackleton.compat import device_by_identifier
from custom_components.shackleton.const import DOMAIN
from custom_components.shackleton.room_devices import room_identifier
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from harness.fakes import ChatReply, FakeOpenAI

from .conftest import LIGHT, Room, wait_for

NOTIFY = "notify.shackleton_127_0_0_1_kitchen_announce"
ROOM_STATE = "sensor.shackleton_127_0_0_1_kitchen_state"


async def _call(hass: HomeAssistant, action: str, **data: Any) -> Any:
    return await hass.services.async_call(DOMAIN, action, data, blocking=True, return_response=True)


async def test_ask_returns_reply_tool_calls_and_conversation(
    hass: HomeAssistant,
    kitchen_light: None,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """shackleton.ask answers a script: reply, tool calls, and an id to follow up with."""
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply("Done, the kitchen light is on."),
        ChatReply("You asked me to turn on the kitchen light."),
    ]
    answer = await _call(
        hass, "ask", text="Turn on the kitchen light", context="Dinner starts in ten minutes."
    )
    assert hass.states.get(LIGHT).state == STATE_ON
    assert answer == {
        "response": "Done, the kitchen light is on.",
        "conversation_id": answer["conversation_id"],
        "continue_conversation": False,
        "tool_calls": [
            {"tool": "intent__HassTurnOn", "arguments": {"name": "Kitchen light"}, "success": True}
        ],
    }
    # The context reached the model, as part of the system prompt only.
    system = fake_openai.chat_requests[0]["messages"][0]["content"]
    assert "Dinner starts in ten minutes." in system

    follow_up = await _call(
        hass, "ask", text="What did I ask?", conversation_id=answer["conversation_id"]
    )
    assert follow_up["conversation_id"] == answer["conversation_id"]
    assert follow_up["tool_calls"] == []
    assert fake_openai.chat_requests[2]["messages"][1]["content"] == "Turn on the kitchen light"


async def test_overlapping_asks_on_one_conversation_take_turns(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """HA refuses a second open turn on a conversation: shackleton.ask queues it instead."""
    fake_openai.chat_script = [ChatReply("Hi."), ChatReply("First."), ChatReply("Second.")]
    first = await _call(hass, "ask", text="Hello")
    conversation_id = first["conversation_id"]
    fake_openai.delay = 0.3  # each answer takes a while: the two asks overlap
    one, two = await asyncio.gather(
        _call(hass, "ask", text="One", conversation_id=conversation_id),
        _call(hass, "ask", text="Two", conversation_id=conversation_id),
    )
    assert (one["response"], two["response"]) == ("First.", "Second.")
    # The second turn came after the first, in the same conversation.
    said = [m["content"] for m in fake_openai.chat_requests[2]["messages"][1:]]
    assert said == ["Hello", "Hi.", "One", "First.", "Two"]


async def test_ask_with_a_failing_model_is_an_error_not_a_hang(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, fake_openai: FakeOpenAI
) -> None:
    """A provider answering 500 (even after the bounded retry) is a translated error."""
    fake_openai.chat_script = [ChatReply(fault="500"), ChatReply(fault="500")]
    with pytest.raises(HomeAssistantError) as err:
        await _call(hass, "ask", text="Hello?")
    assert err.value.translation_key == "ask_failed"
    assert len(fake_openai.chat_requests) == 2  # one retry, then the apology


async def test_announce_reaches_the_room_with_a_chime(
    hass: HomeAssistant, room: Room, fake_openai: FakeOpenAI
) -> None:
    """The message is synthesized and played in the room, after a chime."""
    response = await _call(hass, "announce", message="Dinner is ready.", chime=True)
    assert response == {
        "message": "Dinner is ready.",
        "rephrased": False,
        "rooms": [{"room": "kitchen", "outcome": "spoken"}],
    }
    chime = await room.reply(1)
    spoken = await room.reply(2)
    assert 0.3 < chime.duration < 0.45  # the chime's 0.35 s, from its own audio
    assert fake_openai.tts_inputs == ["Dinner is ready."]
    assert spoken.duration > 0.3
    assert spoken.started_at >= chime.started_at + chime.duration


async def test_announce_rephrased_by_the_persona(
    hass: HomeAssistant, room: Room, fake_openai: FakeOpenAI
) -> None:
    """rephrase: the model's words are spoken; when the model fails, the message is."""
    fake_openai.chat_script = [ChatReply("Food's on the table, everyone!")]
    response = await _call(hass, "announce", message="Dinner is ready.", rephrase=True)
    assert response["rephrased"] is True
    assert response["message"] == "Food's on the table, everyone!"
    await room.reply(1)
    assert fake_openai.tts_inputs == ["Food's on the table, everyone!"]
    request = fake_openai.chat_requests[0]
    assert "tools" not in request
    assert "Dinner is ready." in request["messages"][-1]["content"]

    fake_openai.chat_script = [ChatReply(fault="500"), ChatReply(fault="500")]
    response = await _call(hass, "announce", message="Bins go out tonight.", rephrase=True)
    assert response["rephrased"] is False
    assert response["message"] == "Bins go out tonight."


@pytest.mark.parametrize(
    ("policy", "outcome"), [("drop", "dropped"), ("notify", "notified"), ("queue", "queued")]
)
async def test_nobody_listening_follows_the_policy(
    hass: HomeAssistant,
    kitchen_light: None,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    outcome: str,
) -> None:
    """With nobody connected: drop with a warning, notify, or queue for the next join."""
    response = await _call(hass, "announce", message="The post came.", when_nobody_listens=policy)
    assert response["rooms"] == [{"room": None, "outcome": outcome}]
    notifications = persistent_notification._async_get_or_create_notifications(hass)
    assert any(n["message"] == "The post came." for n in notifications.values()) is (
        policy == "notify"
    )
    assert ("nobody heard the announcement" in caplog.text) is (policy == "drop")

    manager = loaded_entry.runtime_data.voice
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await manager.async_start_local_session("kitchen", audio_input=mic, audio_output=speaker)
    if policy == "queue":
        await speaker.wait_for_segment(1)
        assert fake_openai.tts_inputs == ["The post came."]
        assert manager.queued == []
    else:
        assert manager.queued == []
        assert fake_openai.tts_inputs == []
    mic.close()
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)


async def test_queued_announcements_expire_and_target_their_room(
    hass: HomeAssistant,
    kitchen_light: None,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
) -> None:
    """A queued announcement waits for its own room, and not past its time."""
    manager = loaded_entry.runtime_data.voice
    for room in ("kitchen", "hall"):
        loaded_entry.runtime_data.rooms.async_served(room)
    await _call(
        hass, "announce", message="For the hall.", rooms=["hall"], when_nobody_listens="queue"
    )
    await _call(
        hass,
        "announce",
        message="Too late.",
        rooms=["kitchen"],
        when_nobody_listens="queue",
        queue_minutes=1,
    )
    [hall_item, kitchen_item] = manager.queued
    assert (hall_item.room, kitchen_item.room) == ("hall", "kitchen")
    # Expired (it would be minutes later): dropped unheard when the kitchen opens.
    manager.announcer._queue[1] = type(kitchen_item)(**{**_fields(kitchen_item), "expires_at": 0.0})
    mic = LocalAudioInput()
    await manager.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=LocalAudioOutput()
    )
    assert [item.text for item in manager.queued] == ["For the hall."]
    assert fake_openai.tts_inputs == []
    mic.close()
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)


def _fields(item: Any) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}


async def test_start_conversation_speaks_first_then_listens(
    hass: HomeAssistant, room: Room, fake_openai: FakeOpenAI
) -> None:
    """The assistant asks; the user's answer is a turn that knows what was asked and why."""
    response = await _call(
        hass,
        "start_conversation",
        room="kitchen",
        message="The washing machine is done. Should I remind you in an hour?",
        context="The washing machine finished at 18:05.",
    )
    assert response["room"] == "kitchen"
    await room.reply(1)
    # Synthesized a sentence at a time.
    assert " ".join(fake_openai.tts_inputs) == (
        "The washing machine is done. Should I remind you in an hour?"
    )
    fake_openai.transcripts = ["Yes please."]
    fake_openai.chat_script = [ChatReply("Okay, I'll remind you at 19:05.")]
    await room.say("turn_on_kitchen_light")  # any speech: the fake transcribes the script
    await room.reply(2)
    messages = fake_openai.chat_requests[-1]["messages"]
    contents = [str(m.get("content")) for m in messages]
    assert any("finished at 18:05" in c for c in contents if c)
    asked = [m for m in messages if m["role"] == "assistant"]
    assert "Should I remind you in an hour?" in str(asked[-1]["content"])
    assert messages[-1] == {"role": "user", "content": "Yes please."}


async def test_invalid_targets_are_translated_validation_errors(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Bad room names, rooms never served and empty rooms say so in the user's language."""
    loaded_entry.runtime_data.rooms.async_served("kitchen")
    cases = [
        ("announce", {"message": "Hi", "rooms": ["living room!"]}, "invalid_room"),
        ("announce", {"message": "Hi", "rooms": ["attic"]}, "unknown_room"),
        ("start_conversation", {"room": "attic", "message": "Hi"}, "unknown_room"),
        ("start_conversation", {"room": "kitchen", "message": "Hi"}, "nobody_in_room"),
        ("announce", {"message": "Hi", "config_entry_id": "nope"}, "entry_not_found"),
    ]
    for action, data, key in cases:
        with pytest.raises(ServiceValidationError) as err:
            await _call(hass, action, **data)
        assert err.value.translation_key == key, (action, data)
        assert err.value.translation_domain == DOMAIN
    with pytest.raises(probatio.Invalid):
        await _call(hass, "announce", message="Hi", priority="urgent")
    with pytest.raises(probatio.Invalid):
        await _call(hass, "ask")  # no text at all


async def test_rooms_are_devices_with_entities_and_go_stale(
    hass: HomeAssistant,
    room: Room,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    device_registry: dr.DeviceRegistry,
    entity_registry: er.EntityRegistry,
) -> None:
    """A served room is a device with a state sensor, figures and an announcer.

    Unused for 30 days it is removed; a user can delete it only while nobody is in it.
    """
    device = device_by_identifier(
        device_registry, room_identifier(loaded_entry.entry_id, "kitchen"), loaded_entry.entry_id
    )
    assert device is not None
    assert hass.states.get(ROOM_STATE).state == "listening"
    await hass.services.async_call(
        "notify", "send_message", {"entity_id": NOTIFY, "message": "Tea's ready"}, blocking=True
    )
    await room.reply(1)
    assert fake_openai.tts_inputs == ["Tea's ready"]
    assert not await async_remove_config_entry_device(hass, loaded_entry, device)

    await loaded_entry.runtime_data.voice.async_leave_room("kitchen")
    assert hass.states.get(ROOM_STATE).state == "offline"
    # Last served 31 days ago (the store's record): the daily clean-up removes it.
    rooms = loaded_entry.runtime_data.rooms
    rooms.last_served["kitchen"] -= timedelta(days=31)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(days=1, seconds=1))
    await hass.async_block_till_done()
    assert device_registry.async_get(device.id) is None
    assert entity_registry.async_get(NOTIFY) is None
    await wait_for(lambda: hass.states.get(NOTIFY) is None)


async def test_rooms_survive_a_reload_and_go_with_the_entry(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_storage: dict[str, Any],
    device_registry: dr.DeviceRegistry,
) -> None:
    """Known rooms are stored; removing the entry removes them, devices included."""
    loaded_entry.runtime_data.rooms.async_served("hall")
    assert await hass.config_entries.async_reload(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert loaded_entry.runtime_data.rooms.rooms == ["hall"]
    assert hass.states.get("notify.shackleton_127_0_0_1_hall_announce") is not None
    key = f"{DOMAIN}.{loaded_entry.entry_id}.rooms"
    assert "hall" in hass_storage[key]["data"]

    # The user may delete an empty room's device, never the assistant's own.
    service = device_by_identifier(
        device_registry, (DOMAIN, loaded_entry.entry_id), loaded_entry.entry_id
    )
    hall = device_by_identifier(
        device_registry, room_identifier(loaded_entry.entry_id, "hall"), loaded_entry.entry_id
    )
    assert service is not None
    assert hall is not None
    assert not await async_remove_config_entry_device(hass, loaded_entry, service)
    assert await async_remove_config_entry_device(hass, loaded_entry, hall)
    assert loaded_entry.runtime_data.rooms.rooms == []

    assert await hass.config_entries.async_remove(loaded_entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage
    assert dr.async_entries_for_config_entry(device_registry, loaded_entry.entry_id) == []
