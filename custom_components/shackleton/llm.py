"""Shackleton's calendar, note and reminder tools in HA's Assist API, for every agent.

HA (2026.8+) asks each loaded integration's `llm.py` for tools when it builds an API;
what we return for Assist joins the tools of every conversation agent set to control
Home Assistant with Assist (OpenAI, Ollama, Anthropic...). They are the tools of
Shackleton's own API, named `shackleton__<tool>`, behind the same confirmation guard
and `shackleton_tool_call` audit (tools/api.py). Shackleton's own API drops these
copies again, since it lists the same tools under their own names.
"""

from __future__ import annotations

from homeassistant.components.llm import LLMTools
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import llm

from .const import DOMAIN
from .models import ShackletonConfigEntry


@callback
def async_get_tools(
    hass: HomeAssistant, llm_context: llm.LLMContext, api_id: str
) -> LLMTools | None:
    """Return the first loaded entry's tools for Assist; None for other APIs or no entry."""
    if api_id != llm.LLM_API_ASSIST:
        return None
    loaded: list[ShackletonConfigEntry] = hass.config_entries.async_loaded_entries(DOMAIN)
    if not loaded:
        return None
    # One set of tools: with two entries, two `shackleton__note_save` would clash. The
    # first entry added wins (the README says so); its first assistant's tool groups count.
    tools = loaded[0].runtime_data.api.assist_tools()
    # No prompt: the guard's answer carries its own instructions when it asks for a yes.
    return LLMTools(tools=tools) if tools else None
