"""Benchmark fully offline voice: speech end → first audio, and words heard right.

The real engine with silero, faster-whisper tiny.en and piper, on local audio at real
time. The utterances are common Assist requests spoken by piper (deterministic). The
language-model stage is an agent that answers at once, so the figures are the speech
stack's (Assist itself takes 13 ms at the median in `scripts/demo`).
Run: `scripts/bench local` (about 80 s).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import json
import re
import sys
from typing import Any

from livekit.plugins import silero
import numpy as np

from custom_components.shackleton.voice.engine import VoiceEngine, vad_options
from custom_components.shackleton.voice.loading import ENGINE_MODULES, import_heavy
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from custom_components.shackleton.voice.local_models import PiperTTS
from custom_components.shackleton.voice.settings import ProviderSettings, VoiceSettings

from .voice_bench import BenchHome, pct

# Requests people make of Assist: the demo's script and more of the same kind.
UTTERANCES = [
    "Turn on the kitchen light.",
    "Turn on the porch light.",
    "Turn off the kitchen light.",
    "Set a timer for two minutes.",
    "Add eggs to my shopping list.",
    "Add milk to my shopping list.",
    "Turn off all the lights.",
    "Set the bedroom light to fifty percent.",
    "What's the temperature in the living room?",
    "Open the garage door.",
    "Lock the front door.",
    "Cancel my timer.",
    "How much time is left on the pasta timer?",
    "Turn on the fan in the office.",
    "Close the blinds in the bedroom.",
    "Set the thermostat to twenty one degrees.",
    "Is the back door locked?",
    "Add bread to the shopping list.",
    "Pause the music in the kitchen.",
    "What time is it?",
]
NUMBERS = {
    "two": "2", "ten": "10", "twenty": "20", "fifty": "50", "twenty one": "21",
    "percent": "%",
}  # fmt: skip


@dataclass
class LocalBenchHome(BenchHome):
    """The bench home, with an agent that answers at once and records what it heard."""

    heard: list[str] | None = None

    async def converse(
        self, room: str, text: str, agent_id: str, *, turn: int = 0
    ) -> tuple[str, list[str]]:
        """Answer at once."""
        if self.heard is not None:
            self.heard.append(text)
        return "Done.", []


def trailing_silence(pcm: bytes, rate: int, threshold: int = 500) -> float:
    """Return the seconds after the last sample louder than `threshold`."""
    samples = np.abs(np.frombuffer(pcm, dtype=np.int16))
    loud = np.flatnonzero(samples > threshold)
    return (len(samples) - (loud[-1] + 1 if len(loud) else 0)) / rate


def words(text: str) -> list[str]:
    """Return the words of `text`, normalised: lower case, no punctuation, digits."""
    text = text.lower().replace("%", " percent")
    for spoken, digits in sorted(NUMBERS.items(), key=lambda pair: -len(pair[0])):
        text = re.sub(rf"\b{spoken}\b", f" {digits} ", text)
    return re.findall(r"[a-z0-9']+|%", text.replace("%", " % "))


def word_errors(reference: list[str], heard: list[str]) -> int:
    """Return the edit distance in words (substitutions, insertions, deletions)."""
    row = list(range(len(heard) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(heard, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


async def main() -> None:
    """Speak every utterance once; print latency percentiles, WER and the misheard."""
    await asyncio.to_thread(import_heavy)
    await asyncio.to_thread(import_heavy, ENGINE_MODULES)
    home = LocalBenchHome(heard=[])
    settings = VoiceSettings(
        mode="pipeline",
        stt=ProviderSettings(kind="local", model="tiny.en"),
        llm=ProviderSettings(kind="home_assistant", model="bench"),
        tts=ProviderSettings(kind="local", model="en_US-joe-medium"),
    )
    vad = await asyncio.to_thread(lambda: silero.VAD.load(**vad_options(settings.turn_taking)))
    engine = await VoiceEngine.async_create(home, settings, vad=vad)
    voice = PiperTTS()
    clips = [await asyncio.to_thread(voice.synthesize_pcm, text) for text in UTTERANCES]
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await engine.async_start_session("bench", audio_input=mic, audio_output=speaker)
    latency: list[float] = []
    try:
        await mic.play_silence(1.0)
        for number, (pcm, rate) in enumerate(clips, 1):
            ended = await mic.play_pcm(pcm, rate)
            reply = await asyncio.wait_for(speaker.wait_for_segment(number), 30)
            # From the last voiced sample, not the clip's end (piper trails silence).
            latency.append(reply.started_at - (ended - trailing_silence(pcm, rate)))
            await mic.play_silence(0.5)
    finally:
        mic.close()
        await engine.aclose()
    heard = home.heard or []
    errors = [
        word_errors(words(said), words(got)) for said, got in zip(UTTERANCES, heard, strict=True)
    ]
    total = sum(len(words(said)) for said in UTTERANCES)
    stages: dict[str, list[float]] = {}
    for report in home.turns:
        for name in ("end_of_utterance_delay", "transcription_delay", "tts_ttfb"):
            if (value := getattr(report, name)) is not None:
                stages.setdefault(name, []).append(value)
    figures: dict[str, Any] = {
        "speech_end_to_first_audio_p50_ms": round(pct(latency, 50) * 1000),
        "speech_end_to_first_audio_p95_ms": round(pct(latency, 95) * 1000),
        **{f"p50_{name}_ms": round(pct(values, 50) * 1000) for name, values in stages.items()},
        "word_error_rate_percent": round(100 * sum(errors) / total, 1),
        "words": total,
        "utterances_heard_exactly": sum(error == 0 for error in errors),
        "utterances": len(UTTERANCES),
    }
    print("| figure | value |\n| --- | --- |")
    for key, value in figures.items():
        print(f"| {key} | {value} |")
    for said, got, error in zip(UTTERANCES, heard, errors, strict=True):
        if error:
            print(f"misheard ({error} word errors): {said!r} -> {got!r}")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
