"""A LiveKit TTS stream whose audio comes whole from one call (a local model, the home)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
import uuid

from livekit.agents import APIConnectOptions, APIError, tts

# Text → (MIME type, sample rate, audio): raw "audio/pcm", or encoded for LiveKit to decode.
Speak = Callable[[str], Awaitable[tuple[str, int, bytes]]]


class OneShotStream(tts.ChunkedStream):
    """Speak one piece of text with `speak`; its failures are failed requests, not crashes."""

    def __init__(
        self,
        *,
        tts: tts.TTS[Any],
        input_text: str,
        conn_options: APIConnectOptions,
        speak: Speak,
        name: str,
    ) -> None:
        """Use `speak` for the audio; `name` says who failed."""
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._speak, self._name = speak, name

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        try:
            mime_type, rate, data = await self._speak(self.input_text)
        except Exception as err:  # the engine's own errors: an apology, not a crash
            raise APIError(f"{self._name} failed: {err}", retryable=False) from err
        output_emitter.initialize(
            request_id=uuid.uuid4().hex, sample_rate=rate, num_channels=1, mime_type=mime_type
        )
        output_emitter.push(data)
        output_emitter.flush()
