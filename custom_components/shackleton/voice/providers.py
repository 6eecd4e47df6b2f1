"""Build the STT, LLM, TTS and realtime models of a voice session from its settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import partial
import time
from typing import Any, NamedTuple, cast

import aiohttp
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APITimeoutError,
    llm,
    stt,
    tts,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import AudioBuffer
from livekit.plugins import groq, openai
from livekit.plugins.openai import tts as openai_tts
import openai as openai_sdk
from openai.types.realtime import AudioTranscription
from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad

from .agent_llm import ConversationAgentLLM
from .home import Home
from .home_speech import HomeSTT, HomeTTS
from .openai_client import DEFAULT_BASE_URLS, make_client
from .settings import Limits, ProviderSettings, TurnTaking, VoiceSettings


class Variant(NamedTuple):
    """A persona's own language model and TTS; None where it shares the engine's."""

    llm: llm.LLM[Any] | None = None
    tts: tts.TTS[Any] | None = None


@dataclass(slots=True)
class Models:
    """The models a session uses; `realtime` replaces STT, LLM and TTS when set."""

    llm: llm.LLM[Any] | llm.RealtimeModel
    stt: stt.STT[Any] | None = None
    tts: tts.TTS[Any] | None = None
    # Clients made here with their own HTTP pools; a host's shared pool is never closed.
    owned_clients: list[openai_sdk.AsyncClient] = field(default_factory=list)
    # Builds a persona's own language model and voice from a model and voice name.
    variant: Callable[[str, str], Variant] | None = None
    _variants: dict[tuple[str, str], Variant] = field(default_factory=dict)

    def for_persona(self, model: str, voice: str) -> Variant:
        """Return the language model and TTS a persona speaks with (None: the shared one).

        Built once per (model, voice) and shared by the rooms that use them.
        """
        if self.variant is None or not (model or voice):
            return Variant()
        key = (model, voice)
        if key not in self._variants:
            self._variants[key] = self.variant(model, voice)
        return self._variants[key]

    async def warm_up(self) -> None:
        """Load local models now (in worker threads), not in the first turn."""
        for model in (self.stt, self.tts):
            warm_up = getattr(model, "warm_up", None)
            if warm_up is not None:
                await warm_up()

    async def aclose(self) -> None:
        """Close the models and the clients this module created."""
        variants = [model for variant in self._variants.values() for model in variant]
        for model in (self.stt, self.llm, self.tts, *variants):
            if model is not None:
                await model.aclose()
        for client in self.owned_clients:
            await client.close()


def connect_options(limits: Limits) -> APIConnectOptions:
    """Return the per-request budget every provider call gets."""
    return APIConnectOptions(
        max_retry=limits.max_retry,
        retry_interval=limits.retry_interval,
        timeout=limits.request_timeout,
    )


def realtime_turn_detection(turn: TurnTaking) -> ServerVad:
    """Return the realtime model's server VAD for our turn-taking settings.

    It ends the turn after the endpointing delay of silence (the wait people configure;
    the model has no separate segment silence).
    """
    wait = max(turn.min_silence_duration, turn.min_endpointing_delay)
    return ServerVad(
        type="server_vad",
        threshold=turn.activation_threshold,
        prefix_padding_ms=round(turn.prefix_padding * 1000),
        silence_duration_ms=round(wait * 1000),
        create_response=True,
        interrupt_response=True,
    )


def build_models(
    settings: VoiceSettings,
    http_client: Any = None,
    http_session: aiohttp.ClientSession | None = None,
    home: Home | None = None,
) -> Models:
    """Build every model the settings name; see `make_client` about blocking.

    `http_client` is the host's shared HTTP client or None: an httpx2 client under HA
    (openai 3's own), whatever httpx the SDK takes elsewhere, so it is not typed here.

    Local models are only described here; `Models.warm_up` loads them.
    """
    clients: dict[tuple[str, str | None, str | None], openai_sdk.AsyncClient] = {}

    def client(provider: ProviderSettings) -> openai_sdk.AsyncClient:
        key = (provider.kind, provider.base_url, provider.api_key)
        if key not in clients:
            clients[key] = make_client(provider, settings.limits, http_client)
        return clients[key]

    def owned() -> list[openai_sdk.AsyncClient]:
        return [] if http_client is not None else list(clients.values())

    if settings.mode == "realtime":
        if settings.realtime is None:
            raise ValueError("realtime mode needs realtime provider settings")
        return Models(
            llm=BoundedRealtimeModel(
                gap=settings.limits.request_timeout * 2,
                model=settings.realtime.model,
                voice=settings.voice or "marin",
                api_key=settings.realtime.api_key or "no-key",
                base_url=settings.realtime.base_url or DEFAULT_BASE_URLS["openai"],
                http_session=http_session,
                conn_options=connect_options(settings.limits),
                # The model's own turn detection, from the same turn-taking options.
                turn_detection=realtime_turn_detection(settings.turn_taking),
                input_audio_transcription=AudioTranscription(
                    model="gpt-4o-mini-transcribe", language=settings.language.split("-")[0]
                ),
            )
        )
    if settings.stt is None or settings.tts is None:
        raise ValueError("pipeline mode needs STT and TTS provider settings")
    if home is None and "home_assistant" in (
        settings.stt.kind,
        settings.llm.kind,
        settings.tts.kind,
    ):
        raise ValueError("the home's own engines need the home")
    return Models(
        stt=_stt(settings, settings.stt, client, home),
        llm=_llm(settings.llm, client, home),
        tts=_tts(settings, settings.tts, client, home),
        owned_clients=owned(),
        variant=partial(_variant, settings, client, home),
    )


def _variant(
    settings: VoiceSettings, client: Client, home: Home | None, model: str, voice: str
) -> Variant:
    """Return a persona's own models where it names ones the engine does not use.

    Only OpenAI-compatible providers take a model or voice per request; the home's own
    agent and engines, and the local voice, stay the engine's.
    """
    llm_own = model and model != settings.llm.model and settings.llm.kind != "home_assistant"
    tts_kind = settings.tts.kind if settings.tts else "local"
    tts_own = voice and voice != settings.voice and tts_kind not in ("local", "home_assistant")
    return Variant(
        _llm(replace(settings.llm, model=model), client, home) if llm_own else None,
        _tts(replace(settings, voice=voice), settings.tts, client, home)
        if tts_own and settings.tts
        else None,
    )


Client = Callable[[ProviderSettings], openai_sdk.AsyncClient]


async def _bounded(recognition: Awaitable[stt.SpeechEvent], seconds: float) -> stt.SpeechEvent:
    """Return a transcript, or raise LiveKit's (retryable) timeout after `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            return await recognition
    except TimeoutError:
        raise APITimeoutError(f"no transcript within {seconds:g} s") from None


class BoundedOpenAISTT(openai.STT):
    """OpenAI-compatible speech to text whose every try is bounded.

    The plugins read the answer with a fixed 30 s timeout, twice over with the retry,
    and the turn's watchdog only starts once there is a transcript: a provider that
    accepts the audio and never answers would leave the user in silence for a minute.
    Each try gets its share of the turn's deadline instead.
    """

    def __init__(self, *, attempt_timeout: float, **kwargs: Any) -> None:
        """Build the plugin's STT; `attempt_timeout` bounds each try, in seconds."""
        super().__init__(**kwargs)
        self._attempt_timeout = attempt_timeout

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str | list[str]] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        return await _bounded(
            super()._recognize_impl(buffer, language=language, conn_options=conn_options),
            self._attempt_timeout,
        )


class BoundedGroqSTT(BoundedOpenAISTT, groq.STT):
    """Groq's speech to text (the OpenAI plugin's, on Groq), each try bounded."""


class _Pushes:
    """An audio emitter that notes each push (everything else goes to the real one)."""

    def __init__(self, emitter: tts.AudioEmitter, pushed: Callable[[], None]) -> None:
        self._emitter = emitter
        self._pushed = pushed

    def push(self, data: bytes) -> None:
        self._pushed()
        self._emitter.push(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._emitter, name)


class _GapBoundedStream(openai_tts.ChunkedStream):
    """The plugin's synthesis, abandoned when the audio stops coming for `gap` seconds."""

    def __init__(self, *, gap: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gap = gap

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        loop = asyncio.get_running_loop()
        heard = False
        try:
            async with asyncio.timeout(self._gap) as timer:

                def pushed() -> None:
                    nonlocal heard
                    heard = True
                    timer.reschedule(loop.time() + self._gap)

                await super()._run(cast(tts.AudioEmitter, _Pushes(output_emitter, pushed)))
        except TimeoutError:
            # Once part of it played, asking again would repeat those words: give up.
            raise APITimeoutError(f"no audio for {self._gap:g} s", retryable=not heard) from None


class BoundedOpenAITTS(openai.TTS):
    """OpenAI-compatible text to speech whose audio may not stall.

    The plugin reads the audio with a fixed 30 s timeout. Once the first chunk has
    played the turn counts as answered, so the turn's watchdog no longer helps: a
    provider that stops sending mid-sentence would leave the room silent for 30 s
    (twice, with the retry). Here `gap` seconds without audio end the synthesis as
    a failure, which the room answers with the apology.
    """

    def __init__(self, *, gap: float, **kwargs: Any) -> None:
        """Build the plugin's TTS; `gap` bounds the wait for each chunk of audio."""
        super().__init__(**kwargs)
        self._gap = gap

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> openai_tts.ChunkedStream:
        """Synthesize `text`, bounded between chunks."""
        return _GapBoundedStream(
            gap=self._gap, tts=self, input_text=text, conn_options=conn_options
        )


class AnswerLost(APIConnectionError):
    """A realtime answer broke off: the connection dropped, or the model fell silent."""


class _StallGuard:
    """Ends a realtime response whose events stop coming for `gap` seconds.

    Once the model speaks the turn counts as answered, so the turn's watchdog no longer
    helps; a model that stops half-way through its answer (the socket still open) would
    leave the room silent. The guard reports it as the connection failing for good: the
    room restarts and apologises.
    """

    def __init__(self, session: Any, gap: float) -> None:
        self._session = session
        self._gap = gap
        self._timer: asyncio.TimerHandle | None = None
        session.on("openai_server_event_received", self._on_event)
        session.on("session_reconnected", self._on_reconnected)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "response.done" or (kind != "response.created" and self._timer is None):
            self._cancel()
            return
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(self._gap, self._stalled)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_reconnected(self, _event: object) -> None:
        if self._timer is None:
            return
        # The connection dropped mid-answer: LiveKit reconnected and dropped the rest.
        self._cancel()
        self._report("the realtime connection dropped mid-answer", recoverable=True)

    def _stalled(self) -> None:
        self._timer = None
        if self._session.has_active_generation:
            message = f"the realtime model stopped answering for {self._gap:g} s"
            self._report(message, recoverable=False)

    def _report(self, message: str, *, recoverable: bool) -> None:
        self._session.emit(
            "error",
            llm.RealtimeModelError(
                timestamp=time.time(), label=self._session.realtime_model.label,
                error=AnswerLost(message), recoverable=recoverable,
            ),
        )  # fmt: skip


class BoundedRealtimeModel(openai.realtime.RealtimeModel):
    """OpenAI's realtime model, each response guarded against stalling (_StallGuard)."""

    def __init__(self, *, gap: float, **kwargs: Any) -> None:
        """Build the plugin's model; `gap` bounds the wait between a response's events."""
        super().__init__(**kwargs)
        self._gap = gap

    def session(self, *, turn_detection_disabled: bool = False) -> Any:
        """Return a new session, guarded."""
        session = super().session(turn_detection_disabled=turn_detection_disabled)
        _StallGuard(session, self._gap)
        return session


def stt_attempt_timeout(limits: Limits) -> float:
    """Return each speech-to-text try's share of the turn's deadline."""
    return limits.turn_deadline / (limits.max_retry + 1)


def _stt(
    settings: VoiceSettings, provider: ProviderSettings, client: Client, home: Home | None
) -> stt.STT[Any]:
    language = settings.language.split("-")[0]
    if provider.kind == "home_assistant" and home is not None:
        return HomeSTT(home, provider.model, language=settings.language)
    if provider.kind == "local":
        from .local_models import WhisperSTT

        return WhisperSTT(model=provider.model, language=language)
    if provider.kind == "groq":
        # The groq plugin insists on a key even when given a client.
        return BoundedGroqSTT(
            attempt_timeout=stt_attempt_timeout(settings.limits),
            model=provider.model,
            client=client(provider),
            api_key=provider.api_key or "no-key",
            language=language,
        )
    return BoundedOpenAISTT(
        attempt_timeout=stt_attempt_timeout(settings.limits),
        model=provider.model,
        client=client(provider),
        language=language,
    )


def _llm(provider: ProviderSettings, client: Client, home: Home | None) -> llm.LLM[Any]:
    if provider.kind == "home_assistant" and home is not None:
        return ConversationAgentLLM(home, provider.model)
    if provider.kind == "groq":
        return groq.LLM(
            model=provider.model, client=client(provider), api_key=provider.api_key or "no-key"
        )
    return openai.LLM(model=provider.model, client=client(provider))


def _tts(
    settings: VoiceSettings, provider: ProviderSettings, client: Client, home: Home | None
) -> tts.TTS[Any]:
    if provider.kind == "home_assistant" and home is not None:
        return HomeTTS(home, provider.model, language=settings.language)
    if provider.kind == "local":
        from .local_models import PiperTTS

        return PiperTTS(model=provider.model)
    return BoundedOpenAITTS(
        # The SDK's read timeout in make_client: no chunk for this long is a failure.
        gap=settings.limits.request_timeout * 2,
        model=provider.model,
        voice=settings.voice or "alloy",
        client=client(provider),
        # Raw 24 kHz PCM: nothing to decode between the provider and the room.
        response_format="pcm",
    )
