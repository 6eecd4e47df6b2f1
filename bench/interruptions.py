"""How short may a barge-in be? False triggers on household noise vs barge-in delay.

Feeds synthesized household noise (deterministic, seeded) and real speech clips through
silero VAD with Shackleton's VAD options, and counts, for each candidate
`min_interruption_duration`, how many times the assistant would have been interrupted.
Noise should interrupt never; every spoken "stop" always. Run: `scripts/bench interruptions`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from custom_components.shackleton.voice.loading import import_heavy
from tuning.audio import NOISES, RATE, babble, to_pcm, to_signal

SECONDS = 20.0
CANDIDATES = (0.05, 0.08, 0.1, 0.15, 0.2)
AUDIO = Path(__file__).parent.parent / "tests" / "fixtures" / "audio"
BENCH_NOISES = (
    "white noise -40 dBFS",
    "white noise -25 dBFS",
    "pink noise -25 dBFS (fan, rain)",
    "mains hum -20 dBFS",
    "claps/knocks 30 ms -10 dBFS",
    "clatter 120 ms -15 dBFS",
    "coughs 250 ms -15 dBFS",
    "music chords -20 dBFS",
)


def noise_clips(seed: int = 7) -> dict[str, bytes]:
    """Return each noise as 16-bit PCM at 16 kHz (same seed, same audio)."""
    from custom_components.shackleton.voice.local_audio import read_wav

    clips = {
        name: to_pcm(NOISES[name](np.random.default_rng(seed), SECONDS)) for name in BENCH_NOISES
    }
    # Several of the test utterances at once, at random offsets: far-off voices.
    voices = [
        to_signal(read_wav(path)[0])
        for path in sorted(AUDIO.glob("*.wav"))
        if not path.name.startswith("backchannel_")
    ]
    for label, level in (
        ("distant babble -40 dBFS", -40),
        ("babble -30 dBFS (TV in the next room)", -30),
    ):
        clips[label] = to_pcm(babble(voices, np.random.default_rng(seed), level, SECONDS))
    return clips


async def speech_runs(vad: object, pcm: bytes) -> list[float]:
    """Return the longest VAD speech duration reached in each detected speech run."""
    from livekit import rtc
    from livekit.agents import vad as vad_mod

    stream = vad.stream()  # type: ignore[attr-defined]
    step = RATE // 50
    padded = bytes(RATE) + pcm + bytes(RATE * 2)
    for start in range(0, len(padded), step * 2):
        chunk = padded[start : start + step * 2].ljust(step * 2, b"\0")
        stream.push_frame(rtc.AudioFrame(chunk, RATE, 1, step))
    stream.end_input()
    runs: list[float] = []
    async for event in stream:
        if event.type == vad_mod.VADEventType.START_OF_SPEECH:
            runs.append(event.speech_duration)
        elif event.type == vad_mod.VADEventType.INFERENCE_DONE and event.speaking and runs:
            runs[-1] = max(runs[-1], event.speech_duration)
    await stream.aclose()
    return runs


async def main() -> None:
    """Print false interruptions per noise and the detection of spoken barge-ins."""
    await asyncio.to_thread(import_heavy)
    from livekit.plugins import silero

    from custom_components.shackleton.voice.engine import vad_options
    from custom_components.shackleton.voice.local_audio import read_wav
    from custom_components.shackleton.voice.settings import TurnTaking

    vad = silero.VAD.load(**vad_options(TurnTaking()))
    header = " | ".join(f"{value:.2f} s" for value in CANDIDATES)
    print(f"| audio ({SECONDS:.0f} s each) | {header} |")
    print("| --- |" + " --- |" * len(CANDIDATES))
    total = dict.fromkeys(CANDIDATES, 0)
    for name, pcm in noise_clips().items():
        runs = await speech_runs(vad, pcm)
        counts = [sum(run >= value for run in runs) for value in CANDIDATES]
        for value, count in zip(CANDIDATES, counts, strict=True):
            total[value] += count
        print(f"| {name} | " + " | ".join(str(count) for count in counts) + " |")
    totals = " | ".join(str(total[value]) for value in CANDIDATES)
    print(f"| **false interruptions, all noise** | {totals} |")
    speech = (("spoken requests", ""), ("backchannels (mm-hm, uh-huh, hmm)", "backchannel_"))
    for label, prefix in speech:
        clips = [
            path
            for path in sorted(AUDIO.glob(f"{prefix}*.wav"))
            if path.name.startswith("backchannel_") == bool(prefix)
        ]
        caught = dict.fromkeys(CANDIDATES, 0)
        for path in clips:
            pcm, _ = await asyncio.to_thread(read_wav, path)
            runs = await speech_runs(vad, pcm)
            for value in CANDIDATES:
                caught[value] += any(run >= value for run in runs)
        print(
            f"| **{label}: interrupted (of {len(clips)})** | "
            + " | ".join(str(caught[v]) for v in CANDIDATES)
            + " |"
        )


if __name__ == "__main__":
    asyncio.run(main())
