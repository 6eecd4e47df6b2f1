"""Settings of a voice engine: providers, turn-taking and persona, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
import random
import re
from typing import Any, Literal

from livekit import api

# local: faster-whisper (STT) and piper (TTS) in this process, models from wheels.
# home_assistant: a conversation agent of the home as the language model stage.
ProviderKind = Literal["openai", "groq", "compatible", "local", "home_assistant"]
# Room names the agent joins: what LiveKit and URLs take without escaping.
ROOM_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, between `initial` and `maximum` seconds.

    The jitter keeps several agents (or HA instances) from hammering a recovering
    server in lockstep.
    """

    initial: float = 1.0
    maximum: float = 60.0

    def delay(self, attempt: int) -> float:
        """Return the wait before retry number `attempt` (1-based)."""
        ceiling = min(self.maximum, self.initial * 2 ** min(attempt - 1, 30))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not crypto


@dataclass(frozen=True, slots=True)
class LiveKitServer:
    """Where the rooms are, and the credentials to mint tokens for them."""

    url: str
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)

    def room_token(
        self, room: str, identity: str, *, name: str, ttl: timedelta, agent: bool = False
    ) -> str:
        """Return a token that lets `identity` into `room` only, to talk and listen."""
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_kind("agent" if agent else "standard")
            .with_ttl(ttl)
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=room,
                    can_publish=True,
                    can_subscribe=True,
                    can_publish_data=True,
                    can_update_own_metadata=agent,
                    agent=agent,
                )
            )
            .to_jwt()
        )


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Who serves one stage, and with which model."""

    kind: ProviderKind
    model: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)  # never in reprs, hence logs


@dataclass(frozen=True, slots=True)
class TurnTaking:
    """When the user has started, stopped, or interrupted (seconds, but the threshold)."""

    activation_threshold: float = 0.5
    min_speech_duration: float = 0.05
    min_silence_duration: float = 0.3
    prefix_padding: float = 0.5
    min_interruption_duration: float = 0.08
    min_endpointing_delay: float = 0.55
    max_endpointing_delay: float = 3.0


@dataclass(frozen=True, slots=True)
class Limits:
    """How long a failing provider may hold a turn before the assistant apologises."""

    # Per provider request: the connect and between-chunks budget, and retries after a
    # failure. A hung LLM costs 2 x 2.5 s + 0.25 s before the apology, not LiveKit's ~44 s.
    request_timeout: float = 2.5
    max_retry: int = 1
    retry_interval: float = 0.25
    # Thinking this long with no progress abandons the turn. It also bounds the TTS and
    # STT plugins, whose read timeouts are fixed at 30 s.
    turn_deadline: float = 6.0
    # Consecutive failed turns that open the circuit breaker.
    breaker_threshold: int = 3


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """Everything a voice session needs to know about itself."""

    mode: Literal["pipeline", "realtime"]
    llm: ProviderSettings
    stt: ProviderSettings | None = None
    tts: ProviderSettings | None = None
    realtime: ProviderSettings | None = None
    instructions: str = ""
    language: str = "en"
    voice: str = ""
    turn_taking: TurnTaking = field(default_factory=TurnTaking)
    limits: Limits = field(default_factory=Limits)
    apology: str = "Sorry, I couldn't do that just now. Please try again."


HONESTY_RULE = (
    "Only say you did something in the home when a tool call did it and reported success; "
    "if a tool fails or you have no tool for it, say so plainly."
)


def persona(instructions: str) -> str:
    """Return the persona every Shackleton agent gets, spoken or written."""
    return "\n".join(line for line in (instructions.strip(), HONESTY_RULE) if line)


def settings_from_dict(data: dict[str, Any]) -> VoiceSettings:
    """Rebuild voice settings sent as JSON (`dataclasses.asdict` of VoiceSettings)."""

    def provider(value: dict[str, Any] | None) -> ProviderSettings | None:
        return None if value is None else ProviderSettings(**value)

    llm = provider(data["llm"])
    if llm is None:
        raise ValueError("the settings name no language model")
    plain = {
        key: data[key] for key in ("instructions", "language", "voice", "apology") if key in data
    }
    return VoiceSettings(
        mode=data["mode"],
        llm=llm,
        stt=provider(data.get("stt")),
        tts=provider(data.get("tts")),
        realtime=provider(data.get("realtime")),
        turn_taking=TurnTaking(**data.get("turn_taking", {})),
        limits=Limits(**data.get("limits", {})),
        **plain,
    )
