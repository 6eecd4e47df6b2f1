"""One VAD pass per session, shared by turn-taking and speech-to-text.

With a speech-to-text provider that does not stream (OpenAI, Groq, OpenAI-compatible
servers), LiveKit wraps it in a `StreamAdapter` that runs its own VAD stream over the
same audio the session's turn-taking already analyses: silero ran twice per session.
Here the session's VAD streams lead, and the adapter's stream replays their speech
boundaries (with the speech audio) instead of running the model again.

Caveat: LiveKit may feed speech-to-text silence instead of the microphone during AEC
warm-up or uninterruptible speech; the replayed segments carry the real audio. The
engine disables AEC warm-up and never speaks uninterruptibly.
"""

from __future__ import annotations

import asyncio
import weakref

from livekit.agents import vad as vad_mod
from livekit.agents.utils import aio

_BOUNDARIES = (vad_mod.VADEventType.START_OF_SPEECH, vad_mod.VADEventType.END_OF_SPEECH)


class SharedVAD(vad_mod.VAD):
    """A session's VAD: every stream it makes also feeds its speech-to-text follower."""

    def __init__(self, inner: vad_mod.VAD) -> None:
        """Share `inner` (its options, and updates to them, apply as they are)."""
        super().__init__(capabilities=inner.capabilities)
        self._inner = inner
        self._followers: weakref.WeakSet[_FollowerStream] = weakref.WeakSet()
        self._leaders: weakref.WeakSet[_LeaderStream] = weakref.WeakSet()
        self.follower = _FollowerVAD(self)

    @property
    def model(self) -> str:
        """Return the inner VAD's model."""
        return self._inner.model

    @property
    def provider(self) -> str:
        """Return the inner VAD's provider."""
        return self._inner.provider

    def stream(self) -> vad_mod.VADStream:
        """Return a stream that analyses audio and shares its speech boundaries."""
        leader = _LeaderStream(self, self._inner.stream())
        self._leaders.add(leader)
        return leader

    async def aclose(self) -> None:
        """Close every stream still open (the session normally closes its own)."""
        for stream in [*self._leaders, *self._followers]:
            await stream.aclose()

    def _share(self, event: vad_mod.VADEvent) -> None:
        for follower in list(self._followers):
            follower.deliver(event)


class _LeaderStream(vad_mod.VADStream):
    def __init__(self, shared: SharedVAD, inner: vad_mod.VADStream) -> None:
        self._shared = shared
        self._inner = inner
        super().__init__(shared)

    async def _main_task(self) -> None:
        async def forward() -> None:
            async for item in self._input_ch:
                if isinstance(item, self._FlushSentinel):
                    self._inner.flush()
                else:
                    self._inner.push_frame(item)
            self._inner.end_input()

        forward_task = asyncio.create_task(forward())
        try:
            async for event in self._inner:
                self._event_ch.send_nowait(event)
                if event.type in _BOUNDARIES:
                    self._shared._share(event)  # noqa: SLF001 - same module
        finally:
            await aio.cancel_and_wait(forward_task)
            await self._inner.aclose()


class _FollowerVAD(vad_mod.VAD):
    """What speech-to-text's adapter sees: streams that replay the session's VAD."""

    def __init__(self, shared: SharedVAD) -> None:
        super().__init__(capabilities=shared.capabilities)
        self._shared = shared

    @property
    def model(self) -> str:
        return self._shared.model

    @property
    def provider(self) -> str:
        return self._shared.provider

    def stream(self) -> vad_mod.VADStream:
        follower = _FollowerStream(self)
        self._shared._followers.add(follower)  # noqa: SLF001 - same module
        return follower


class _FollowerStream(vad_mod.VADStream):
    """Takes audio and ignores it: its speech boundaries come from the leader."""

    def deliver(self, event: vad_mod.VADEvent) -> None:
        if not self._event_ch.closed:
            self._event_ch.send_nowait(event)

    async def _main_task(self) -> None:
        async for _ in self._input_ch:
            pass  # the leader analyses the same audio
