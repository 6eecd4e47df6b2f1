"""OpenAI-compatible clients for the voice engine and the text agent (no LiveKit needed)."""

from __future__ import annotations

from typing import Any

import openai

from .settings import Limits, ProviderSettings

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
}


def make_client(
    provider: ProviderSettings,
    limits: Limits,
    http_client: Any,
    *,
    max_retries: int = 0,
) -> openai.AsyncClient:
    """Return an OpenAI-compatible client for a provider.

    With `http_client` (the host's shared one: HA lends an httpx2 client, openai 3's own;
    untyped, so nothing here depends on httpx or httpx2) nothing blocks; without, the SDK
    loads the system certificates, so call this off the event loop. The voice engine
    retries through its session's connect options (`max_retries=0` here); the text agent
    lets the client retry.
    """
    return openai.AsyncClient(
        # Keyless local servers still need a non-empty key for the SDK.
        api_key=provider.api_key or "no-key",
        base_url=provider.base_url or DEFAULT_BASE_URLS.get(provider.kind),
        max_retries=max_retries,
        # The SDK's own Timeout: httpx's in openai 2, httpx2's in openai 3.
        timeout=openai.Timeout(limits.request_timeout * 2, connect=limits.request_timeout),
        http_client=http_client,
    )
