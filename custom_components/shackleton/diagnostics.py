"""Diagnostics for Shackleton: settings and live state, with secrets redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .assistants import assistants
from .const import REDACT_KEYS
from .models import ShackletonConfigEntry


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: ShackletonConfigEntry
) -> dict[str, Any]:
    """Return the entry's settings and runtime state."""
    data = entry.runtime_data
    return {
        "data": async_redact_data(dict(entry.data), REDACT_KEYS),
        "options": async_redact_data(dict(entry.options), REDACT_KEYS),
        "assistants": [
            {
                "subentry_id": assistant.subentry_id,
                "name": assistant.name,
                "language": assistant.language,
                "model": assistant.model,
                "voice": assistant.voice,
                "tool_groups": sorted(assistant.tool_groups),
                "confirm_domains": sorted(assistant.confirm_domains),
                "instructions_length": len(assistant.instructions),
            }
            for assistant in assistants(entry)
        ],
        # Rooms that chose an assistant other than the first.
        "room_assistants": dict(data.room_assistants),
        "runtime": async_redact_data(data.runtime.as_dict(), REDACT_KEYS),
        # Room names and when they were last served; what announcements wait (not what
        # they say: that is what people are told, and may be private).
        "rooms": {room: when.isoformat() for room, when in data.rooms.last_served.items()},
        "queued_announcements": len(data.voice.queued),
    }
