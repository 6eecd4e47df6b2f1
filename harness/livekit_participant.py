"""A person in a real LiveKit room, through LiveKit's `rtc` SDK: a microphone, ears, eyes.

The microphone plays WAV files, and silence between them as a real one does. The ears
time every frame of the agent's audio that arrives over WebRTC, so a test can tell when
a reply started and when it stopped. The eyes keep the agent's `lk.agent.state`
attribute changes and the `lk.transcription` text streams (both sides' captions).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
import time
from typing import Any

from livekit import rtc
import numpy as np

from custom_components.shackleton.voice.local_audio import read_wav

FRAME_SECONDS = 0.02
# A frame is speech when its RMS is above this (int16); the fake TTS's tone is ~3000,
# WebRTC's comfort noise and Opus' silence stay under 50.
AUDIBLE = 300.0


@dataclass
class Heard:
    """One frame of agent audio: when it arrived, and how loud it was."""

    at: float
    rms: float


@dataclass
class Caption:
    """One finished `lk.transcription` stream: whose words, and the words."""

    identity: str
    text: str
    at: float


@dataclass
class Participant:
    """One person: join with a token, speak WAVs, and observe the agent."""

    rate: int = 16000
    room: rtc.Room = field(default_factory=rtc.Room)
    states: list[tuple[float, str]] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    # When someone (the agent) subscribed to the microphone: after a server restart, the
    # agent hears the person again only once it has subscribed anew.
    mic_subscribed: list[float] = field(default_factory=list)
    agent_identity: str | None = None
    _pending: list[np.ndarray] = field(default_factory=list)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _source: rtc.AudioSource | None = None
    _said: asyncio.Event = field(default_factory=asyncio.Event)
    _spoke_until: float = 0.0

    async def join(self, url: str, token: str, *, within: float = 10.0) -> None:
        """Connect, publish a microphone, and start listening to the agent."""
        self.room.on("participant_attributes_changed", self._on_attributes)
        self.room.on("track_subscribed", self._on_track)
        self.room.on(
            "local_track_subscribed", lambda _: self.mic_subscribed.append(time.monotonic())
        )
        self.room.register_text_stream_handler("lk.transcription", self._on_text)
        await asyncio.wait_for(
            self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True)), within
        )
        # A short queue, as a browser's microphone has none: a busy moment on this
        # machine would otherwise leave up to a second of audio waiting ahead of speech.
        self._source = rtc.AudioSource(self.rate, 1, queue_size_ms=100)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._spawn(self._microphone())

    async def leave(self) -> None:
        """Disconnect and stop every task of this participant."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.room.disconnect()
        if self._source is not None:
            await self._source.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The microphone: 20 ms frames in real time, speech when there is some, else silence.
    async def say(self, wav: Path) -> float:
        """Speak a WAV file; return the monotonic time its last frame was sent."""
        pcm, rate = read_wav(wav)
        assert rate == self.rate, f"{wav} is {rate} Hz, the microphone {self.rate} Hz"
        self._said.clear()
        self._pending.append(np.frombuffer(pcm, dtype=np.int16).copy())
        await self._said.wait()
        return self._spoke_until

    async def _microphone(self) -> None:
        assert self._source is not None
        step = int(self.rate * FRAME_SECONDS)
        silence = np.zeros(step, dtype=np.int16)
        buffer = np.zeros(0, dtype=np.int16)
        next_at = time.monotonic()
        while True:
            if self._pending:
                buffer = np.concatenate([buffer, *self._pending])
                self._pending.clear()
            speaking = len(buffer) > 0
            chunk, buffer = buffer[:step], buffer[step:]
            if len(chunk) < step:
                chunk = np.concatenate([chunk, silence[: step - len(chunk)]])
            frame = rtc.AudioFrame(chunk.tobytes(), self.rate, 1, step)
            await self._source.capture_frame(frame)
            if speaking and len(buffer) == 0:
                self._spoke_until = time.monotonic()
                self._said.set()
            next_at += FRAME_SECONDS
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    @property
    def queued_seconds(self) -> float:
        """Return the audio still waiting in the microphone's queue, by the SDK's reckoning."""
        return self._source.queued_duration if self._source is not None else 0.0

    # The ears: every frame of the agent's audio, timed.
    def _on_track(
        self,
        track: rtc.Track,
        _publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self.agent_identity = participant.identity
            self._spawn(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream(track, sample_rate=24000, num_channels=1)
        try:
            async for event in stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float32)
                rms = float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
                self.heard.append(Heard(time.monotonic(), rms))
        finally:
            await stream.aclose()

    def audible_after(self, moment: float) -> float | None:
        """Return when the agent was first heard after `moment`, or None."""
        return next((h.at for h in self.heard if h.at > moment and h.rms > AUDIBLE), None)

    def silent_after(self, moment: float, hold: float = 0.3) -> float | None:
        """Return when the agent went quiet (for `hold` s) after `moment`, or None."""
        quiet_since: float | None = None
        for heard in self.heard:
            if heard.at <= moment:
                continue
            if heard.rms > AUDIBLE:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = heard.at
            elif heard.at - quiet_since >= hold:
                return quiet_since
        return None

    async def wait_audible(self, after: float, within: float = 20.0) -> float:
        """Wait until the agent is heard after `after`; return when."""
        deadline = time.monotonic() + within
        while (found := self.audible_after(after)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the agent was not heard")
            await asyncio.sleep(0.02)
        return found

    async def wait_silent(self, after: float, within: float = 20.0, hold: float = 0.3) -> float:
        """Wait until the agent has been quiet for `hold` s after `after`; return since when."""
        deadline = time.monotonic() + within
        while (found := self.silent_after(after, hold)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the agent did not go quiet")
            await asyncio.sleep(0.02)
        return found

    # The eyes: the agent's state, and both sides' captions.
    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if "lk.agent.state" in changed:
            self.states.append((time.monotonic(), changed["lk.agent.state"]))

    def _on_text(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            if reader.info.attributes.get("lk.transcription_final", "true") == "true":
                self.captions.append(Caption(identity, text, time.monotonic()))

        self._spawn(read())

    def state_path(self) -> list[str]:
        """Return the agent's states in order, repeats folded."""
        path: list[str] = []
        for _, state in self.states:
            if not path or path[-1] != state:
                path.append(state)
        return path
