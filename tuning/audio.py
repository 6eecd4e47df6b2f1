"""Test audio: household noise (seeded, deterministic) and synthesized home commands.

`python -m tuning.audio` rebuilds `notebooks/data/`: piper (the bundled voice, with
its noise scales at zero) speaks each command, pauses are inserted where a person
would hesitate, and a background noise is mixed under it. The labels (where speech
is) come from the clean speech before mixing, so they do not depend on any VAD.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
import json
from pathlib import Path
import wave

import numpy as np
from numpy.typing import NDArray

RATE = 16000
Signal = NDArray[np.float64]
DATA = Path(__file__).parent.parent / "notebooks" / "data"


def _db(level: float) -> float:
    return float(10 ** (level / 20))


def _white(rng: np.random.Generator, level: float, seconds: float) -> Signal:
    return rng.normal(0, _db(level), int(seconds * RATE))


def _pink(rng: np.random.Generator, level: float, seconds: float) -> Signal:
    spectrum = np.fft.rfft(rng.normal(0, 1, int(seconds * RATE)))
    spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))
    pink = np.fft.irfft(spectrum, int(seconds * RATE))
    return pink / np.std(pink) * _db(level)


def _hum(rng: np.random.Generator, level: float, seconds: float) -> Signal:
    t = np.arange(int(seconds * RATE)) / RATE
    mains = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
    hum = mains / np.max(np.abs(mains)) * _db(level) + rng.normal(0, _db(level - 30), len(t))
    return np.asarray(hum, dtype=np.float64)


def _bursts(
    rng: np.random.Generator,
    level: float,
    seconds: float,
    length: float,
    shape: Callable[[int], Signal],
) -> Signal:
    """Noise bursts of `length` seconds every ~1.5 s (claps, knocks, coughs, clatter)."""
    out = rng.normal(0, _db(level - 40), int(seconds * RATE))
    n = int(length * RATE)
    for start in np.arange(0.5, seconds - 1, 1.5):
        at = int((start + rng.uniform(0, 0.4)) * RATE)
        out[at : at + n] += rng.normal(0, _db(level), n) * shape(n)
    return out


def _decay(n: int) -> Signal:
    return np.exp(-np.arange(n) / (n / 6))


def _cough(n: int) -> Signal:
    # A sharp onset, a noisy body, then a tail: roughly a cough's envelope.
    t = np.arange(n) / n
    return np.asarray(np.minimum(1, t * 40) * np.exp(-3 * t), dtype=np.float64)


def _chords(rng: np.random.Generator, level: float, seconds: float) -> Signal:
    """Music-like: a chord progression of harmonic tones with note onsets."""
    t = np.arange(int(0.5 * RATE)) / RATE
    notes = []
    for _ in range(int(np.ceil(seconds / 0.5))):
        root = rng.choice([220.0, 246.9, 261.6, 293.7, 329.6])
        chord = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in (1, 1.26, 1.5, 2))
        notes.append(chord * np.exp(-2 * t))
    music = np.concatenate(notes)[: int(seconds * RATE)]
    return np.asarray(music / np.max(np.abs(music)) * _db(level), dtype=np.float64)


def babble(voices: list[Signal], rng: np.random.Generator, level: float, seconds: float) -> Signal:
    """Several voices at once, at random offsets: a TV or people in the next room."""
    out = np.zeros(int(seconds * RATE))
    for _ in range(int(seconds * 2)):
        voice = voices[rng.integers(len(voices))][: len(out) - 1]
        at = rng.integers(0, len(out) - len(voice))
        out[at : at + len(voice)] += voice
    return np.asarray(out / np.sqrt(np.mean(out**2)) * _db(level), dtype=np.float64)


# Noises that need no speech to make, by name: (rng, seconds) -> signal in [-1, 1].
NOISES: dict[str, Callable[[np.random.Generator, float], Signal]] = {
    "quiet room": lambda rng, s: _white(rng, -60, s),
    "white noise -40 dBFS": lambda rng, s: _white(rng, -40, s),
    "white noise -25 dBFS": lambda rng, s: _white(rng, -25, s),
    "pink noise -25 dBFS (fan, rain)": lambda rng, s: _pink(rng, -25, s),
    "fan -35 dBFS": lambda rng, s: _pink(rng, -35, s),
    "mains hum -20 dBFS": lambda rng, s: _hum(rng, -20, s),
    "claps/knocks 30 ms -10 dBFS": lambda rng, s: _bursts(rng, -10, s, 0.03, _decay),
    "clatter 120 ms -15 dBFS": lambda rng, s: _bursts(rng, -15, s, 0.12, _decay),
    "coughs 250 ms -15 dBFS": lambda rng, s: _bursts(rng, -15, s, 0.25, _cough),
    "music chords -20 dBFS": lambda rng, s: _chords(rng, -20, s),
}


def to_pcm(signal: Signal) -> bytes:
    """Return 16-bit PCM of a signal in [-1, 1] (clipped)."""
    return (np.clip(signal, -1, 1) * 32767).astype(np.int16).tobytes()


def to_signal(pcm: bytes) -> Signal:
    """Return a 16-bit PCM buffer as floats in [-1, 1]."""
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float64) / 32768


def write_wav(path: Path, pcm: bytes, rate: int = RATE) -> None:
    """Write mono 16-bit PCM as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def speech_bounds(signal: Signal, floor_db: float = -40.0) -> tuple[float, float]:
    """Return where a clean utterance starts and ends (seconds), from its 10 ms energy."""
    hop = RATE // 100
    frames = signal[: len(signal) // hop * hop].reshape(-1, hop)
    loud = np.flatnonzero(20 * np.log10(np.sqrt(np.mean(frames**2, axis=1)) + 1e-12) > floor_db)
    if not len(loud):
        raise ValueError("no speech in the clip")
    return float(loud[0] * hop / RATE), float((loud[-1] + 1) * hop / RATE)


@dataclass(frozen=True, slots=True)
class Command:
    """A request as a person says it: phrases, the pauses between them, and a background."""

    name: str
    phrases: tuple[str, ...]
    pauses: tuple[float, ...]  # seconds of hesitation after each phrase but the last
    noise: str
    level_db: float = -20.0  # the speech's RMS level


# What the bundled data holds. Hesitations of 0.4-1.0 s inside a request are what a VAD
# must bridge; the noise-only clips are what it must ignore.
COMMANDS = (
    Command("kitchen_light_quiet", ("Turn on the kitchen light.",), (), "quiet room"),
    Command("timer_fan", ("Set a timer for", "ten minutes."), (0.6,), "fan -35 dBFS"),
    Command("shopping_babble", ("Add milk", "to the shopping list."), (0.4,), "babble -35 dBFS"),
    Command("calendar_hum", ("What's on my calendar", "tomorrow?"), (1.0,), "mains hum -20 dBFS"),
    Command(
        "dim_clatter",
        ("Dim the living room lights", "to thirty percent."),
        (0.5,),
        "clatter 120 ms -15 dBFS",
    ),
    Command("lock_music", ("Lock the front door.",), (), "music chords -20 dBFS", -18.0),
    Command("stop_white", ("Stop.",), (), "white noise -40 dBFS"),
    Command(
        "weather_pink",
        ("Will it rain", "this afternoon?"),
        (0.8,),
        "pink noise -25 dBFS (fan, rain)",
        -15.0,
    ),
)
NOISE_ONLY = (
    "coughs 250 ms -15 dBFS",
    "claps/knocks 30 ms -10 dBFS",
    "music chords -20 dBFS",
    "babble -35 dBFS",
)
BABBLE_LINES = (
    "And now the weather for the weekend.",
    "I told him we would be there by seven.",
    "The match continues after the break.",
    "Could you pass me the salt, please?",
)
LEAD, TAIL, NOISE_SECONDS = 0.8, 1.6, 6.0


@dataclass(frozen=True, slots=True)
class Clip:
    """A clip's labels: where each phrase is, and the request they make up (seconds)."""

    file: str
    noise: str
    text: str
    phrases: list[tuple[float, float]]
    duration: float

    @property
    def turn(self) -> tuple[float, float] | None:
        """Return the whole request, hesitations included (None for noise only)."""
        return (self.phrases[0][0], self.phrases[-1][1]) if self.phrases else None


def build_dataset(out: Path = DATA, seed: int = 7) -> list[Clip]:
    """Synthesize the commands and noises into WAV files and `labels.json` (blocking)."""
    from custom_components.shackleton.voice.local_audio import resample
    from custom_components.shackleton.voice.local_models import PiperTTS

    piper = PiperTTS()

    def speak(text: str) -> Signal:
        pcm, rate = piper.synthesize_pcm(text)
        return to_signal(resample(pcm, rate, RATE))

    voices = [speak(line) for line in BABBLE_LINES]
    noises: dict[str, Callable[[np.random.Generator, float], Signal]] = {
        **NOISES,
        "babble -35 dBFS": lambda rng, s: babble(voices, rng, -35, s),
    }
    out.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    for number, command in enumerate(COMMANDS):
        parts: list[Signal] = [np.zeros(int(LEAD * RATE))]
        phrases: list[tuple[float, float]] = []
        at = LEAD
        for index, phrase in enumerate(command.phrases):
            speech = speak(phrase)
            start, end = speech_bounds(speech)
            phrases.append((round(at + start, 3), round(at + end, 3)))
            pause = command.pauses[index] if index < len(command.pauses) else TAIL
            # Trim piper's own trailing silence so the pause is the one we chose.
            speech = speech[: int(end * RATE)]
            parts += [speech, np.zeros(int(pause * RATE))]
            at += len(speech) / RATE + pause
        speech = np.concatenate(parts)
        rms = np.sqrt(np.mean(np.concatenate([p for p in parts if np.any(p)]) ** 2))
        speech *= _db(command.level_db) / rms
        rng = np.random.default_rng(seed + number)
        mixed = speech + noises[command.noise](rng, len(speech) / RATE)[: len(speech)]
        name = f"{command.name}.wav"
        write_wav(out / name, to_pcm(mixed))
        clips.append(
            Clip(name, command.noise, " … ".join(command.phrases), phrases, len(mixed) / RATE)
        )
    for number, noise in enumerate(NOISE_ONLY):
        rng = np.random.default_rng(seed + 100 + number)
        name = "noise_" + noise.split(" ")[0].replace("/", "_") + ".wav"
        write_wav(out / name, to_pcm(noises[noise](rng, NOISE_SECONDS)))
        clips.append(Clip(name, noise, "", [], NOISE_SECONDS))
    labels = {"rate": RATE, "clips": [asdict(clip) for clip in clips]}
    (out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return clips


def load_dataset(folder: Path = DATA) -> list[Clip]:
    """Return the labelled clips of a folder made by `build_dataset`."""
    labels = json.loads((folder / "labels.json").read_text())
    return [
        Clip(
            clip["file"],
            clip["noise"],
            clip["text"],
            [(float(start), float(end)) for start, end in clip["phrases"]],
            clip["duration"],
        )
        for clip in labels["clips"]
    ]


if __name__ == "__main__":
    for clip in build_dataset():
        print(f"{clip.file}: {clip.duration:.1f} s, {clip.noise}, {clip.text or '(no speech)'}")  # noqa: T201
