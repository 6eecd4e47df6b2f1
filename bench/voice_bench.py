"""Benchmark the voice engine: latency overhead, barge-in, event-loop lag, CPU.

Runs the real engine (real silero VAD, real openai plugin over HTTP) on local audio,
against the test suite's fake OpenAI-compatible server answering with zero latency, so
every figure is the engine's own cost. Run: `scripts/bench` (about 3 minutes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
from pathlib import Path
import statistics
import sys
import time
from typing import Any

from livekit.plugins import silero

from custom_components.shackleton.voice.engine import VoiceEngine, vad_options
from custom_components.shackleton.voice.home import (
    HomeContext,
    RoomTools,
    ToolSpec,
    TurnReport,
    Usage,
)
from custom_components.shackleton.voice.loading import import_heavy
from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    read_wav,
)
from custom_components.shackleton.voice.settings import ProviderSettings, VoiceSettings
from harness.fakes import ChatReply, FakeOpenAI, start_app

AUDIO = Path(__file__).parent.parent / "tests" / "fixtures" / "audio"
UTTERANCES = ["turn_on_kitchen_light", "turn_off_kitchen_light", "whats_the_time", "stop"]
LONG_REPLY = "It is twelve o'clock and the weather is lovely, a fine day to go out."


@dataclass
class BenchHome:
    """A home with one tool that does nothing, recording what the engine reports."""

    turns: list[TurnReport] = field(default_factory=list)

    def context(self, room: str) -> HomeContext:
        """Return a fixed context."""
        return HomeContext("Bench", "en", "UTC", datetime.now(UTC))

    async def room_tools(self, room: str) -> RoomTools:
        """Return one trivial tool, with nothing to guide."""
        return RoomTools([ToolSpec("noop", "Does nothing", {"type": "object", "properties": {}})])

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Succeed at once."""
        return {"ok": True}

    def report_state(self, room: str, state: str) -> None:
        """Ignore states."""

    def report_turn(self, report: TurnReport) -> None:
        """Keep turns."""
        self.turns.append(report)

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Print errors: a benchmark with errors is not a benchmark."""
        print(f"error in {room}: {source}: {message}", file=sys.stderr)

    def report_usage(self, usage: Usage) -> None:
        """Ignore usage: the bench measures time."""


def pct(values: list[float], q: int) -> float:
    """Return the q-th percentile (inclusive method)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[q - 1]


def print_figures(figures: dict[str, Any]) -> None:
    """Print the figures as a Markdown table, then as one JSON line."""
    print("| figure | value |\n| --- | --- |")
    for key, value in figures.items():
        print(f"| {key} | {value} |")
    print(json.dumps(figures))


async def loop_lag(until: float, period: float = 0.01) -> list[float]:
    """Return how late (s) each `period` sleep on this event loop woke, until `until`."""
    lags: list[float] = []
    while time.monotonic() < until:
        before = time.monotonic()
        await asyncio.sleep(period)
        lags.append(time.monotonic() - before - period)
    return lags


@dataclass
class CpuMeter:
    """This process's CPU time (every thread) per second of wall time since it was made."""

    wall: float = field(default_factory=time.monotonic)
    cpu: float = field(default_factory=time.process_time)

    def cores(self) -> float:
        """Return the cores used on average so far (1.0: one core, fully)."""
        return (time.process_time() - self.cpu) / (time.monotonic() - self.wall)


async def idle_cores(seconds: float) -> float:
    """Return the cores this process uses over `seconds` while this task only waits."""
    meter = CpuMeter()
    await asyncio.sleep(seconds)
    return meter.cores()


def script_turns(fake: FakeOpenAI) -> None:
    """Answer every request briefly: "Okay.", 0.2 s of audio."""
    fake.default_transcript = "Turn on the kitchen light."
    fake.default_reply = "Okay."
    fake.tts_seconds_per_char = 0.01


def script_barge_in(fake: FakeOpenAI) -> None:
    """Answer the next request at length (7 s of audio), and the one interrupting it briefly."""
    fake.tts_seconds_per_char = 0.1
    fake.default_reply = LONG_REPLY
    fake.chat_script = [ChatReply(LONG_REPLY), ChatReply("Okay.")]


def script_chatter(fake: FakeOpenAI) -> None:
    """Answer every request with a short sentence, as rooms talking at once get."""
    fake.tts_seconds_per_char = 0.03
    fake.default_reply = "Okay, done."


async def make_engine(fake: FakeOpenAI, home: BenchHome) -> VoiceEngine:
    """Return an engine on the fake server with Shackleton's default settings."""
    provider = {"kind": "openai", "base_url": fake.base_url, "api_key": "sk-test"}
    settings = VoiceSettings(
        mode="pipeline",
        stt=ProviderSettings(model="gpt-4o-mini-transcribe", **provider),  # type: ignore[arg-type]
        llm=ProviderSettings(model="gpt-4.1-mini", **provider),  # type: ignore[arg-type]
        tts=ProviderSettings(model="gpt-4o-mini-tts", **provider),  # type: ignore[arg-type]
    )
    vad = await asyncio.to_thread(lambda: silero.VAD.load(**vad_options(settings.turn_taking)))
    return await VoiceEngine.async_create(home, settings, vad=vad)


async def speech_end_to_first_audio(
    engine: VoiceEngine,
    fake: FakeOpenAI,
    turns: int,
    before_turn: Callable[[], None] | None = None,
) -> tuple[list[float], list[float]]:
    """Return seconds from each utterance's end to the reply's first frame and to the turn.

    The turn is when LiveKit decided the user was done (the agent starts "thinking").
    That, less the configured wait, is the VAD's own detection delay; what
    follows it is the engine's work.
    """
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    room = await engine.async_start_session("latency", audio_input=mic, audio_output=speaker)
    assert room.session is not None
    decided: list[float] = []
    room.session.on(
        "agent_state_changed",
        lambda ev: ev.new_state == "thinking" and decided.append(time.monotonic()),
    )
    script_turns(fake)
    clips = [await asyncio.to_thread(read_wav, AUDIO / f"{name}.wav") for name in UTTERANCES]
    await mic.play_silence(1.0)
    results, detections = [], []
    for number in range(1, turns + 1):
        pcm, rate = clips[number % len(clips)]
        decided.clear()
        if before_turn is not None:
            before_turn()  # e.g. script the model's replies for this turn
        ended = await mic.play_pcm(pcm, rate)
        reply = await asyncio.wait_for(speaker.wait_for_segment(number), 20)
        results.append(reply.started_at - ended)
        detections.append(decided[0] - ended)
        await mic.play_silence(0.5)
    await engine.async_end_session("latency")
    mic.close()
    return results, detections


async def barge_in(engine: VoiceEngine, fake: FakeOpenAI, trials: int) -> list[float]:
    """Return seconds from the onset of speech over the assistant until it went silent."""
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await engine.async_start_session("barge", audio_input=mic, audio_output=speaker)
    question = await asyncio.to_thread(read_wav, AUDIO / "whats_the_time.wav")
    stop = await asyncio.to_thread(read_wav, AUDIO / "stop.wav")
    results = []
    segment = 0
    for _ in range(trials):
        script_barge_in(fake)  # a long answer to interrupt, then a short one to "Stop."
        await mic.play_pcm(*question)
        segment += 1
        await asyncio.wait_for(speaker.wait_for_segment(segment, finished=False), 20)
        await asyncio.sleep(0.5)
        onset = time.monotonic()
        await mic.play_pcm(*stop)
        answer = await asyncio.wait_for(speaker.wait_for_segment(segment), 20)
        assert answer.silenced_at is not None
        results.append(answer.silenced_at - onset)
        # "Stop." gets its own short answer; wait for it and for quiet.
        segment += 1
        await asyncio.wait_for(speaker.wait_for_segment(segment), 20)
        await mic.play_silence(0.8)
    await engine.async_end_session("barge")
    mic.close()
    return results


async def loop_lag_with_sessions(
    engine: VoiceEngine, fake: FakeOpenAI, sessions: int, seconds: float
) -> list[float]:
    """Return event-loop lag samples (s) while `sessions` rooms listen and talk at once."""
    script_chatter(fake)
    rooms = []
    for index in range(sessions):
        mic, speaker = LocalAudioInput(), LocalAudioOutput()
        await engine.async_start_session(f"lag{index}", audio_input=mic, audio_output=speaker)
        rooms.append((mic, speaker))
    clip = await asyncio.to_thread(read_wav, AUDIO / "turn_on_kitchen_light.wav")
    stop = time.monotonic() + seconds

    async def talk(mic: LocalAudioInput) -> None:
        while time.monotonic() < stop - 3:
            await mic.play_pcm(*clip)
            await mic.play_silence(2.0)

    lags, _ = await asyncio.gather(loop_lag(stop), asyncio.gather(*(talk(mic) for mic, _ in rooms)))
    for index, (mic, _) in enumerate(rooms):
        await engine.async_end_session(f"lag{index}")
        mic.close()
    return lags


async def cpu_per_listening_session(engine: VoiceEngine, sessions: int, seconds: float) -> float:
    """Return the CPU one listening session costs, in % of one core, net of the baseline."""
    baseline = await idle_cores(seconds)
    mics = []
    for index in range(sessions):
        mic = LocalAudioInput()
        await engine.async_start_session(
            f"cpu{index}", audio_input=mic, audio_output=LocalAudioOutput()
        )
        mics.append(mic)
    await asyncio.sleep(1.0)  # past start-up
    loaded = await idle_cores(seconds)
    for index, mic in enumerate(mics):
        await engine.async_end_session(f"cpu{index}")
        mic.close()
    return (loaded - baseline) / sessions * 100


def _stages(turns: list[TurnReport]) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for report in turns:
        for name in ("end_of_utterance_delay", "transcription_delay", "llm_ttft", "tts_ttfb"):
            if (value := getattr(report, name)) is not None:
                stages.setdefault(name, []).append(value)
    return stages


async def main() -> None:
    """Run every benchmark and print a table and JSON."""
    fake = FakeOpenAI()
    runner, fake.url = await start_app(fake.app())
    fake.chat_script = []
    home = BenchHome()
    engine = await make_engine(fake, home)
    turn = engine.settings.turn_taking
    # LiveKit waits the endpointing delay from the last voiced frame, which overlaps the
    # VAD's own silence: the configured wait is the longer of the two.
    configured = max(turn.min_silence_duration, turn.min_endpointing_delay)
    # Load like HA does, so that no first-use import lands inside a measured turn.
    await asyncio.to_thread(import_heavy)
    try:
        print("speech end -> first audio, 20 turns...", file=sys.stderr)
        latency, detection = await speech_end_to_first_audio(engine, fake, 20)
        stages = list(home.turns)
        print("barge-in, 20 trials...", file=sys.stderr)
        barge = await barge_in(engine, fake, 20)
        print("event-loop lag, 4 sessions, 20 s...", file=sys.stderr)
        lags = await loop_lag_with_sessions(engine, fake, 4, 20.0)
        print("CPU per listening session, 4 sessions, 10 s...", file=sys.stderr)
        cpu = await cpu_per_listening_session(engine, 4, 10.0)
    finally:
        await engine.aclose()
        await runner.cleanup()
    overhead = [value - configured for value in latency]
    # Silero counts silence only once its (smoothed) speech probability has dropped, so
    # the turn is decided this much after the configured wait, before any engine work.
    vad_lag = [value - configured for value in detection]
    engine_part = [total - decision for total, decision in zip(latency, detection, strict=True)]
    figures = {
        "speech_end_to_first_audio_p50_ms": round(pct(latency, 50) * 1000),
        "speech_end_to_first_audio_p95_ms": round(pct(latency, 95) * 1000),
        "configured_end_of_speech_wait_ms": round(configured * 1000),
        "overhead_p50_ms": round(pct(overhead, 50) * 1000),
        "overhead_p95_ms": round(pct(overhead, 95) * 1000),
        "turn_decided_after_wait_p50_ms": round(pct(vad_lag, 50) * 1000),
        "turn_decided_after_wait_p95_ms": round(pct(vad_lag, 95) * 1000),
        "first_audio_after_decision_p50_ms": round(pct(engine_part, 50) * 1000, 1),
        "first_audio_after_decision_p95_ms": round(pct(engine_part, 95) * 1000, 1),
        "barge_in_p50_ms": round(pct(barge, 50) * 1000),
        "barge_in_p95_ms": round(pct(barge, 95) * 1000),
        "loop_lag_p99_ms_4_sessions": round(pct(lags, 99) * 1000, 1),
        "loop_lag_max_ms_4_sessions": round(max(lags) * 1000, 1),
        "cpu_percent_per_listening_session": round(cpu, 2),
        # Where the time goes, from LiveKit's own per-turn metrics (medians, ms).
        **{
            f"median_{name}_ms": round(statistics.median(values) * 1000)
            for name, values in _stages(stages).items()
        },
        "turns": len(latency),
        "barge_in_trials": len(barge),
        "engine_turn_reports": len(home.turns),
    }
    print_figures(figures)


if __name__ == "__main__":
    asyncio.run(main())
