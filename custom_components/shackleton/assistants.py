"""An entry's assistants: its config subentries, each a persona with its own agent.

One entry holds the LiveKit server and the provider keys; each assistant has its own
instructions, language, model, voice, tool groups and confirmation domains, its own
conversation agent and device. Each room talks to one of them (`select.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigSubentry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo

from .const import (
    CONF_CONFIRM_DOMAINS,
    CONF_INSTRUCTIONS,
    CONF_LANGUAGE,
    CONF_MODEL,
    CONF_TOOL_GROUPS,
    CONF_VOICE,
    DEFAULT_ASSISTANT,
    DOMAIN,
    SUBENTRY_ASSISTANT,
)

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry


@dataclass(frozen=True, slots=True)
class Assistant:
    """One persona of an entry, as its agent, its rooms and its tools use it."""

    # "" for the stand-in of an entry whose assistants were all deleted.
    subentry_id: str
    name: str
    instructions: str
    # "": the home's language.
    language: str
    voice: str
    # "": the entry's language model.
    model: str
    tool_groups: frozenset[str]
    confirm_domains: frozenset[str]

    @classmethod
    def from_data(cls, subentry_id: str, name: str, data: Mapping[str, Any]) -> Assistant:
        """Return the assistant a subentry's data describes (defaults where it is silent)."""
        merged = {**DEFAULT_ASSISTANT, **data}
        return cls(
            subentry_id=subentry_id,
            name=name,
            instructions=str(merged[CONF_INSTRUCTIONS]),
            language=str(merged.get(CONF_LANGUAGE) or ""),
            voice=str(merged[CONF_VOICE]),
            model=str(merged[CONF_MODEL]),
            tool_groups=frozenset(merged[CONF_TOOL_GROUPS]),
            confirm_domains=frozenset(merged[CONF_CONFIRM_DOMAINS]),
        )

    def language_or(self, home_language: str) -> str:
        """Return the assistant's language, the home's when it has none of its own."""
        return self.language or home_language


def assistants(entry: ConfigEntry[Any]) -> list[Assistant]:
    """Return the entry's assistants, in the order they were added."""
    return [
        Assistant.from_data(subentry.subentry_id, subentry.title, subentry.data)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_ASSISTANT
    ]


def default_assistant(entry: ConfigEntry[Any]) -> Assistant:
    """Return the entry's first assistant: it serves rooms that chose none.

    With every assistant deleted, rooms and other agents still get the defaults.
    """
    found = assistants(entry)
    return found[0] if found else Assistant.from_data("", entry.title, {})


def find_assistant(entry: ConfigEntry[Any], subentry_id: str | None) -> Assistant:
    """Return the assistant of `subentry_id`; the default one when it is gone or None."""
    for assistant in assistants(entry):
        if assistant.subentry_id == subentry_id:
            return assistant
    return default_assistant(entry)


def assistant_subentry(name: str, data: Mapping[str, Any]) -> ConfigSubentry:
    """Return a new assistant subentry (for a migration: flows create their own)."""
    return ConfigSubentry(
        data=MappingProxyType(dict(data)),
        subentry_type=SUBENTRY_ASSISTANT,
        title=name,
        unique_id=None,
    )


def assistant_device_info(assistant: Assistant) -> DeviceInfo:
    """Return an assistant's device: a service, like the entry's own."""
    return DeviceInfo(
        identifiers={(DOMAIN, assistant.subentry_id)},
        name=assistant.name,
        manufacturer="Shackleton",
        model="Assistant",
        entry_type=DeviceEntryType.SERVICE,
    )


def room_assistant(entry: ConfigEntry[Any], room: str) -> Assistant:
    """Return the assistant a room talks to (its select entity's choice)."""
    return find_assistant(entry, entry.runtime_data.room_assistants.get(room))
