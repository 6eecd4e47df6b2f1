"""Build the STT, LLM, TTS and realtime models of a voice session from its settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from livekit.agents import APIConnectOptions, llm, stt, tts
from livekit.plugins import groq, openai
import openai as openai_sdk
from openai.types.realtime import AudioTranscription
from openai.types.realtime.realtime_audio_input_turn_detection import ServerVad

from .agent_llm import ConversationAgentLLM
from .home import Home
from .home_speech import HomeSTT, HomeTTS
from .openai_client import DEFAULT_BASE_URLS, make_client
from .settings import Limits, ProviderSettings, TurnTaking, VoiceSettings


@dataclass(slots=True)
class Models:
    """The models a session uses; `realtime` replaces STT, LLM and TTS when set."""

    llm: llm.LLM[Any] | llm.RealtimeModel
    stt: stt.STT[Any] | None = None
    tts: tts.TTS[Any] | None = None
    # Clients made here with their own HTTP pools; a host's shared pool is never closed.
    owned_clients: list[openai_sdk.AsyncClient] = field(default_factory=list)

    async def warm_up(self) -> None:
        """Load local models now (in worker threads), not in the first turn."""
        for model in (self.stt, self.tts):
            warm_up = getattr(model, "warm_up", None)
            if warm_up is not None:
                await warm_up()

    async def aclose(self) -> None:
        """Close the models and the clients this module created."""
        for model in (self.stt, self.llm, self.tts):
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
            llm=openai.realtime.RealtimeModel(
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
    stt_model = _stt(settings, settings.stt, client, home)
    llm_model = _llm(settings.llm, client, home)
    tts_model = _tts(settings, settings.tts, client, home)
    return Models(llm=llm_model, stt=stt_model, tts=tts_model, owned_clients=owned())


Client = Callable[[ProviderSettings], openai_sdk.AsyncClient]


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
        return groq.STT(
            model=provider.model,
            client=client(provider),
            api_key=provider.api_key or "no-key",
            language=language,
        )
    return openai.STT(model=provider.model, client=client(provider), language=language)


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
    return openai.TTS(
        model=provider.model,
        voice=settings.voice or "alloy",
        client=client(provider),
        # Raw 24 kHz PCM: nothing to decode between the provider and the room.
        response_format="pcm",
    )
