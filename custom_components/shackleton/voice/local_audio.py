"""A local audio transport: a microphone fed from WAV or PCM, a speaker that records.

Tests, the demo and the notebooks drive real sessions through these instead of a
LiveKit room. Both behave like real devices: the microphone produces a paced frame
every 20 ms (silence when nothing is queued, which VAD needs to hear speech end), and
the speaker plays at real speed, so interruptions cut what has not been heard yet.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
import time
import wave

from livekit import rtc
from livekit.agents.voice import io
import numpy as np

FRAME_MS = 20


@dataclass(slots=True)
class _Marker:
    """Queued after a clip; resolved when the microphone has sent the clip's last frame."""

    done: asyncio.Future[float]


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Return mono 16-bit PCM and its sample rate from a WAV file (blocking: use an executor)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    if channels > 1:
        samples = np.frombuffer(pcm, dtype=np.int16).reshape(-1, channels)
        pcm = samples.mean(axis=1).astype(np.int16).tobytes()
    return pcm, rate


class LocalAudioInput(io.AudioInput):
    """A microphone that speaks queued clips in real time and is silent in between."""

    def __init__(self, *, sample_rate: int = 16000, realtime: bool = True) -> None:
        """Make a microphone at `sample_rate`; `realtime=False` sends frames as fast as read."""
        super().__init__(label="shackleton-local-mic")
        self.sample_rate = sample_rate
        self._realtime = realtime
        self._samples_per_frame = sample_rate * FRAME_MS // 1000
        self._queue: deque[rtc.AudioFrame | _Marker] = deque()
        self._silence = rtc.AudioFrame(
            bytes(self._samples_per_frame * 2), sample_rate, 1, self._samples_per_frame
        )
        self._next_at: float | None = None
        self._closed = False

    def play_pcm(self, pcm: bytes, sample_rate: int) -> asyncio.Future[float]:
        """Queue 16-bit mono PCM; the future resolves (monotonic time) after its last frame."""
        if sample_rate != self.sample_rate:
            pcm = resample(pcm, sample_rate, self.sample_rate)
        step = self._samples_per_frame * 2
        for start in range(0, len(pcm), step):
            chunk = pcm[start : start + step].ljust(step, b"\0")
            self._queue.append(rtc.AudioFrame(chunk, self.sample_rate, 1, self._samples_per_frame))
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.append(_Marker(done))
        return done

    def play_silence(self, seconds: float) -> asyncio.Future[float]:
        """Queue explicit silence."""
        return self.play_pcm(bytes(int(seconds * self.sample_rate) * 2), self.sample_rate)

    async def play_frames(self, frames: AsyncIterable[rtc.AudioFrame]) -> float:
        """Speak frames from an async iterator; return when the last one was sent."""
        last: asyncio.Future[float] | None = None
        async for frame in frames:
            last = self.play_pcm(bytes(frame.data), frame.sample_rate)
        return await last if last is not None else time.monotonic()

    def close(self) -> None:
        """Stop the microphone: the session sees the end of its audio."""
        self._closed = True
        for item in self._queue:
            if isinstance(item, _Marker) and not item.done.done():
                item.done.cancel()
        self._queue.clear()

    async def __anext__(self) -> rtc.AudioFrame:
        """Return the next 20 ms frame, paced like a real microphone."""
        if self._closed:
            raise StopAsyncIteration
        if self._realtime:
            now = time.monotonic()
            if self._next_at is None or self._next_at < now - 0.2:
                self._next_at = now  # first frame, or the consumer stalled: resync
            await asyncio.sleep(max(0.0, self._next_at - now))
            self._next_at += FRAME_MS / 1000
        if self._closed:
            raise StopAsyncIteration
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, _Marker):
                if not item.done.done():
                    item.done.set_result(time.monotonic())
                continue
            return item
        return self._silence


def resample(pcm: bytes, rate_in: int, rate_out: int) -> bytes:
    """Resample mono 16-bit PCM with LiveKit's native resampler (no delay, exact length)."""
    resampler = rtc.AudioResampler(rate_in, rate_out, quality=rtc.AudioResamplerQuality.HIGH)
    frame = rtc.AudioFrame(pcm, rate_in, 1, len(pcm) // 2)
    out = [bytes(f.data) for f in resampler.push(frame)]
    out += [bytes(f.data) for f in resampler.flush()]
    return b"".join(out)


def mono_pcm16(frame: rtc.AudioFrame, rate: int) -> bytes:
    """Return a frame's audio as mono 16-bit PCM at `rate`."""
    samples = np.frombuffer(frame.data, dtype=np.int16)
    if frame.num_channels > 1:
        samples = samples.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
    pcm = samples.tobytes()
    return pcm if frame.sample_rate == rate else resample(pcm, frame.sample_rate, rate)


@dataclass(slots=True)
class Segment:
    """One stretch of agent speech, as the speaker played it."""

    started_at: float  # monotonic time of its first frame
    sample_rate: int = 24000
    pcm: bytearray = field(default_factory=bytearray)
    flushed: bool = False
    finished_at: float | None = None
    interrupted: bool = False
    played_seconds: float = 0.0
    paused_seconds: float = 0.0
    # When the listener stopped hearing it: the first pause, or the end.
    silenced_at: float | None = None

    @property
    def duration(self) -> float:
        """Return the seconds of audio received."""
        return len(self.pcm) / 2 / self.sample_rate

    def write_wav(self, path: str | Path) -> None:
        """Save what was received (blocking)."""
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(bytes(self.pcm))


class LocalAudioOutput(io.AudioOutput):
    """A speaker that plays at real speed and keeps every segment it was given."""

    def __init__(self) -> None:
        """Make an empty speaker."""
        super().__init__(
            label="shackleton-local-speaker",
            # Pausable, like a room's track: LiveKit pauses on a possible interruption
            # and resumes when it was a false one (a cough, a "mm-hm").
            capabilities=io.AudioOutputCapabilities(pause=True),
        )
        self.segments: list[Segment] = []
        self._current: Segment | None = None
        self._finish: asyncio.TimerHandle | None = None
        self._paused_at: float | None = None
        self._changed = asyncio.Event()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        """Receive a frame of agent speech."""
        await super().capture_frame(frame)
        if self._current is None:
            self._current = Segment(started_at=time.monotonic(), sample_rate=frame.sample_rate)
            self.segments.append(self._current)
            self.on_playback_started(created_at=time.time())
            self._notify()
        self._current.pcm += bytes(frame.data)

    def flush(self) -> None:
        """End the segment; it finishes when its audio has had time to play."""
        super().flush()
        segment = self._current
        if segment is None or segment.flushed:
            return
        segment.flushed = True
        if self._paused_at is None:
            self._schedule_finish(segment)

    def _schedule_finish(self, segment: Segment) -> None:
        end = segment.started_at + segment.duration
        loop = asyncio.get_running_loop()
        self._finish = loop.call_at(
            loop.time() + max(0.0, end - time.monotonic()), self._finished, segment
        )

    def pause(self) -> None:
        """Hold playback where it is."""
        if self._paused_at is None:
            self._paused_at = time.monotonic()
            if self._current is not None and self._current.silenced_at is None:
                self._current.silenced_at = self._paused_at
            if self._finish is not None:
                self._finish.cancel()
                self._finish = None

    def resume(self) -> None:
        """Go on from where playback was held."""
        if self._paused_at is None:
            return
        held = time.monotonic() - self._paused_at
        self._paused_at = None
        segment = self._current
        if segment is not None:
            segment.started_at += held  # the clock stood still while paused
            segment.paused_seconds += held
            segment.silenced_at = None  # a false interruption: it plays on
            if segment.flushed:
                self._schedule_finish(segment)

    def clear_buffer(self) -> None:
        """Stop at once: the rest of the segment is never heard."""
        segment = self._current
        if segment is None:
            return
        if self._finish is not None:
            self._finish.cancel()
            self._finish = None
        now = self._paused_at if self._paused_at is not None else time.monotonic()
        self._paused_at = None
        played = min(segment.duration, max(0.0, now - segment.started_at))
        self._end(segment, played, interrupted=True)

    def _finished(self, segment: Segment) -> None:
        self._finish = None
        self._end(segment, segment.duration, interrupted=False)

    def _end(self, segment: Segment, played: float, *, interrupted: bool) -> None:
        segment.finished_at = time.monotonic()
        if segment.silenced_at is None or not interrupted:
            segment.silenced_at = segment.finished_at
        segment.interrupted = interrupted
        segment.played_seconds = played
        self._current = None
        self.on_playback_finished(playback_position=played, interrupted=interrupted)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed.clear()

    @property
    def speaking(self) -> bool:
        """Return whether a segment is playing now."""
        return self._current is not None

    async def wait_for_segment(self, count: int = 1, *, finished: bool = True) -> Segment:
        """Wait until `count` segments have started (and finished, by default)."""
        while True:
            if len(self.segments) >= count:
                segment = self.segments[count - 1]
                if not finished or segment.finished_at is not None:
                    return segment
            await self._changed.wait()
