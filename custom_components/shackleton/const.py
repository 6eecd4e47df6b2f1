"""Constants for the Shackleton integration."""

from __future__ import annotations

from collections.abc import Collection
import logging
from typing import Final

DOMAIN: Final = "shackleton"
LOGGER = logging.getLogger(__package__)

# Entry data: the LiveKit server (absent when the user skipped that step).
CONF_LIVEKIT_URL: Final = "livekit_url"
CONF_LIVEKIT_API_KEY: Final = "livekit_api_key"
CONF_LIVEKIT_API_SECRET: Final = "livekit_api_secret"  # noqa: S105 - a key name, not a secret

# Entry data: the assistant.
CONF_VOICE_MODE: Final = "voice_mode"
VOICE_MODE_PIPELINE: Final = "pipeline"
VOICE_MODE_REALTIME: Final = "realtime"
VOICE_MODES: Final = (VOICE_MODE_PIPELINE, VOICE_MODE_REALTIME)

STAGE_STT: Final = "stt"
STAGE_LLM: Final = "llm"
STAGE_TTS: Final = "tts"
STAGE_REALTIME: Final = "realtime"
PIPELINE_STAGES: Final = (STAGE_STT, STAGE_LLM, STAGE_TTS)


def provider_key(stage: str) -> str:
    """Return the entry-data key naming the provider of a stage."""
    return f"{stage}_provider"


def model_key(stage: str) -> str:
    """Return the entry-data key naming the model of a stage."""
    return f"{stage}_model"


def api_key_key(provider: str) -> str:
    """Return the entry-data key holding a provider's API key."""
    return f"{provider}_api_key"


def base_url_key(provider: str) -> str:
    """Return the entry-data key holding a provider's base URL."""
    return f"{provider}_base_url"


# Assistants (config subentries): each a persona with its own agent and device.
SUBENTRY_ASSISTANT: Final = "assistant"
CONF_INSTRUCTIONS: Final = "instructions"
CONF_LANGUAGE: Final = "language"
CONF_VOICE: Final = "voice"
# The assistant's language model; empty: the entry's.
CONF_MODEL: Final = "model"
# Options: where the voice engine runs.
CONF_WORKER: Final = "voice_worker"
WORKER_IN_HA: Final = "home_assistant"
WORKER_EXTERNAL: Final = "external"
WORKER_PLACEMENTS: Final = (WORKER_IN_HA, WORKER_EXTERNAL)
# Options: turn-taking (seconds, except the threshold).
CONF_VAD_ACTIVATION_THRESHOLD: Final = "vad_activation_threshold"
CONF_MIN_SPEECH_DURATION: Final = "min_speech_duration"
CONF_MIN_SILENCE_DURATION: Final = "min_silence_duration"
CONF_PREFIX_PADDING: Final = "prefix_padding"
CONF_MIN_INTERRUPTION_DURATION: Final = "min_interruption_duration"
CONF_MIN_ENDPOINTING_DELAY: Final = "min_endpointing_delay"
CONF_MAX_ENDPOINTING_DELAY: Final = "max_endpointing_delay"
# Options: tools.
CONF_TOOL_GROUPS: Final = "tool_groups"
CONF_CONFIRM_DOMAINS: Final = "confirm_domains"
# Options: rooms.
CONF_AUTO_JOIN_PREFIX: Final = "auto_join_prefix"
# Options: announcements, when nobody is in the room.
CONF_ANNOUNCE_NOBODY: Final = "announce_when_nobody_listens"
CONF_ANNOUNCE_QUEUE_MINUTES: Final = "announce_queue_minutes"
NOBODY_DROP: Final = "drop"
NOBODY_QUEUE: Final = "queue"
NOBODY_NOTIFY: Final = "notify"
NOBODY_POLICIES: Final = (NOBODY_DROP, NOBODY_QUEUE, NOBODY_NOTIFY)
PRIORITY_NORMAL: Final = "normal"
PRIORITY_HIGH: Final = "high"
# Options: the dashboard card.
CONF_DASHBOARD_ROOMS: Final = "dashboard_rooms"
CONF_CARD_TOKEN_MINUTES: Final = "card_token_minutes"  # noqa: S105 - a key name
CONF_LIVEKIT_BROWSER_URL: Final = "livekit_browser_url"
CARD_TOKEN_MAX_MINUTES: Final = 10
# The longest text Shackleton sends a language model in one message (a request, a page of
# context); anything longer is refused before any provider is asked.
MAX_TEXT_LENGTH: Final = 8000
# Per HA user: this many card tokens in any window of this many seconds.
CARD_TOKEN_RATE: Final = 6
CARD_TOKEN_RATE_WINDOW: Final = 60.0
# Options: privacy.
CONF_TRANSCRIPT_RETENTION_DAYS: Final = "transcript_retention_days"
CONF_TRANSCRIPTS_IN_EVENTS: Final = "transcripts_in_events"

# Options: costs (usage.py). Each is a price in the home's currency per so many units
# (1M tokens or characters, a minute of audio); unset, that counter adds no cost.
CONF_PRICE_LLM_INPUT: Final = "price_llm_input_tokens"
CONF_PRICE_LLM_OUTPUT: Final = "price_llm_output_tokens"
CONF_PRICE_STT_MINUTE: Final = "price_stt_minute"
CONF_PRICE_TTS_CHARACTERS: Final = "price_tts_characters"
CONF_PRICE_REALTIME_AUDIO_INPUT: Final = "price_realtime_audio_input_tokens"
CONF_PRICE_REALTIME_AUDIO_OUTPUT: Final = "price_realtime_audio_output_tokens"
PRICE_OPTIONS: Final = (
    CONF_PRICE_LLM_INPUT,
    CONF_PRICE_LLM_OUTPUT,
    CONF_PRICE_STT_MINUTE,
    CONF_PRICE_TTS_CHARACTERS,
    CONF_PRICE_REALTIME_AUDIO_INPUT,
    CONF_PRICE_REALTIME_AUDIO_OUTPUT,
)
# Above this, a price per unit is a typo (a million tokens at 10 000 is no tariff).
PRICE_MAX: Final = 10_000.0

# Options the voice engine applies to new turns without a reload.
TURN_TAKING_OPTIONS: Final = frozenset(
    {
        CONF_VAD_ACTIVATION_THRESHOLD,
        CONF_MIN_SPEECH_DURATION,
        CONF_MIN_SILENCE_DURATION,
        CONF_PREFIX_PADDING,
        CONF_MIN_INTERRUPTION_DURATION,
        CONF_MIN_ENDPOINTING_DELAY,
        CONF_MAX_ENDPOINTING_DELAY,
    }
)

TOOL_GROUPS: Final = ("devices", "calendars", "timers", "notes", "cameras")
# Confirm-domain values that stand for one device class of a domain, not the whole domain.
# The selector's option values double as translation keys, which allow only [a-z0-9_-]:
# hence `cover_garage`, not `cover.garage`, the value stored before (migrate_confirm_domains).
CONFIRM_DEVICE_CLASSES: Final[dict[str, tuple[str, str]]] = {
    "cover_garage": ("cover", "garage"),
    "cover_door": ("cover", "door"),
    "cover_gate": ("cover", "gate"),
}
# (domain, device_class) -> its confirm-domain value.
CONFIRM_DEVICE_CLASS_KEYS: Final[dict[tuple[str, str], str]] = {
    target: key for key, target in CONFIRM_DEVICE_CLASSES.items()
}
# Domains, or the values above, whose actions need a spoken "yes" first.
CONFIRMABLE_TARGETS: Final = (
    "lock",
    "alarm_control_panel",
    "cover_garage",
    "cover_door",
    "cover_gate",
    "cover",
    "valve",
    "climate",
    "siren",
)


def migrate_confirm_domains(values: list[str]) -> list[str]:
    """Return confirm-domain values with the old `domain.device_class` ones renamed.

    Known pairs (`cover.garage`) become their key (`cover_garage`); anything else, such as
    a value the user typed, stays as it is. Order is kept and duplicates are dropped.
    """
    renamed = []
    for value in values:
        domain, dot, device_class = value.partition(".")
        new = CONFIRM_DEVICE_CLASS_KEYS.get((domain, device_class), value) if dot else value
        renamed.append(new)
    return list(dict.fromkeys(renamed))


def needs_confirmation(confirm: Collection[str], domain: str, device_class: str | None) -> bool:
    """Return whether an entity of this domain and device class is in `confirm`.

    Besides whole domains and the keys of CONFIRM_DEVICE_CLASSES, a typed-in
    `domain.device_class` value (the selector takes custom values) still matches.
    """
    if domain in confirm:
        return True
    if device_class is None:
        return False
    key = CONFIRM_DEVICE_CLASS_KEYS.get((domain, device_class))
    return (key is not None and key in confirm) or f"{domain}.{device_class}" in confirm


DEFAULT_INSTRUCTIONS: Final = (
    "You are Shackleton, the voice assistant of this home. Answer in one or two short "
    "spoken sentences, without markdown. Use the tools to act on the home, and never say "
    "you did something unless a tool call did it."
)
# An assistant's settings; its language defaults to the home's.
DEFAULT_ASSISTANT: Final[dict[str, object]] = {
    CONF_INSTRUCTIONS: DEFAULT_INSTRUCTIONS,
    CONF_VOICE: "",
    CONF_MODEL: "",
    CONF_TOOL_GROUPS: list(TOOL_GROUPS),
    CONF_CONFIRM_DOMAINS: [
        "lock",
        "alarm_control_panel",
        "cover_garage",
        "cover_door",
        "cover_gate",
    ],
}
ASSISTANT_KEYS: Final = frozenset({*DEFAULT_ASSISTANT, CONF_LANGUAGE})
DEFAULT_OPTIONS: Final[dict[str, object]] = {
    CONF_WORKER: WORKER_IN_HA,
    CONF_VAD_ACTIVATION_THRESHOLD: 0.5,
    CONF_MIN_SPEECH_DURATION: 0.05,
    # VAD silence ends a segment for speech-to-text and preemptive generation early;
    # the endpointing delay decides when the turn is over (scripts/bench measured both).
    CONF_MIN_SILENCE_DURATION: 0.3,
    CONF_PREFIX_PADDING: 0.5,
    # LiveKit's default is 0.5 s. 0.05-0.2 s made no difference to false interruptions
    # on noise (bench/interruptions.py); 0.08 s brings barge-in under 250 ms.
    CONF_MIN_INTERRUPTION_DURATION: 0.08,
    CONF_MIN_ENDPOINTING_DELAY: 0.55,
    CONF_MAX_ENDPOINTING_DELAY: 3.0,
    CONF_AUTO_JOIN_PREFIX: "",
    CONF_ANNOUNCE_NOBODY: NOBODY_NOTIFY,
    CONF_ANNOUNCE_QUEUE_MINUTES: 10,
    # Non-administrators may open only these rooms from a dashboard card.
    CONF_DASHBOARD_ROOMS: [],
    CONF_CARD_TOKEN_MINUTES: 5,
    # Empty: browsers use the server URL Home Assistant uses.
    CONF_LIVEKIT_BROWSER_URL: "",
    CONF_TRANSCRIPT_RETENTION_DAYS: 7,
    CONF_TRANSCRIPTS_IN_EVENTS: False,
}

# Assistant states, as shown by the state sensor.
STATE_OFFLINE: Final = "offline"
STATE_IDLE: Final = "idle"
STATE_LISTENING: Final = "listening"
STATE_THINKING: Final = "thinking"
STATE_SPEAKING: Final = "speaking"
ASSISTANT_STATES: Final = (
    STATE_OFFLINE,
    STATE_IDLE,
    STATE_LISTENING,
    STATE_THINKING,
    STATE_SPEAKING,
)

# Network checks made by the flows and at set-up: short, so a dead host fails fast.
VALIDATION_TIMEOUT: Final = 5.0
# How often a healthy LiveKit link is re-checked, and the ceiling of the retry backoff.
LIVEKIT_HEALTH_INTERVAL: Final = 60.0
LIVEKIT_RETRY_MAX: Final = 60.0

ISSUE_NO_LIVEKIT: Final = "no_livekit_server"
ISSUE_VOICE_UNAVAILABLE: Final = "voice_unavailable"
ISSUE_VOICE_START_FAILED: Final = "voice_start_failed"
ISSUE_PROVIDER_FAILING: Final = "provider_failing"

EVENT_TURN: Final = "shackleton_turn"
EVENT_ERROR: Final = "shackleton_error"
EVENT_TOOL_CALL: Final = "shackleton_tool_call"
EVENT_REMINDER: Final = "shackleton_reminder"
# What events, logs and diagnostics show instead of what people said.
REDACTED: Final = "**REDACTED**"

# Keys whose values never leave HA in diagnostics, events or logs.
REDACT_KEYS: Final = frozenset(
    {
        CONF_LIVEKIT_API_KEY,
        CONF_LIVEKIT_API_SECRET,
        "openai_api_key",
        "groq_api_key",
        "compatible_api_key",
        "token",
        "access_token",
        "transcript",
        "latitude",
        "longitude",
    }
)
