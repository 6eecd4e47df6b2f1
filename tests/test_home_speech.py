"""Home Assistant's own speech engines and Assist as the whole pipeline.

HA's demo integration brings a real speech-to-text entity, a real (legacy) text-to-
speech engine that answers with an MP3, and the demo lights: Shackleton listens,
thinks and speaks with nothing of its own but the VAD.
"""

from __future__ import annotations

import asyncio

from homeassistant.const import STATE_ON, Platform
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from livekit import rtc
from livekit.agents import APIError
import numpy as np
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.shackleton.const import DOMAIN, EVENT_TURN
from custom_components.shackleton.home_bridge import HassHome, _pick_language
from custom_components.shackleton.voice.home import ToolCallError
from custom_components.shackleton.voice.home_speech import HomeSTT, HomeTTS, mono_pcm16
from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    read_wav,
)

from .conftest import AUDIO, wait_for

DEMO_LIGHT = "light.kitchen_lights"
HOME_ENGINES = {
    "voice_mode": "pipeline",
    "stt_provider": "home_assistant",
    "stt_model": "stt.demo_stt",
    "llm_provider": "home_assistant",
    "llm_model": "conversation.home_assistant",
    "tts_provider": "home_assistant",
    "tts_model": "demo",
}


@pytest.fixture
async def demo(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set up HA's demo integration: STT entity, TTS engine, lights."""
    # Only the platforms these tests use: the demo's others need packages of their own
    # (its camera: PyTurboJPEG), which the tests do not install.
    monkeypatch.setattr(
        "homeassistant.components.demo.COMPONENTS_WITH_CONFIG_ENTRY_DEMO_PLATFORM",
        [Platform.LIGHT, Platform.STT],
    )
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "tts", {"tts": {"platform": "demo"}})
    assert await async_setup_component(hass, "demo", {})
    await hass.async_block_till_done()
    assert hass.states.get(DEMO_LIGHT) is not None


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("expected_lingering_timers", [True])  # the demo's own
async def test_the_homes_engines_listen_and_speak(hass: HomeAssistant) -> None:
    """Speech → the demo STT entity → Assist → demo light on → the demo TTS's MP3, played."""
    turns = async_capture_events(hass, EVENT_TURN)
    await hass.services.async_call("light", "turn_off", {"entity_id": DEMO_LIGHT}, blocking=True)
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=HOME_ENGINES)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await entry.runtime_data.voice.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    pcm, rate = read_wav(AUDIO / "turn_on_kitchen_light.wav")
    await mic.play_pcm(pcm, rate)
    reply = await asyncio.wait_for(speaker.wait_for_segment(1), 30)
    await wait_for(lambda: turns)
    # The demo STT hears "Turn the Kitchen Lights on", whatever is said.
    assert hass.states.get(DEMO_LIGHT).state == STATE_ON
    assert turns[0].data["tools"] == ["HassTurnOn"]  # the intent Assist matched
    assert turns[0].data["error"] is None
    # The demo TTS's MP3, decoded by LiveKit and played at the session's rate.
    assert reply.duration > 0.5
    assert np.abs(np.frombuffer(bytes(reply.pcm), dtype=np.int16)).max() > 1000
    mic.close()
    assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_missing_engines_are_errors_the_session_survives(hass: HomeAssistant) -> None:
    """An engine that is not there is a provider error (an apology), not a crash."""
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=HOME_ENGINES)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    home = HassHome(hass, entry)
    with pytest.raises(ToolCallError, match="no speech-to-text engine stt.gone"):
        await home.transcribe("stt.gone", b"\0\0" * 1600, 16000, "en")
    with pytest.raises(ToolCallError, match="no text-to-speech engine tts.gone"):
        await home.synthesize("tts.gone", "Hello.", "en")
    frame = rtc.AudioFrame(bytes(6400), 16000, 1, 3200)
    with pytest.raises(APIError):
        await HomeSTT(home, "stt.gone").recognize([frame])
    with pytest.raises(APIError):
        async with HomeTTS(home, "tts.gone").synthesize("Hello.") as stream:
            [event async for event in stream]
    extension, data = await home.synthesize("demo", "Hello.", "en-GB")
    assert (extension, len(data) > 1000) == ("mp3", True)
    assert await home.transcribe("stt.demo_stt", b"\0\0" * 1600, 16000, "en-GB")
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_audio_for_home_engines_is_16k_mono() -> None:
    """Stereo 48 kHz becomes mono 16 kHz, as every HA speech-to-text engine takes."""
    tone = (np.sin(np.arange(4800) / 10) * 10000).astype(np.int16)
    stereo = np.repeat(tone, 2)
    frame = rtc.AudioFrame(stereo.tobytes(), 48000, 2, 4800)
    mono = np.frombuffer(mono_pcm16(frame, 16000), dtype=np.int16)
    assert len(mono) == 1600
    assert abs(int(mono[100]) - int(tone[300])) < 200


def test_language_matching() -> None:
    """en-GB asks an engine with only en for en; en asks an en-US engine for en-US."""
    assert _pick_language("en-GB", ["en", "de"]) == "en"
    assert _pick_language("en", ["en-US", "de-DE"]) == "en-US"
    assert _pick_language("fr", ["en"]) == "fr"
    assert _pick_language("de", None) == "de"
