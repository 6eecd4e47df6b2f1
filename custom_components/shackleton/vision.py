"""The entry's eyes: its language model asked about pictures, in one bounded request.

The camera tool (tools/cameras.py) and the AI task entity (ai_task.py) send each
picture as a data-URI `image_url` part over the OpenAI-compatible chat completions API,
to the entry's own language model, which must therefore see images (gpt-4.1-mini,
llava, qwen2.5-vl...). One request, not streamed (the whole answer is needed before
anything can be said), within `MODEL_SECONDS`; whatever fails becomes a translated
`ProviderFault` (provider_faults.py).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
import sys
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import HomeAssistant

from .const import STAGE_LLM
from .provider_faults import ProviderFault, classify
from .usage import chat_usage
from .voice.settings import Limits, ProviderSettings
from .voice_config import provider_settings
from .voice_support import async_text_client

if TYPE_CHECKING:
    from .models import ShackletonConfigEntry
    from .voice.home import Usage

# A camera question is one tool call of a spoken turn, and the room's watchdog gives the
# turn up `Limits.turn_deadline` (6 s) after the call began: the snapshot
# (tools/cameras.py, SNAPSHOT_SECONDS) and the model together stay within it, so the
# user hears what went wrong rather than silence.
MODEL_SECONDS: Final = 3.5
# An AI task has no spoken turn to keep, and pictures with a structured answer take a
# vision model longer (a local one most): a hung one is still given up.
TASK_SECONDS: Final = 30.0
# The picture formats the OpenAI-compatible APIs take (the rest are refused here,
# with a clear error, rather than by the provider with an obscure one).
IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif"})


@dataclass(frozen=True, slots=True)
class Picture:
    """An image to show the model: its bytes and MIME type."""

    content_type: str
    content: bytes

    def as_part(self) -> dict[str, Any]:
        """Return the picture as a chat message's `image_url` content part."""
        encoded = base64.b64encode(self.content).decode("ascii")
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{self.content_type};base64,{encoded}"},
        }


def image_type(content_type: str) -> str | None:
    """Return the MIME type the APIs know for `content_type`; None if they take no such image."""
    kind = content_type.partition(";")[0].strip().lower()
    kind = "image/jpeg" if kind == "image/jpg" else kind
    return kind if kind in IMAGE_TYPES else None


def vision_provider(entry: ShackletonConfigEntry) -> ProviderSettings | None:
    """Return the model the entry sees with; None when its language model is another agent."""
    # The one place the eyes read their model: the entry's language model.
    provider = provider_settings(entry.data, STAGE_LLM)
    # Another of the home's agents (Assist...) answers in words: it takes no picture.
    return None if provider.kind == "home_assistant" else provider


async def async_ask(
    hass: HomeAssistant,
    provider: ProviderSettings,
    messages: list[dict[str, Any]],
    *,
    response_format: dict[str, Any] | None = None,
    count: Callable[[Usage], None] | None = None,
    seconds: float = MODEL_SECONDS,
) -> str:
    """Return the model's answer to `messages`, within `seconds`, or raise ProviderFault.

    `count` gets the tokens the request used (the entry's usage sensors).
    """
    client = await async_text_client(hass, provider, Limits())
    host = str(client.base_url.host)
    try:
        async with asyncio.timeout(seconds):
            completion = await client.chat.completions.create(
                model=provider.model,
                messages=messages,  # type: ignore[arg-type]
                response_format=response_format or sys.modules["openai"].NOT_GIVEN,  # type: ignore[arg-type]
            )
            answer = completion.choices[0].message.content if completion.choices else None
    except Exception as err:  # every way a request fails is a fault
        raise classify(err, host=host, seconds=seconds) from err
    if count is not None and (counted := chat_usage(completion.usage)) is not None:
        count(counted)
    if not answer or not answer.strip():
        raise ProviderFault("empty")
    return answer.strip()
