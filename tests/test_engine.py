"""The voice engine outside Home Assistant: instructions, settings errors, start-up faults."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from livekit.plugins import silero
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.models import ShackletonRuntime
from custom_components.shackleton.voice.engine import VoiceEngine, build_instructions
from custom_components.shackleton.voice.home import HomeContext, RoomTools, TurnReport, Usage
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from custom_components.shackleton.voice.providers import build_models
from custom_components.shackleton.voice.settings import ProviderSettings, VoiceSettings
from harness.fakes import FakeOpenAI


@dataclass
class RecordingHome:
    """A home that records reports; `tools_fail` makes it unreachable at start."""

    tools_fail: bool = False
    turns: list[TurnReport] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)

    def context(self, room: str) -> HomeContext:
        """Return a context with a known user."""
        return HomeContext(
            "Cottage", "en", "Europe/London", datetime(2026, 1, 2, 9, 30, tzinfo=UTC), "Ada"
        )

    async def room_tools(self, room: str) -> RoomTools:
        """Return no tools (so no guide), or fail like an unreachable home."""
        if self.tools_fail:
            raise ConnectionError("home unreachable")
        return RoomTools([], "")

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Never called here."""
        raise AssertionError(name)

    def report_state(self, room: str, state: str) -> None:
        """Ignore states."""

    def report_turn(self, report: TurnReport) -> None:
        """Keep turns."""
        self.turns.append(report)

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Ignore errors."""

    def report_usage(self, usage: Usage) -> None:
        """Keep what the providers did."""
        self.usage.append(usage)


def _settings(fake: FakeOpenAI, **changes: Any) -> VoiceSettings:
    provider = {"kind": "openai", "base_url": fake.base_url, "api_key": "sk-test"}
    values: dict[str, Any] = {
        "mode": "pipeline",
        "stt": ProviderSettings(model="gpt-4o-mini-transcribe", **provider),
        "llm": ProviderSettings(model="gpt-4.1-mini", **provider),
        "tts": ProviderSettings(model="gpt-4o-mini-tts", **provider),
        "instructions": "Be kind.",
    }
    return VoiceSettings(**(values | changes))


async def test_instructions_carry_the_home(fake_openai: FakeOpenAI) -> None:
    """The persona gets the honesty rule, the home, the time, the language and the user."""
    text = build_instructions(
        _settings(fake_openai), RecordingHome().context("x"), "  Use the tools kindly.\n"
    )
    assert text.startswith("Be kind.")
    assert text.endswith("\nUse the tools kindly.")
    assert "tool call did it" in text
    assert "Home: Cottage. Time zone: Europe/London. Now: Friday 02 January 2026, 09:30." in text
    assert "You are talking with Ada." in text


async def test_settings_missing_a_stage_are_refused(fake_openai: FakeOpenAI) -> None:
    """Inconsistent settings fail loudly instead of building half an engine."""
    with pytest.raises(ValueError, match="realtime"):
        build_models(_settings(fake_openai, mode="realtime"))
    with pytest.raises(ValueError, match="STT and TTS"):
        build_models(_settings(fake_openai, tts=None))


async def test_engine_start_up_paths(fake_openai: FakeOpenAI) -> None:
    """Without a shared client the models are built off the loop; start-up faults clean up."""
    vad = silero.VAD.load()
    home = RecordingHome()
    engine = await VoiceEngine.async_create(home, _settings(fake_openai), vad=vad)
    assert engine.models.owned_clients  # built here, so closed here
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    first = await engine.async_start_session("den", audio_input=mic, audio_output=speaker)
    assert await engine.async_start_session("den") is first

    home.tools_fail = True
    with pytest.raises(ConnectionError):
        await engine.async_start_session(
            "attic", audio_input=LocalAudioInput(), audio_output=LocalAudioOutput()
        )
    assert "attic" not in engine.sessions
    mic.close()
    await engine.aclose()
    assert not engine.sessions
    assert all(client.is_closed() for client in engine.models.owned_clients)


def test_turn_figures_with_one_turn() -> None:
    """One turn gives a median; none gives only counts; failures are counted."""
    runtime = ShackletonRuntime(livekit_configured=False)
    assert runtime.turn_figures() == {"turns": 0, "failed_turns": 0}
    runtime.async_record_turn(0.8, failed=False)
    runtime.async_record_turn(None, failed=True)
    assert runtime.turn_figures() == {"turns": 2, "failed_turns": 1, "e2e_p50_ms": 800}


async def test_engine_stops_with_home_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """Home Assistant stopping ends the engine even if the entry is never unloaded."""
    manager = loaded_entry.runtime_data.voice
    assert manager.engine is not None
    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()
    assert manager.engine is None
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)


async def test_a_failed_turn_keeps_its_apology(fake_openai: FakeOpenAI) -> None:
    """A turn that failed is answered by the apology: its watchdog no longer waits.

    A stalled model fails after its read timeouts (2 x 2.5 s), close to the turn's 6 s
    deadline; the watchdog, still armed, then fired, cut off the apology just begun,
    and the room said nothing.
    """
    home = RecordingHome()
    engine = await VoiceEngine.async_create(home, _settings(fake_openai), vad=silero.VAD.load())
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    try:
        session = await engine.async_start_session("den", audio_input=mic, audio_output=speaker)
        session.recovery.watchdog.arm()  # the agent is thinking
        session._turn_failed("tts_error")
        assert not session.recovery.watchdog.armed
        apology = await asyncio.wait_for(speaker.wait_for_segment(), 15)
    finally:
        mic.close()
        await asyncio.wait_for(engine.aclose(), 10)
    # The bundled apology (3-4 s), heard to its end.
    assert 3.0 < apology.duration < 4.0
