"""Run silero VAD with Shackleton's options over labelled clips, and score the settings.

The VAD is LiveKit's silero plugin, fed 20 ms frames like a microphone; its events are
the measurements. Turn ends follow LiveKit's rule for VAD turn detection: the turn is
committed `min_endpointing_delay` after the last speech, but not before silero has
declared the end of speech, and not at all if speech starts again first
(`livekit/agents/voice/audio_recognition.py`, `_bounce_eou_task`). Speech-to-text and
a turn detector model can hold a turn longer; neither runs here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import NDArray

from custom_components.shackleton.voice.settings import TurnTaking

from .audio import RATE, Clip

FRAME = RATE // 50  # 20 ms, as a microphone sends them
# A commit this close before the labelled end (seconds) is not a cut-off: the label is
# cut where piper's energy fades, and silero hears the last consonant a little sooner.
EDGE = 0.08


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of speech as silero reported it (seconds into the clip)."""

    detected: float  # when START_OF_SPEECH fired
    captured_from: float  # where the audio handed on begins (prefix padding included)
    ended: float | None  # when END_OF_SPEECH fired (None: still speaking at the end)
    last_speech: float | None  # the last speech before that end


@dataclass(slots=True)
class Trace:
    """Silero's view of one clip: its speech probability and the segments it found."""

    times: NDArray[np.float64]
    probability: NDArray[np.float64]
    segments: list[Segment]


@dataclass(slots=True)
class Score:
    """How one setting did on one clip."""

    clip: str
    turn: tuple[float, float] | None
    commits: list[float]
    false_triggers: int = 0
    cut_off: bool = False
    missed: bool = False
    delay: float | None = None  # end of the request -> turn committed
    onset_clipped: float = 0.0  # seconds of the request's start not handed on


def vad_options(turn: TurnTaking) -> dict[str, Any]:
    """Return the silero options Shackleton uses for these settings."""
    from custom_components.shackleton.voice.engine import vad_options as engine_options

    return engine_options(turn)


async def trace(pcm: bytes, turn: TurnTaking, vad: Any = None) -> Trace:
    """Run silero over 16 kHz mono PCM with the options of `turn`."""
    from livekit import rtc
    from livekit.agents import vad as vad_mod
    from livekit.plugins import silero

    vad = vad or silero.VAD.load(**vad_options(turn))
    stream = vad.stream()
    # A second of silence after the clip lets the last segment end.
    padded = pcm + bytes(RATE * 2)
    for start in range(0, len(padded), FRAME * 2):
        chunk = padded[start : start + FRAME * 2].ljust(FRAME * 2, b"\0")
        stream.push_frame(rtc.AudioFrame(chunk, RATE, 1, FRAME))
    stream.end_input()
    times: list[float] = []
    probability: list[float] = []
    segments: list[Segment] = []
    async for event in stream:
        at = event.samples_index / RATE
        if event.type == vad_mod.VADEventType.INFERENCE_DONE:
            times.append(at)
            probability.append(event.probability)
        elif event.type == vad_mod.VADEventType.START_OF_SPEECH:
            padding = sum(frame.duration for frame in event.frames)
            segments.append(Segment(at, at - padding, None, None))
        elif event.type == vad_mod.VADEventType.END_OF_SPEECH and segments:
            segments[-1] = replace(segments[-1], ended=at, last_speech=at - event.silence_duration)
    await stream.aclose()
    return Trace(np.array(times), np.array(probability), segments)


def commits(segments: Sequence[Segment], min_endpointing_delay: float) -> list[float]:
    """Return when LiveKit would commit user turns for these segments (see the module)."""
    out: list[float] = []
    for index, segment in enumerate(segments):
        if segment.ended is None or segment.last_speech is None:
            continue
        at = max(segment.ended, segment.last_speech + min_endpointing_delay)
        following = segments[index + 1] if index + 1 < len(segments) else None
        if following is None or following.detected >= at:
            out.append(at)
    return out


def score(clip: Clip, found: Trace, turn: TurnTaking) -> Score:
    """Score one clip: false triggers, a cut-off request, a missed one, the delays."""
    result = Score(clip.file, clip.turn, commits(found.segments, turn.min_endpointing_delay))
    request = clip.turn
    for segment in found.segments:
        end = segment.ended if segment.ended is not None else clip.duration
        if request is None or end < request[0] - 0.2 or segment.detected > request[1] + 0.5:
            result.false_triggers += 1
    if request is None:
        return result
    start, end = request
    heard = [s for s in found.segments if s.detected <= end + 0.5 and (s.ended or 1e9) >= start]
    if not heard:
        result.missed = True
        return result
    result.onset_clipped = max(0.0, heard[0].captured_from - start)
    result.cut_off = any(start < at < end - EDGE for at in result.commits)
    after = [at for at in result.commits if at >= end - EDGE]
    result.delay = after[0] - end if after else None
    return result


@dataclass(slots=True)
class Summary:
    """One setting over a set of clips."""

    turn: TurnTaking
    scores: list[Score]

    @property
    def false_triggers(self) -> int:
        """Return the segments with nobody speaking."""
        return sum(s.false_triggers for s in self.scores)

    @property
    def cut_offs(self) -> int:
        """Return the requests committed before the speaker had finished."""
        return sum(s.cut_off for s in self.scores)

    @property
    def missed(self) -> int:
        """Return the requests not heard at all."""
        return sum(s.missed for s in self.scores)

    @property
    def onsets_clipped(self) -> int:
        """Return the requests whose first 20 ms or more were not handed on."""
        return sum(s.onset_clipped >= 0.02 for s in self.scores)

    def delay(self, quantile: float) -> float | None:
        """Return a quantile of the end-of-request delays (seconds)."""
        delays = sorted(s.delay for s in self.scores if s.delay is not None)
        if not delays:
            return None
        return float(np.quantile(delays, quantile))

    @property
    def errors(self) -> int:
        """Return everything that went wrong for a listener."""
        return self.false_triggers + self.cut_offs + self.missed

    def row(self) -> dict[str, Any]:
        """Return the summary as a table row."""
        p50, p95 = self.delay(0.5), self.delay(0.95)
        return {
            "activation_threshold": self.turn.activation_threshold,
            "min_silence_duration": self.turn.min_silence_duration,
            "min_speech_duration": self.turn.min_speech_duration,
            "prefix_padding": self.turn.prefix_padding,
            "min_endpointing_delay": self.turn.min_endpointing_delay,
            "false_triggers": self.false_triggers,
            "cut_offs": self.cut_offs,
            "missed": self.missed,
            "onsets_clipped": self.onsets_clipped,
            "delay_p50_s": None if p50 is None else round(p50, 3),
            "delay_p95_s": None if p95 is None else round(p95, 3),
            "cost_s": round(cost(self), 3),
        }


async def evaluate(
    clips: Iterable[tuple[Clip, bytes]], turn: TurnTaking, vad: Any = None
) -> tuple[Summary, list[Trace]]:
    """Run one setting over clips (label, 16 kHz PCM)."""
    from livekit.plugins import silero

    vad = vad or silero.VAD.load(**vad_options(turn))
    scores, traces = [], []
    for clip, pcm in clips:
        found = await trace(pcm, turn, vad)
        traces.append(found)
        scores.append(score(clip, found, turn))
    return Summary(turn, scores), traces


async def sweep(
    clips: Sequence[tuple[Clip, bytes]], base: TurnTaking, grid: Mapping[str, Sequence[float]]
) -> list[Summary]:
    """Score every combination of the `grid` (TurnTaking fields), the rest as `base`.

    Silero runs once per distinct set of VAD options; the endpointing delay only
    changes when turns are committed, so its values reuse the same traces.
    """
    from livekit.plugins import silero

    cache: dict[tuple[tuple[str, Any], ...], list[Trace]] = {}
    out = []
    for values in product(*grid.values()):
        turn = replace(base, **dict(zip(grid, values, strict=True)))
        key = tuple(sorted(vad_options(turn).items()))
        if key not in cache:
            vad = silero.VAD.load(**vad_options(turn))
            cache[key] = [await trace(pcm, turn, vad) for _, pcm in clips]
        scores = [
            score(clip, found, turn) for (clip, _), found in zip(clips, cache[key], strict=True)
        ]
        out.append(Summary(turn, scores))
    return out


def cost(summary: Summary, wait_per_error: float = 2.0) -> float:
    """Return a setting's cost: its typical wait plus its errors, priced in seconds.

    `wait_per_error` says how many seconds of waiting after every request one error per
    request is worth (a false trigger interrupts the assistant, a cut-off sends half a
    request, a miss loses one). With 2.0, an error on one clip in ten costs as much as
    0.2 s more waiting on every request.
    """
    p50 = summary.delay(0.5)
    per_clip = summary.errors / max(1, len(summary.scores))
    return (p50 if p50 is not None else 10.0) + wait_per_error * per_clip


def recommend(
    summaries: Sequence[Summary], wait_per_error: float = 2.0, shipped: TurnTaking | None = None
) -> Summary:
    """Pick the cheapest setting (see `cost`); among equals, the nearest to `shipped`."""
    shipped = shipped or TurnTaking()

    def changes(turn: TurnTaking) -> int:
        return sum(getattr(turn, name) != getattr(shipped, name) for name in TurnTaking.__slots__)

    return min(
        summaries,
        key=lambda s: (round(cost(s, wait_per_error), 6), s.onsets_clipped, changes(s.turn)),
    )


def option_values(turn: TurnTaking) -> dict[str, float]:
    """Return the settings as Shackleton's option keys (what the options dialog sets)."""
    from custom_components.shackleton import const

    return {
        const.CONF_VAD_ACTIVATION_THRESHOLD: turn.activation_threshold,
        const.CONF_MIN_SPEECH_DURATION: turn.min_speech_duration,
        const.CONF_MIN_SILENCE_DURATION: turn.min_silence_duration,
        const.CONF_PREFIX_PADDING: turn.prefix_padding,
        const.CONF_MIN_ENDPOINTING_DELAY: turn.min_endpointing_delay,
    }
