"""The local audio transport and the provider builders, on their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
import time
import wave

from livekit import rtc
from livekit.plugins import groq, openai
import numpy as np
import pytest

from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    read_wav,
)
from custom_components.shackleton.voice.providers import build_models
from custom_components.shackleton.voice.settings import ProviderSettings, VoiceSettings

AUDIO = Path(__file__).parent / "fixtures" / "audio"


def _write_wav(path: Path, samples: np.ndarray, rate: int, channels: int, width: int = 2) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())


def test_read_wav_downmixes_and_rejects_8_bit(tmp_path: Path) -> None:
    """Stereo is averaged to mono; 8-bit WAV is refused with a clear error."""
    stereo = np.array([[1000, 3000], [-2000, 0]], dtype=np.int16)
    _write_wav(tmp_path / "s.wav", stereo, 16000, 2)
    pcm, rate = read_wav(tmp_path / "s.wav")
    assert rate == 16000
    assert np.frombuffer(pcm, dtype=np.int16).tolist() == [2000, -1000]
    _write_wav(tmp_path / "u8.wav", np.array([1, 2], dtype=np.uint8), 8000, 1, width=1)
    with pytest.raises(ValueError, match="16-bit"):
        read_wav(tmp_path / "u8.wav")


async def test_microphone_paces_resamples_and_closes() -> None:
    """Frames come every 20 ms, clips are resampled, silence fills gaps, close ends it."""
    mic = LocalAudioInput(sample_rate=16000)
    pcm, rate = read_wav(AUDIO / "stop.wav")
    resampled = mic.play_pcm(np.zeros(441, dtype=np.int16).tobytes(), 22050)  # 20 ms
    started = time.monotonic()
    frames = [await anext(mic) for _ in range(10)]
    elapsed = time.monotonic() - started
    assert resampled.done()
    assert all(f.sample_rate == 16000 and f.samples_per_channel == 320 for f in frames)
    assert 0.15 < elapsed < 1.0  # ten frames of 20 ms, paced like a device, not all at once
    pending = mic.play_pcm(pcm, rate)
    mic.close()
    assert pending.cancelled()
    with pytest.raises(StopAsyncIteration):
        await anext(mic)


async def test_microphone_without_pacing_and_from_frames() -> None:
    """`realtime=False` sends as fast as read; frames can come from an iterator."""
    mic = LocalAudioInput(realtime=False)

    async def frames() -> AsyncIterator[rtc.AudioFrame]:
        for _ in range(3):
            yield rtc.AudioFrame(bytes(640), 16000, 1, 320)

    playing = asyncio.ensure_future(mic.play_frames(frames()))
    await asyncio.sleep(0)
    got = [await anext(mic) for _ in range(4)]  # three frames, then silence
    done_at = await playing
    assert done_at <= time.monotonic()
    assert [bytes(f.data) == bytes(640) for f in got] == [True] * 4
    silence = mic.play_silence(0.04)
    for _ in range(3):
        await anext(mic)
    assert silence.done()
    assert await mic.play_frames(_empty()) <= time.monotonic()
    mic.close()


async def _empty() -> AsyncIterator[rtc.AudioFrame]:
    for _ in ():
        yield rtc.AudioFrame(bytes(2), 16000, 1, 1)


async def test_speaker_plays_pauses_resumes_and_clears(tmp_path: Path) -> None:
    """The speaker keeps real time, holds on pause, and stops at once when cleared."""
    speaker = LocalAudioOutput()
    frame = rtc.AudioFrame(bytes(4800 * 2), 24000, 1, 4800)  # 200 ms
    await speaker.capture_frame(frame)
    first = await speaker.wait_for_segment(1, finished=False)
    assert speaker.speaking
    speaker.flush()
    speaker.flush()  # a second flush changes nothing
    speaker.pause()
    await asyncio.sleep(0.3)
    assert first.finished_at is None  # held while paused
    assert first.silenced_at is not None
    speaker.resume()
    speaker.resume()  # resuming twice is harmless
    assert first.silenced_at is None
    await speaker.wait_for_segment(1)
    assert not first.interrupted
    assert first.paused_seconds >= 0.3
    first.write_wav(tmp_path / "reply.wav")
    assert read_wav(tmp_path / "reply.wav")[1] == 24000

    await speaker.capture_frame(frame)
    speaker.pause()
    speaker.clear_buffer()
    second = await speaker.wait_for_segment(2)
    assert second.interrupted
    assert second.played_seconds < 0.1
    speaker.clear_buffer()  # nothing playing: nothing happens
    speaker.flush()


def _provider(kind: str, model: str) -> ProviderSettings:
    return ProviderSettings(kind, model, base_url="http://127.0.0.1:9/v1", api_key="k")  # type: ignore[arg-type]


async def test_build_models_for_each_provider() -> None:
    """Groq, OpenAI and compatible servers get the right plugins; owned clients close."""
    settings = VoiceSettings(
        mode="pipeline",
        stt=_provider("groq", "whisper-large-v3-turbo"),
        llm=_provider("groq", "llama-3.3-70b-versatile"),
        tts=_provider("compatible", "kokoro"),
    )
    models = await asyncio.to_thread(build_models, settings)
    assert isinstance(models.stt, groq.STT)
    assert isinstance(models.llm, groq.LLM)
    assert isinstance(models.tts, openai.TTS)
    assert len(models.owned_clients) == 2  # groq and the compatible server
    await models.aclose()
    assert all(client.is_closed() for client in models.owned_clients)

    realtime = VoiceSettings(
        mode="realtime",
        llm=_provider("openai", "gpt-4.1-mini"),
        realtime=_provider("openai", "gpt-realtime"),
    )
    models = await asyncio.to_thread(build_models, realtime)
    assert isinstance(models.llm, openai.realtime.RealtimeModel)
    assert models.stt is None
    await models.aclose()
