"""Rooms as Assist satellites: HA's announce, start_conversation and ask_question.

Each action runs from a script (the README's examples) in a real hass, against a room
session on local audio with real silero VAD: the room's session speaks (the fake
OpenAI TTS) and hears (espeak-ng speech, transcribed as the fake STT's script). No
Home Assistant text-to-speech engine is set up at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
import json
from pathlib import Path
import time
from typing import Any

from homeassistant.components import persistent_notification, tts
from homeassistant.components.assist_satellite import SatelliteBusyError
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import intent
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton import assist_satellite as satellite_platform
from custom_components.shackleton.const import (
    CONF_ANNOUNCE_NOBODY,
    DEFAULT_OPTIONS,
    DOMAIN,
    NOBODY_NOTIFY,
    NOBODY_QUEUE,
)
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from harness.fakes import ChatReply, FakeLiveKit, FakeOpenAI

from . import test_worker_process
from .conftest import AUDIO, Room, entry_data, wait_for
from .readme_examples import async_run_example, readme_example
from .test_worker_process import Home, start_local_worker

SATELLITE = "assist_satellite.shackleton_kitchen"
RESPONSE_FILE = Path(__file__).parents[1] / ".scratch" / "ask_question_response.json"
CHIME_SECONDS = (0.3, 0.45)  # the chime's 0.35 s, measured on its own audio segment


@dataclass
class Kitchen(Room):
    """The kitchen of an entry titled "Shackleton", with the entry."""

    entry: MockConfigEntry


type OpenKitchen = Callable[..., Awaitable[Kitchen]]
# Home Assistant in a process of its own, for the external worker (the worker tests').
home = test_worker_process.home


@pytest.fixture
async def open_kitchen(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> AsyncIterator[OpenKitchen]:
    """Return a function that sets up the entry (with options) and opens its kitchen."""
    opened: list[Kitchen] = []

    async def open_(**options: Any) -> Kitchen:
        entry = MockConfigEntry(
            domain=DOMAIN,
            title="Shackleton",
            data=entry_data(fake_livekit, fake_openai),
            options={**DEFAULT_OPTIONS, "language": "en", **options},
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done(wait_background_tasks=True)
        mic, speaker = LocalAudioInput(), LocalAudioOutput()
        session = await entry.runtime_data.voice.async_start_local_session(
            "kitchen", audio_input=mic, audio_output=speaker
        )
        await hass.async_block_till_done()
        kitchen = Kitchen(mic, speaker, session, entry)
        opened.append(kitchen)
        return kitchen

    yield open_
    for kitchen in opened:
        kitchen.mic.close()
        if kitchen.entry.state is ConfigEntryState.LOADED:
            assert await hass.config_entries.async_unload(kitchen.entry.entry_id)
    await hass.async_block_till_done()


async def _leave(hass: HomeAssistant, kitchen: Kitchen) -> None:
    """Take the assistant out of the kitchen: its satellite stays, with nobody to hear."""
    assert await kitchen.entry.runtime_data.voice.async_leave_room("kitchen")
    await hass.async_block_till_done()


def test_the_examples_name_the_kitchen_satellite() -> None:
    """The examples name the satellite these tests make, and ask with a slot."""
    ask = readme_example("satellite-ask-question")
    assert ask[0]["data"]["entity_id"] == SATELLITE
    assert {"id": "pizza", "sentences": ["pizza with {topping}", "yes a pizza with {topping}"]} in (
        ask[0]["data"]["answers"]
    )


async def test_announce_speaks_in_the_room_after_the_chime(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """The README's announce: the chime, then the message, spoken once by the room's TTS."""
    kitchen = await open_kitchen()
    # Home Assistant has no text-to-speech engine: its own satellites could not announce.
    assert tts.async_default_engine(hass) is None
    assert hass.states.get(SATELLITE).state == "listening"  # someone is in the room
    await async_run_example(hass, "satellite-announce")
    chime = await kitchen.reply(1)
    spoken = await kitchen.reply(2)
    assert CHIME_SECONDS[0] < chime.duration < CHIME_SECONDS[1]
    assert spoken.started_at >= chime.started_at + chime.duration
    assert spoken.duration > 0.3
    assert fake_openai.tts_inputs == ["Dinner is ready."]  # synthesised once, by the room
    assert fake_openai.chat_requests == []  # said as written, no model involved


async def test_satellite_state_follows_the_room(
    hass: HomeAssistant, open_kitchen: OpenKitchen
) -> None:
    """The state: listening with someone there, responding while it speaks, idle once left."""
    kitchen = await open_kitchen()
    states: list[str] = []
    hass.bus.async_listen(
        "state_changed",
        lambda event: states.append(event.data["new_state"].state)
        if event.data["entity_id"] == SATELLITE
        else None,
    )
    await hass.services.async_call(
        "assist_satellite",
        "announce",
        {"entity_id": SATELLITE, "message": "Hello.", "preannounce": False},
        blocking=True,
    )
    await kitchen.reply(1)
    await wait_for(lambda: hass.states.get(SATELLITE).state == "listening")
    assert "responding" in states
    await _leave(hass, kitchen)
    assert hass.states.get(SATELLITE).state == "idle"


async def test_start_conversation_speaks_then_the_agent_answers(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """The README's start_conversation: said after the chime; the next utterance is a turn."""
    kitchen = await open_kitchen()
    example = readme_example("satellite-start-conversation")[0]["data"]
    await async_run_example(hass, "satellite-start-conversation")
    await kitchen.reply(1)  # the chime
    await kitchen.reply(2)
    assert fake_openai.tts_inputs == [example["start_message"]]
    fake_openai.transcripts = ["Yes please."]
    fake_openai.chat_script = [ChatReply("I will remind you in an hour.")]
    await kitchen.say("turn_on_kitchen_light")  # any speech: the fake STT says "Yes please."
    await kitchen.reply(3)
    assert fake_openai.tts_inputs[-1] == "I will remind you in an hour."
    # The model saw why it asked, what it said, and the answer.
    messages = fake_openai.chat_requests[-1]["messages"]
    contents = [str(message.get("content")) for message in messages]
    assert f"Why you are asking: {example['extra_system_prompt']}" in contents
    assert example["start_message"] in contents
    assert contents[-1] == "Yes please."


async def test_ask_question_returns_the_matched_spoken_answer(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """The README's ask_question: the spoken answer matches with its slot; no model reply."""
    kitchen = await open_kitchen()
    fake_openai.transcripts = ["Pizza with mushrooms."]
    asking = asyncio.ensure_future(async_run_example(hass, "satellite-ask-question"))
    await kitchen.reply(1)  # the chime
    question = await kitchen.reply(2)
    assert fake_openai.tts_inputs == ["Shall I order a pizza?"]
    await wait_for(lambda: hass.states.get(SATELLITE).state == "listening")
    spoken_end = await kitchen.say("turn_on_kitchen_light")
    response = await asyncio.wait_for(asking, 20)
    assert response == {
        "id": "pizza",
        "sentence": "Pizza with mushrooms.",
        "slots": {"topping": "mushrooms"},
    }
    assert question.started_at < spoken_end
    RESPONSE_FILE.parent.mkdir(exist_ok=True)
    RESPONSE_FILE.write_text(json.dumps(response, indent=2) + "\n")
    # The script used the slot; the answer itself went to the script only.
    await kitchen.reply(3)
    assert fake_openai.tts_inputs == ["Shall I order a pizza?", "Ordering a pizza with mushrooms."]
    await asyncio.sleep(1.0)  # time the model would have taken to reply
    assert fake_openai.chat_requests == []
    assert len(fake_openai.tts_inputs) == 2


async def test_after_the_answer_the_room_talks_to_the_agent_again(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """Only the answer is the home's: the next utterance is an ordinary turn."""
    kitchen = await open_kitchen()
    fake_openai.transcripts = ["Not now.", "What time is it?"]
    fake_openai.chat_script = [ChatReply("It is noon.")]
    asking = asyncio.ensure_future(
        hass.services.async_call(
            "assist_satellite",
            "ask_question",
            {
                "entity_id": SATELLITE,
                "question": "Pizza?",
                "preannounce": False,
                "answers": readme_example("satellite-ask-question")[0]["data"]["answers"],
            },
            blocking=True,
            return_response=True,
        )
    )
    await kitchen.reply(1)
    await kitchen.say("stop")
    assert await asyncio.wait_for(asking, 20) == {
        "id": "later",
        "sentence": "Not now.",
        "slots": {},
    }
    await kitchen.say("whats_the_time")
    await kitchen.reply(2)
    assert fake_openai.tts_inputs == ["Pizza?", "It is noon."]
    assert len(fake_openai.chat_requests) == 1


async def test_ask_question_without_an_answer_ends_with_has_no_answer(
    hass: HomeAssistant,
    open_kitchen: OpenKitchen,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody answers within the bound (here 1 s): Home Assistant's own no_answer error."""
    monkeypatch.setattr(satellite_platform, "ANSWER_SECONDS", 1.0)
    kitchen = await open_kitchen()
    asking = asyncio.ensure_future(
        hass.services.async_call(
            "assist_satellite",
            "ask_question",
            {"entity_id": SATELLITE, "question": "Anyone there?", "preannounce": False},
            blocking=True,
            return_response=True,
        )
    )
    question = await kitchen.reply(1)
    with pytest.raises(HomeAssistantError, match="No answer") as err:
        await asyncio.wait_for(asking, 10)
    assert question.finished_at is not None
    waited = time.monotonic() - question.finished_at
    if err.value.translation_key is not None:  # translated from 2026.11 on
        assert (err.value.translation_domain, err.value.translation_key) == (
            "assist_satellite",
            "no_answer",
        )
    assert 0.9 < waited < 4.0  # the 1 s bound, counted from the end of the question
    assert fake_openai.chat_requests == []


async def test_one_question_at_a_time(
    hass: HomeAssistant,
    open_kitchen: OpenKitchen,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second question while the room owes an answer: HA's busy error, translated."""
    monkeypatch.setattr(satellite_platform, "ANSWER_SECONDS", 2.0)
    await open_kitchen()

    def ask(question: str) -> asyncio.Future[Any]:
        return asyncio.ensure_future(
            hass.services.async_call(
                "assist_satellite",
                "ask_question",
                {"entity_id": SATELLITE, "question": question, "preannounce": False},
                blocking=True,
                return_response=True,
            )
        )

    first = ask("Pizza?")
    await wait_for(lambda: fake_openai.tts_inputs == ["Pizza?"])
    with pytest.raises(SatelliteBusyError) as err:
        await ask("Pasta?")
    assert err.value.translation_key == "satellite_busy"
    with pytest.raises(HomeAssistantError, match="No answer"):
        await asyncio.wait_for(first, 10)
    assert fake_openai.tts_inputs == ["Pizza?"]


async def test_nobody_in_the_room(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """ask_question fails at once; announce and start_conversation follow the option."""
    kitchen = await open_kitchen(**{CONF_ANNOUNCE_NOBODY: NOBODY_QUEUE})
    await _leave(hass, kitchen)
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            "assist_satellite",
            "ask_question",
            {"entity_id": SATELLITE, "question": "Pizza?"},
            blocking=True,
            return_response=True,
        )
    assert time.monotonic() - started < 3.0  # at once, not after the 60 s for the question
    assert err.value.translation_key == "satellite_nobody_listening"
    # Home Assistant drops the final full stop of a translated error.
    assert (
        str(err.value) == "Nobody is connected in kitchen, so nobody can answer the question there"
    )
    await async_run_example(hass, "satellite-announce")
    await async_run_example(hass, "satellite-start-conversation")
    queued = kitchen.entry.runtime_data.voice.queued
    assert [(item.room, item.text, item.chime) for item in queued] == [
        ("kitchen", "Dinner is ready.", True),
        (
            "kitchen",
            readme_example("satellite-start-conversation")[0]["data"]["start_message"],
            True,
        ),
    ]
    assert fake_openai.tts_inputs == []
    # Someone comes back: what waited is said, chime first.
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await kitchen.entry.runtime_data.voice.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    chime = await asyncio.wait_for(speaker.wait_for_segment(1), 20)
    assert CHIME_SECONDS[0] < chime.duration < CHIME_SECONDS[1]
    await wait_for(lambda: len(fake_openai.tts_inputs) == 2, 20)
    assert fake_openai.tts_inputs[0] == "Dinner is ready."
    mic.close()


async def test_nobody_in_the_room_notifies(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """With the notify option, an announcement nobody hears becomes a notification.

    HA's broadcast intent then reaches every empty room: still one notification.
    """
    kitchen = await open_kitchen(**{CONF_ANNOUNCE_NOBODY: NOBODY_NOTIFY})
    await _leave(hass, kitchen)
    await async_run_example(hass, "satellite-announce")
    notifications = persistent_notification._async_get_or_create_notifications(hass)
    assert [n["message"] for n in notifications.values()] == ["Dinner is ready."]
    assert fake_openai.tts_inputs == []

    kitchen.entry.runtime_data.rooms.async_served("den")
    await hass.async_block_till_done()
    response = await intent.async_handle(
        hass, "test", intent.INTENT_BROADCAST, {"message": {"value": "Dinner is ready."}}
    )
    await hass.async_block_till_done()
    reached = {target.id for target in response.success_results}
    assert reached == {SATELLITE, "assist_satellite.shackleton_den"}
    assert [n["message"] for n in notifications.values()] == ["Dinner is ready."]


async def test_media_is_refused(hass: HomeAssistant, open_kitchen: OpenKitchen) -> None:
    """A room speaks text: a media ID gets a translated error, and nothing is said."""
    kitchen = await open_kitchen()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "assist_satellite",
            "announce",
            {"entity_id": SATELLITE, "media_id": "media-source://tts/demo?message=Hi"},
            blocking=True,
        )
    assert err.value.translation_key == "satellite_text_only"
    assert kitchen.speaker.segments == []


async def test_unloaded_entry(
    hass: HomeAssistant, open_kitchen: OpenKitchen, fake_openai: FakeOpenAI
) -> None:
    """Unloaded: the satellite is unavailable; HA refuses ask_question and skips announce."""
    kitchen = await open_kitchen()
    assert await hass.config_entries.async_unload(kitchen.entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(SATELLITE).state == STATE_UNAVAILABLE
    # HA's own refusal: a ServiceValidationError from 2026.11, plain before.
    with pytest.raises(HomeAssistantError, match="(?i)invalid assist satellite entity"):
        await hass.services.async_call(
            "assist_satellite",
            "ask_question",
            {"entity_id": SATELLITE, "question": "Pizza?"},
            blocking=True,
            return_response=True,
        )
    await async_run_example(hass, "satellite-announce")
    assert fake_openai.tts_inputs == []


async def test_an_external_worker_asks_too(home: Home, fake_openai: FakeOpenAI) -> None:
    """The question and its answer travel over the worker protocol (`ask`, then `ack`)."""
    fake_openai.transcripts = ["Pizza with ham."]
    fake_openai.tts_seconds_per_char = 0.01
    facts = await home.start()
    admin = facts["users"]["admin"]["token"]
    # Returned once the satellite listens: the worker's session is the room's.
    worker = await start_local_worker(home, admin, facts["entry_id"])
    try:
        asking = asyncio.ensure_future(
            home.call(
                admin,
                "POST",
                "/api/services/assist_satellite/ask_question?return_response",
                {
                    "entity_id": SATELLITE,
                    "question": "Shall I order a pizza?",
                    "preannounce": False,
                    "answers": readme_example("satellite-ask-question")[0]["data"]["answers"],
                },
            )
        )
        await worker.event("spoke")
        await worker.send({"play": str(AUDIO / "turn_on_kitchen_light.wav")})
        answer = await asyncio.wait_for(asking, 30)
        assert answer["service_response"] == {
            "id": "pizza",
            "sentence": "Pizza with ham.",
            "slots": {"topping": "ham"},
        }
        assert fake_openai.tts_inputs == ["Shall I order a pizza?"]
        assert fake_openai.chat_requests == []  # the answer went to Home Assistant only
    finally:
        await worker.send({"quit": True})
        code = await worker.stop()
    assert code == 0, "".join(worker.stderr[-40:])
