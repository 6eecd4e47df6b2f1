"""The home's own speech engines (HA's STT and TTS entities) as the session's STT and TTS.

Whatever the user already runs in Home Assistant (Wyoming whisper and piper, Home
Assistant Cloud, …) can listen and speak for Shackleton: the home transcribes a whole
utterance (the session's VAD cuts it) and synthesizes a sentence at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    APIError,
    LanguageCode,
    stt,
    tts,
    utils,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from .home import Home, ToolCallError
from .local_audio import mono_pcm16
from .tts_stream import OneShotStream

# What every HA speech-to-text engine takes: 16 kHz mono 16-bit PCM.
STT_RATE: Final = 16000
# Encoded audio from the home is decoded by LiveKit at this rate.
TTS_RATE: Final = 24000


class HomeSTT(stt.STT[Any]):
    """A Home Assistant speech-to-text engine (entity or legacy provider)."""

    def __init__(self, home: Home, engine: str, *, language: str = "en") -> None:
        """Use the home's engine `engine` (for example stt.faster_whisper)."""
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self._home, self._engine, self._language = home, engine, language

    @property
    def model(self) -> str:
        """Return the engine's id."""
        return self._engine

    @property
    def provider(self) -> str:
        """Return who runs it."""
        return "home-assistant"

    async def _recognize_impl(
        self,
        buffer: utils.AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        spoken = str(language) if language else self._language
        frame = rtc.combine_audio_frames(buffer)
        pcm = await asyncio.get_running_loop().run_in_executor(None, mono_pcm16, frame, STT_RATE)
        try:
            text = await self._home.transcribe(self._engine, pcm, STT_RATE, spoken)
        except ToolCallError as err:
            raise APIError(str(err), retryable=False) from err
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            alternatives=[stt.SpeechData(text=text, language=LanguageCode(spoken))],
        )


class HomeTTS(tts.TTS[Any]):
    """A Home Assistant text-to-speech engine; LiveKit feeds it a sentence at a time."""

    def __init__(self, home: Home, engine: str, *, language: str = "en") -> None:
        """Use the home's engine `engine` (for example tts.piper)."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=TTS_RATE,
            num_channels=1,
        )
        self._home, self._engine, self._language = home, engine, language

    @property
    def model(self) -> str:
        """Return the engine's id."""
        return self._engine

    @property
    def provider(self) -> str:
        """Return who runs it."""
        return "home-assistant"

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        """Speak one piece of text."""
        return OneShotStream(
            tts=self,
            input_text=text,
            conn_options=conn_options,
            speak=self._speak,
            name=self._engine,
        )

    async def _speak(self, text: str) -> tuple[str, int, bytes]:
        extension, data = await self._home.synthesize(self._engine, text, self._language)
        # Encoded (wav, mp3, flac, ogg…): LiveKit decodes it to the session's rate.
        return f"audio/{extension}", TTS_RATE, data
