"""The engine in realtime mode, end to end against a fake OpenAI realtime WebSocket.

Speech goes in through the local microphone, LiveKit's OpenAI realtime plugin streams
it to `FakeRealtime` on 127.0.0.1, whose server VAD ends the turn; the fake calls the
home's tool, takes its result, and answers with audio the local speaker records.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from livekit.plugins import silero
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import TypeAdapter
import pytest

from custom_components.shackleton.voice.engine import VoiceEngine
from custom_components.shackleton.voice.home import RoomTools, ToolSpec
from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    Segment,
    read_wav,
)
from custom_components.shackleton.voice.settings import Limits, ProviderSettings, VoiceSettings
from harness.fakes import FakeRealtime, RealtimeTurn, closed_port_url, pcm_tone, start_app

from .conftest import wait_for
from .test_engine import RecordingHome

AUDIO = Path(__file__).parent / "fixtures" / "audio"
TURN_ON = ToolSpec(
    "intent__HassTurnOn",
    "Turn on a device by name.",
    {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
)


@dataclass
class ToolHome(RecordingHome):
    """A home with one tool that records its calls, its errors and its states."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[str, str, bool]] = field(default_factory=list)
    gave_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def room_tools(self, room: str) -> RoomTools:
        """Offer the one tool, and say nothing more about it."""
        return RoomTools([TURN_ON], "")

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Record the call and succeed."""
        self.calls.append((room, name, arguments))
        return {"success": True, "entity_id": "light.kitchen_light"}

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Keep errors; note the first one the engine cannot recover from."""
        self.errors.append((source, message, recoverable))
        if not recoverable:
            self.gave_up.set()


@pytest.fixture
async def fake_realtime(socket_enabled: None) -> AsyncIterator[FakeRealtime]:
    """Serve a fake OpenAI realtime API on 127.0.0.1."""
    server = FakeRealtime()
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


def _settings(base_url: str, api_key: str = "sk-test") -> VoiceSettings:
    provider = ProviderSettings(
        kind="openai", model="gpt-realtime", base_url=base_url, api_key=api_key
    )
    return VoiceSettings(mode="realtime", llm=provider, realtime=provider, instructions="Be kind.")


async def test_realtime_turn_calls_the_home_and_speaks(fake_realtime: FakeRealtime) -> None:
    """Speech → server VAD → tool call → result sent back → spoken reply → turn report."""
    fake_realtime.transcripts = ["Turn on the kitchen light."]
    fake_realtime.turns = [
        RealtimeTurn(
            "The kitchen light is on.", tool_call=("intent__HassTurnOn", {"name": "Kitchen"})
        )
    ]
    home = ToolHome()
    engine = await VoiceEngine.async_create(
        home, _settings(fake_realtime.base_url), vad=silero.VAD.load()
    )
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    try:
        await engine.async_start_session("kitchen", audio_input=mic, audio_output=speaker)
        pcm, rate = read_wav(AUDIO / "turn_on_kitchen_light.wav")
        spoken_end = await mic.play_pcm(pcm, rate)
        reply = await asyncio.wait_for(speaker.wait_for_segment(), 10)
        await wait_for(lambda: home.turns, 5)
        # New turn-taking options reach the running session's model.
        engine.update_turn_taking(replace(engine.settings.turn_taking, min_endpointing_delay=0.8))
        await wait_for(
            lambda: fake_realtime.session["audio"]["input"]["turn_detection"]["silence_duration_ms"]
            == 800,
            5,
        )
    finally:
        mic.close()
        await asyncio.wait_for(engine.aclose(), 10)

    _check_session(fake_realtime)
    _check_tool_round_trip(fake_realtime, home)
    # The reply's audio played in full, after the user stopped speaking.
    assert len(speaker.segments) == 1
    assert bytes(reply.pcm) == pcm_tone(fake_realtime.reply_seconds)
    assert reply.duration == pytest.approx(fake_realtime.reply_seconds)
    assert not reply.interrupted
    assert reply.started_at > spoken_end
    _check_report(home, reply, spoken_end)
    # Both sides spoke the protocol as openai 2.x types it.
    server_events = TypeAdapter(RealtimeServerEvent)
    for event in fake_realtime.sent:
        server_events.validate_python(event)
    client_events = TypeAdapter(RealtimeClientEvent)
    for event in fake_realtime.received:
        client_events.validate_python(event)


def _check_session(fake_realtime: FakeRealtime) -> None:
    """Check one connection, to the configured model, configured with the home and its tool."""
    assert fake_realtime.models == ["gpt-realtime"]
    config = fake_realtime.session
    assert "Be kind." in config["instructions"]
    assert "Home: Cottage. Time zone: Europe/London." in config["instructions"]
    assert "You are talking with Ada." in config["instructions"]
    # The options' turn-taking and language reach the model's own turn detection.
    first = next(e for e in fake_realtime.received if e["type"] == "session.update")
    assert first["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 500,
        "silence_duration_ms": 550,
        "create_response": True,
        "interrupt_response": True,
    }
    assert first["session"]["audio"]["input"]["transcription"]["language"] == "en"
    assert config["tools"] == [
        {
            "type": "function",
            "name": TURN_ON.name,
            "description": TURN_ON.description,
            "parameters": TURN_ON.parameters,
        }
    ]
    # The utterance (1.27 s) reached the model as audio, and its VAD heard it as one turn.
    assert fake_realtime.audio_seconds > 1.2
    [started] = [e for e in fake_realtime.sent if e["type"].endswith("speech_started")]
    [stopped] = [e for e in fake_realtime.sent if e["type"].endswith("speech_stopped")]
    assert (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000 == pytest.approx(
        1.27, abs=0.15
    )


def _check_tool_round_trip(fake_realtime: FakeRealtime, home: ToolHome) -> None:
    """Check the model's call reached the home, its result back before the reply was asked."""
    assert home.calls == [("kitchen", "intent__HassTurnOn", {"name": "Kitchen"})]
    kinds = [event["type"] for event in fake_realtime.received]
    creates = [e for e in fake_realtime.received if e["type"] == "conversation.item.create"]
    assert [e["item"]["type"] for e in creates] == ["function_call_output"]
    output = creates[0]["item"]
    [call] = [e for e in fake_realtime.sent if e["type"] == "response.function_call_arguments.done"]
    assert output["call_id"] == call["call_id"]
    # (LiveKit sends str(result): a Python repr of the home's dict, not JSON.)
    assert "success" in output["output"]
    assert "light.kitchen_light" in output["output"]
    assert kinds.index("response.create") > kinds.index("conversation.item.create")


def _check_report(home: ToolHome, reply: Segment, spoken_end: float) -> None:
    """Check one turn report, with both sides' words and the tool."""
    [report] = home.turns
    assert report.room == "kitchen"
    assert report.user_text == "Turn on the kitchen light."
    assert report.agent_text == "The kitchen light is on."
    assert report.tools == ["intent__HassTurnOn"]
    assert report.error is None
    assert not report.interrupted
    # Timed from the local VAD's end of speech to the reply's first audio.
    assert report.end_to_end is not None
    assert 0 < report.end_to_end < reply.started_at - spoken_end + 0.5
    assert home.errors == []


async def test_hung_realtime_model_gets_an_apology(fake_realtime: FakeRealtime) -> None:
    """A realtime model that hears the turn and never answers is bounded by the watchdog."""
    fake_realtime.transcripts = ["What time is it?"]
    fake_realtime.turns = [RealtimeTurn(silent=True)]
    settings = replace(_settings(fake_realtime.base_url), limits=Limits(turn_deadline=1.5))
    home = ToolHome()
    engine = await VoiceEngine.async_create(home, settings, vad=silero.VAD.load())
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    try:
        await engine.async_start_session("den", audio_input=mic, audio_output=speaker)
        pcm, rate = read_wav(AUDIO / "whats_the_time.wav")
        spoken_end = await mic.play_pcm(pcm, rate)
        apology = await asyncio.wait_for(speaker.wait_for_segment(finished=False), 10)
        await wait_for(lambda: home.turns, 5)
    finally:
        mic.close()
        await asyncio.wait_for(engine.aclose(), 10)
    # The bundled apology, within the deadline (plus the model's 0.5 s of silence).
    assert 3.0 < apology.duration < 4.0
    assert apology.started_at - spoken_end < 1.5 + 1.5
    [report] = home.turns
    assert report.error == "timeout"
    assert report.user_text == "What time is it?"
    assert ("timeout", "the providers did not answer in time", True) in home.errors


@pytest.mark.parametrize("fault", ["bad key", "closed port"])
async def test_realtime_connection_faults_restart_the_room(
    fake_realtime: FakeRealtime, fault: str
) -> None:
    """A refused key or a dead server is reported, and the room restarts with backoff.

    Once the realtime connection has failed for good, LiveKit 1.5.16's own close of the
    session re-raises the connection error half-way and never emits "close"; the engine
    restarts the room itself and closes what that half-done close left running.
    """
    if fault == "bad key":
        settings = _settings(fake_realtime.base_url, api_key="sk-wrong")
    else:
        settings = _settings(f"{closed_port_url()}/v1")
    home = ToolHome()
    engine = await VoiceEngine.async_create(home, settings, vad=silero.VAD.load())
    mic = LocalAudioInput()
    try:
        room = await engine.async_start_session(
            "den", audio_input=mic, audio_output=LocalAudioOutput()
        )
        await asyncio.wait_for(home.gave_up.wait(), 5)
        # The first restart waits 0.5-1 s, then fails the same way: a second attempt.
        await wait_for(lambda: len(home.errors) >= 4)
        assert room.restarts >= 1
        assert engine.sessions["den"] is room
    finally:
        mic.close()
        await asyncio.wait_for(engine.aclose(), 5)

    # Each attempt: one retry (Limits.max_retry), reported as recoverable, then the end.
    assert [(source, recoverable) for source, _, recoverable in home.errors[:4]] == [
        ("realtime_model_error", True),
        ("realtime_model_error", False),
    ] * 2
    assert all("connection" in message for _, message, _ in home.errors)
    assert fake_realtime.rejected >= (4 if fault == "bad key" else 0)
    assert fake_realtime.models == []
    assert home.turns == []
