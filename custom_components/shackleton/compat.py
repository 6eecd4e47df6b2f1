"""Shims for the oldest Home Assistant release Shackleton supports (2026.10).

Everything else is written for the newest release; each shim here says the release whose
API it stands in for, and goes when support for the releases before it ends.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.helpers import device_registry as dr, llm

# LLMContext.agent_id: HA 2026.11.
LLM_CONTEXT_HAS_AGENT_ID = "agent_id" in {f.name for f in dataclasses.fields(llm.LLMContext)}


def llm_context(*, agent_id: str | None, **values: Any) -> llm.LLMContext:
    """Return an LLMContext; `agent_id` is dropped where HA has no such field (2026.10)."""
    if LLM_CONTEXT_HAS_AGENT_ID:
        values["agent_id"] = agent_id
    return llm.LLMContext(**values)


def context_agent_id(llm_context: llm.LLMContext) -> str | None:
    """Return the agent handling an LLM request (None on HA 2026.10, which does not say)."""
    return getattr(llm_context, "agent_id", None)


def device_by_identifier(
    registry: dr.DeviceRegistry, identifier: tuple[str, str], entry_id: str
) -> dr.DeviceEntry | None:
    """Return the entry's device with `identifier`.

    HA 2026.11 deprecates `async_get_device(identifiers=...)` for a lookup within one
    config entry, which 2026.10 does not have yet.
    """
    if hasattr(registry, "async_get_device_by_identifier"):
        return registry.async_get_device_by_identifier(identifier, entry_id)
    return registry.async_get_device(identifiers={identifier})  # pragma: no cover - 2026.10
