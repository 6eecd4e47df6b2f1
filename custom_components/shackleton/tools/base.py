"""The base of Shackleton's own LLM tools: tagged with this integration, results as ToolResult."""

from __future__ import annotations

from abc import abstractmethod

from homeassistant.core import HomeAssistant
from homeassistant.helpers import llm
from homeassistant.util.json import JsonObjectType

from ..const import DOMAIN

# How a tool behaves, for agents that show or gate tools by it (HA's defaults say the
# opposite: writes, destroys, reaches outside). None of ours leaves Home Assistant.
READS = llm.ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False)
ADDS = llm.ToolAnnotations(destructive=False, open_world=False)
CHANGES = llm.ToolAnnotations(open_world=False)


class ShackletonTool(llm.Tool):
    """A tool of Shackleton's own: `async_run` returns the data, the base wraps it."""

    integration = DOMAIN
    annotations = CHANGES

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Run the tool; errors are raised as HomeAssistantError for the agent to read."""
        return llm.ToolResult(data=await self.async_run(hass, tool_input, llm_context))

    @abstractmethod
    async def async_run(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> JsonObjectType:
        """Do the work and return what the model reads."""
