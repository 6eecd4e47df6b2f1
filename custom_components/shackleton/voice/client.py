"""What the engine tells, and takes from, the people's apps in a room (the dashboard card)."""

from __future__ import annotations

import re
from typing import Any, Final

# Data packets: one JSON object per tool call, {"tool", "summary", "success"}.
TOOL_TOPIC: Final = "shackleton.tool"
# An RPC method the card calls to cut the assistant off.
INTERRUPT_RPC: Final = "shackleton.interrupt"

# What an intent's success means for its targets, as a card shows it.
_OUTCOMES: Final = {
    "HassTurnOn": "on",
    "HassTurnOff": "off",
    "HassToggle": "toggled",
    "HassLightSet": "set",
    "HassSetPosition": "moved",
    "HassOpen": "open",
    "HassClose": "closed",
    "HassMediaPause": "paused",
    "HassMediaUnpause": "playing",
}


def tool_summary(name: str, result: Any, *, ok: bool = True) -> str:
    """Say in a few words what a tool did: "Kitchen light → on", "Reminder set"."""
    # Home Assistant names its tools `<integration>__<name>` (HA 2026.8+).
    name = name.rpartition("__")[2]
    if not ok:
        return f"{_humanize(name)} failed"
    targets = _targets(result)
    if targets:
        return f"{', '.join(targets)} → {_OUTCOMES.get(name, 'done')}"
    return _humanize(name)


def _targets(result: Any) -> list[str]:
    """Return the names an intent result reports as acted on."""
    if not isinstance(result, dict):
        return []
    data = result.get("data")
    success = data.get("success") if isinstance(data, dict) else None
    if not isinstance(success, list):
        return []
    return [str(item["name"]) for item in success if isinstance(item, dict) and item.get("name")]


def _humanize(name: str) -> str:
    """HassListAddItem -> "List add item"; calendar_list_events -> "Calendar list events"."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.removeprefix("Hass")).replace("_", " ")
    text = " ".join(words.split()).lower()
    return text[:1].upper() + text[1:]
