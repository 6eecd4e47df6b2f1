"""Fully local voice in a real hass: piper speaks, silero + faster-whisper listen, Assist acts.

No model server and no fake: the utterances are synthesized by piper (deterministic),
played into the session's microphone, transcribed by tiny.en, handled by HA's own
Assist agent, and answered by piper. Slow: it loads the real models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.shackleton.const import DEFAULT_OPTIONS, DOMAIN, EVENT_TURN
from custom_components.shackleton.voice.engine import RoomSession
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from custom_components.shackleton.voice.local_models import PiperTTS, to_whisper_audio
from demo.__main__ import ENTRY_DATA

from .conftest import add_template, switched, wait_for

pytestmark = pytest.mark.slow

LIGHT = "light.kitchen_light"
SHOPPING = "todo.shopping_list"
# What the test itself synthesizes: piper's bundled voice, noise scales at zero.
VOICE = PiperTTS()


@pytest.fixture
async def home(hass: HomeAssistant, tmp_path: Path) -> None:
    """Set up a template kitchen light and a local shopping list, exposed to Assist."""
    hass.config.config_dir = str(tmp_path)
    (tmp_path / ".storage").mkdir()
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"kitchen_power": {}}}
    )
    await add_template(hass, "light", "Kitchen light", **switched("kitchen_power"))
    todo = MockConfigEntry(
        domain="local_todo", data={"todo_list_name": "Shopping list", "storage_key": "shopping"}
    )
    todo.add_to_hass(hass)
    assert await hass.config_entries.async_setup(todo.entry_id)
    await hass.async_block_till_done()
    async_expose_entity(hass, "conversation", SHOPPING, True)


class LocalRoom:
    """A kitchen served by the local pipeline, with a microphone the test speaks into."""

    def __init__(
        self,
        session: RoomSession,
        mic: LocalAudioInput,
        speaker: LocalAudioOutput,
        turns: list[Event[dict[str, Any]]],
    ) -> None:
        """Keep the session's audio ends and its turn events."""
        self.session, self.mic, self.speaker, self.turns = session, mic, speaker, turns

    async def say(self, text: str) -> dict[str, Any]:
        """Speak `text` with piper into the microphone; return the turn it made.

        A turn ends when its answer is in the chat (after the tools ran): waiting for
        it, not for a count of audio segments, keeps one turn's audio from being taken
        for the next one's (LiveKit can pause and resume a reply in two segments).
        """
        pcm, rate = await asyncio.get_running_loop().run_in_executor(
            None, VOICE.synthesize_pcm, text
        )
        before = len(self.turns)
        await self.mic.play_pcm(pcm, rate)
        await wait_for(lambda: len(self.turns) > before, 30)
        turn = self.turns[before].data
        assert len(self.turns) == before + 1, [event.data["user_text"] for event in self.turns]
        assert turn["user_text"] == text, turn  # tiny.en heard piper's words exactly
        assert turn["error"] is None, turn
        return turn


@pytest.fixture
async def kitchen(hass: HomeAssistant, home: None) -> AsyncIterator[LocalRoom]:
    """Set up Shackleton on local models and open a kitchen session on local audio."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (local)",
        data=ENTRY_DATA,  # the demo's: fully local, no LiveKit server
        options={**DEFAULT_OPTIONS, "language": "en", "transcripts_in_events": True},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    manager = entry.runtime_data.voice
    assert manager is not None
    session = await manager.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    yield LocalRoom(session, mic, speaker, async_capture_events(hass, EVENT_TURN))
    mic.close()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def test_whisper_audio_is_16k_with_a_lead_in() -> None:
    """Whisper gets 16 kHz floats with silence around the words (it clips a bare start)."""
    pcm = (np.ones(22050) * 16384).astype(np.int16)  # one second at 22.05 kHz
    audio = to_whisper_audio(pcm, 22050)
    assert audio.dtype == np.float32
    assert len(audio) == 16000 + 2 * 4800
    assert audio[:4800].max() == 0.0
    assert abs(float(audio[8000]) - 0.5) < 1e-3


async def test_spoken_requests_run_through_assist_offline(
    hass: HomeAssistant, kitchen: LocalRoom
) -> None:
    """Lights, a shopping-list item and a timer by voice, with no network at all."""
    turn = await kitchen.say("Turn on the kitchen light.")
    assert turn["tools"] == ["HassTurnOn"]
    assert turn["agent_text"] == "Turned on the light"
    assert hass.states.get(LIGHT).state == STATE_ON
    turn = await kitchen.say("Turn off the kitchen light.")
    assert turn["tools"] == ["HassTurnOff"]
    assert hass.states.get(LIGHT).state == STATE_OFF

    turn = await kitchen.say("Put eggs on my shopping list.")
    assert turn["tools"] == ["HassListAddItem"]
    items = await hass.services.async_call(
        "todo", "get_items", {"entity_id": SHOPPING}, blocking=True, return_response=True
    )
    assert [item["summary"].lower() for item in items[SHOPPING]["items"]] == ["eggs"]

    turn = await kitchen.say("Set a timer for one minute.")
    assert turn["tools"] == ["HassStartTimer"]
    spoken = len(kitchen.speaker.segments)
    await wait_for(lambda: kitchen.speaker.segments[-1].finished_at is not None, 10)
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=61))
    await hass.async_block_till_done()
    done = await asyncio.wait_for(kitchen.speaker.wait_for_segment(spoken + 1), 30)
    assert done.duration > 0.5  # "The timer is done.", said by piper in the kitchen
