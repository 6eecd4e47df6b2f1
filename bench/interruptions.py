"""How short may a barge-in be? False triggers on household noise vs barge-in delay.

Feeds synthesized household noise (deterministic, seeded) and real speech clips through
silero VAD with Shackleton's VAD options, and counts, for each candidate
`min_interruption_duration`, how many times the assistant would have been interrupted.
Noise should interrupt never; every spoken "stop" always. Run: `scripts/bench interruptions`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from custom_components.shackleton.voice.loading import import_heavy

RATE = 16000
SECONDS = 20.0
CANDIDATES = (0.05, 0.08, 0.1, 0.15, 0.2)
AUDIO = Path(__file__).parent.parent / "tests" / "fixtures" / "audio"

Signal = NDArray[np.float64]


def _db(level: float) -> float:
    return 10 ** (level / 20)


def _white(rng: np.random.Generator, level: float) -> Signal:
    return rng.normal(0, _db(level), int(SECONDS * RATE))


def _pink(rng: np.random.Generator, level: float) -> Signal:
    spectrum = np.fft.rfft(rng.normal(0, 1, int(SECONDS * RATE)))
    spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))
    pink = np.fft.irfft(spectrum)
    return pink / np.std(pink) * _db(level)


def _hum(rng: np.random.Generator, level: float) -> Signal:
    t = np.arange(int(SECONDS * RATE)) / RATE
    mains = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
    return mains / np.max(np.abs(mains)) * _db(level) + rng.normal(0, _db(level - 30), len(t))


def _bursts(
    rng: np.random.Generator, level: float, length: float, shape: Callable[[int], Signal]
) -> Signal:
    """Noise bursts of `length` seconds every ~1.5 s (claps, knocks, coughs, clatter)."""
    out = rng.normal(0, _db(level - 40), int(SECONDS * RATE))
    n = int(length * RATE)
    for start in np.arange(0.5, SECONDS - 1, 1.5):
        at = int((start + rng.uniform(0, 0.4)) * RATE)
        out[at : at + n] += rng.normal(0, _db(level), n) * shape(n)
    return out


def _decay(n: int) -> Signal:
    return np.exp(-np.arange(n) / (n / 6))


def _cough(n: int) -> Signal:
    # A sharp onset, a noisy body, then a tail: roughly a cough's envelope.
    t = np.arange(n) / n
    return np.minimum(1, t * 40) * np.exp(-3 * t)


def _chords(rng: np.random.Generator, level: float) -> Signal:
    """Music-like: a chord progression of harmonic tones with note onsets."""
    t = np.arange(int(0.5 * RATE)) / RATE
    notes = []
    for _ in range(int(SECONDS / 0.5)):
        root = rng.choice([220.0, 246.9, 261.6, 293.7, 329.6])
        chord = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1, 1.26, 1.5, 2))
        notes.append(chord * np.exp(-2 * t))
    music = np.concatenate(notes)
    return music / np.max(np.abs(music)) * _db(level)


def _babble(rng: np.random.Generator, level: float) -> Signal:
    """Several of the test utterances at once, at random offsets: far-off voices."""
    from custom_components.shackleton.voice.local_audio import read_wav

    out = np.zeros(int(SECONDS * RATE))
    voices = [
        np.frombuffer(read_wav(path)[0], dtype=np.int16) / 32768
        for path in sorted(AUDIO.glob("*.wav"))
        if not path.name.startswith("backchannel_")
    ]
    for _ in range(40):
        voice = voices[rng.integers(len(voices))]
        at = rng.integers(0, len(out) - len(voice))
        out[at : at + len(voice)] += voice
    return out / np.sqrt(np.mean(out**2)) * _db(level)


NOISES: dict[str, Callable[[np.random.Generator], Signal]] = {
    "white noise -40 dBFS": lambda rng: _white(rng, -40),
    "white noise -25 dBFS": lambda rng: _white(rng, -25),
    "pink noise -25 dBFS (fan, rain)": lambda rng: _pink(rng, -25),
    "mains hum -20 dBFS": lambda rng: _hum(rng, -20),
    "claps/knocks 30 ms -10 dBFS": lambda rng: _bursts(rng, -10, 0.03, _decay),
    "clatter 120 ms -15 dBFS": lambda rng: _bursts(rng, -15, 0.12, _decay),
    "coughs 250 ms -15 dBFS": lambda rng: _bursts(rng, -15, 0.25, _cough),
    "music chords -20 dBFS": lambda rng: _chords(rng, -20),
    "distant babble -40 dBFS": lambda rng: _babble(rng, -40),
    "babble -30 dBFS (TV in the next room)": lambda rng: _babble(rng, -30),
}


def noise_clips(seed: int = 7) -> dict[str, bytes]:
    """Return each noise as 16-bit PCM at 16 kHz (same seed, same audio)."""
    clips = {}
    for name, make in NOISES.items():
        signal = np.clip(make(np.random.default_rng(seed)), -1, 1)
        clips[name] = (signal * 32767).astype(np.int16).tobytes()
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
