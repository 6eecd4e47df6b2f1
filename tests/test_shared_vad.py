"""One silero pass per session: speech-to-text replays the turn-taking VAD's segments."""

from __future__ import annotations

from pathlib import Path

from livekit import rtc
from livekit.agents import vad as vad_mod
from livekit.plugins import silero

from custom_components.shackleton.voice.engine import vad_options
from custom_components.shackleton.voice.local_audio import read_wav
from custom_components.shackleton.voice.settings import TurnTaking
from custom_components.shackleton.voice.shared_vad import SharedVAD

AUDIO = Path(__file__).parent / "fixtures" / "audio"
RATE = 16000
STEP = RATE // 50  # 20 ms frames


def _frames(pcm: bytes) -> list[rtc.AudioFrame]:
    padded = bytes(RATE) + pcm + bytes(RATE * 2)  # 0.5 s before, 1 s after
    return [
        rtc.AudioFrame(padded[i : i + STEP * 2].ljust(STEP * 2, b"\0"), RATE, 1, STEP)
        for i in range(0, len(padded), STEP * 2)
    ]


async def _events(stream: vad_mod.VADStream) -> list[vad_mod.VADEvent]:
    return [event async for event in stream]


async def test_follower_replays_the_leaders_speech_segments() -> None:
    """The follower yields the leader's speech boundaries, audio included, and runs no model."""
    inner = silero.VAD.load(**vad_options(TurnTaking()))
    shared = SharedVAD(inner)
    assert (shared.model, shared.provider) == (inner.model, inner.provider)
    assert (shared.follower.model, shared.follower.provider) == (inner.model, inner.provider)
    leader, follower = shared.stream(), shared.follower.stream()
    pcm, _ = read_wav(AUDIO / "turn_on_kitchen_light.wav")
    for frame in _frames(pcm):
        leader.push_frame(frame)
        follower.push_frame(frame)  # ignored: the leader hears the same audio
    follower.flush()  # ignored too: segments are the leader's
    leader.end_input()
    led = await _events(leader)
    follower.end_input()
    followed = await _events(follower)

    kinds = [event.type for event in followed]
    assert kinds == [vad_mod.VADEventType.START_OF_SPEECH, vad_mod.VADEventType.END_OF_SPEECH]
    boundaries = [event for event in led if event.type != vad_mod.VADEventType.INFERENCE_DONE]
    assert followed == boundaries  # the very same events, with the speech audio
    speech = sum(frame.samples_per_channel for frame in followed[-1].frames) / RATE
    assert len(pcm) / 2 / RATE <= speech <= len(pcm) / 2 / RATE + 1.0
    # The model ran once per 32 ms window for the leader; the follower ran nothing.
    windows = [event for event in led if event.type == vad_mod.VADEventType.INFERENCE_DONE]
    assert len(windows) == len(_frames(pcm)) * STEP // 512
    await leader.aclose()
    await follower.aclose()


async def _starts(shared: SharedVAD, pcm: bytes, *, flush_at: int | None) -> int:
    leader = shared.stream()
    for number, frame in enumerate(_frames(pcm)):
        if number == flush_at:
            leader.flush()
        leader.push_frame(frame)
    leader.end_input()
    events = await _events(leader)
    await leader.aclose()
    assert leader._inner._event_ch.closed  # closing reached silero's stream
    return sum(event.type == vad_mod.VADEventType.START_OF_SPEECH for event in events)


async def test_leader_flush_and_close_reach_the_model_stream() -> None:
    """A flush mid-word resets silero (a new segment starts); closing closes its stream."""
    shared = SharedVAD(silero.VAD.load(**vad_options(TurnTaking())))
    pcm, _ = read_wav(AUDIO / "turn_on_kitchen_light.wav")
    assert await _starts(shared, pcm, flush_at=None) == 1
    assert await _starts(shared, pcm, flush_at=50) == 2  # 0.5 s into the words
