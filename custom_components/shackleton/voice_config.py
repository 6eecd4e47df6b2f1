"""An entry's settings as the voice engine and the LiveKit clients take them.

The one place that reads provider choices, turn-taking options and LiveKit credentials
out of a config entry; everything else is handed the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .assistants import Assistant, default_assistant
from .const import (
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_URL,
    CONF_MAX_ENDPOINTING_DELAY,
    CONF_MIN_ENDPOINTING_DELAY,
    CONF_MIN_INTERRUPTION_DURATION,
    CONF_MIN_SILENCE_DURATION,
    CONF_MIN_SPEECH_DURATION,
    CONF_PREFIX_PADDING,
    CONF_VAD_ACTIVATION_THRESHOLD,
    CONF_VOICE_MODE,
    DEFAULT_OPTIONS,
    STAGE_LLM,
    STAGE_REALTIME,
    STAGE_STT,
    STAGE_TTS,
    VOICE_MODE_REALTIME,
    api_key_key,
    base_url_key,
    model_key,
    provider_key,
)
from .voice.settings import LiveKitServer, ProviderKind, ProviderSettings, TurnTaking, VoiceSettings

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry


def provider_settings(data: Mapping[str, Any], stage: str) -> ProviderSettings:
    """Return who serves a stage, from an entry's data."""
    kind: ProviderKind = "openai" if stage == STAGE_REALTIME else data[provider_key(stage)]
    return ProviderSettings(
        kind=kind,
        model=data[model_key(stage)],
        base_url=data.get(base_url_key(kind)),
        api_key=data.get(api_key_key(kind)),
    )


def turn_taking_from_options(options: Mapping[str, Any]) -> TurnTaking:
    """Return the turn-taking settings of an entry's options."""
    merged = {**DEFAULT_OPTIONS, **options}
    return TurnTaking(
        activation_threshold=float(merged[CONF_VAD_ACTIVATION_THRESHOLD]),
        min_speech_duration=float(merged[CONF_MIN_SPEECH_DURATION]),
        min_silence_duration=float(merged[CONF_MIN_SILENCE_DURATION]),
        prefix_padding=float(merged[CONF_PREFIX_PADDING]),
        min_interruption_duration=float(merged[CONF_MIN_INTERRUPTION_DURATION]),
        min_endpointing_delay=float(merged[CONF_MIN_ENDPOINTING_DELAY]),
        max_endpointing_delay=float(merged[CONF_MAX_ENDPOINTING_DELAY]),
    )


def assistant_llm(entry: ConfigEntry[Any], assistant: Assistant) -> ProviderSettings:
    """Return the language model an assistant answers with: its own, or the entry's."""
    provider = provider_settings(entry.data, STAGE_LLM)
    return replace(provider, model=assistant.model) if assistant.model else provider


def settings_from_entry(entry: ConfigEntry[Any], default_language: str) -> VoiceSettings:
    """Return the voice settings of an entry: its models, with its first assistant's words.

    The engine's model and voice are the entry's (the provider's default voice), so that
    an assistant leaving them blank gets those; each room's assistant then brings its
    own per session (`HassHome.room_tools`). Speech-to-text listens in the first
    assistant's language, and a realtime model, one voice for every room, speaks in
    the first assistant's voice.
    """
    data = dict(entry.data)
    options = {**DEFAULT_OPTIONS, **entry.options}
    assistant = default_assistant(entry)
    realtime = data.get(CONF_VOICE_MODE) == VOICE_MODE_REALTIME
    return VoiceSettings(
        mode="realtime" if realtime else "pipeline",
        llm=provider_settings(data, STAGE_LLM),
        stt=None if realtime else provider_settings(data, STAGE_STT),
        tts=None if realtime else provider_settings(data, STAGE_TTS),
        realtime=provider_settings(data, STAGE_REALTIME) if realtime else None,
        instructions=assistant.instructions,
        language=assistant.language_or(default_language),
        voice=assistant.voice if realtime else "",
        turn_taking=turn_taking_from_options(options),
    )


def uses_local_models(settings: VoiceSettings) -> bool:
    """Return whether a pipeline runs offline speech models in HA's process."""
    return any(
        stage is not None and stage.kind == "local" for stage in (settings.stt, settings.tts)
    )


def livekit_server(entry: ConfigEntry[Any]) -> LiveKitServer | None:
    """Return the entry's LiveKit server and credentials; None when it has none."""
    if CONF_LIVEKIT_URL not in entry.data:
        return None
    return LiveKitServer(
        entry.data[CONF_LIVEKIT_URL],
        entry.data[CONF_LIVEKIT_API_KEY],
        entry.data[CONF_LIVEKIT_API_SECRET],
    )
