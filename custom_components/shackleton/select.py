"""Each room's assistant: which of the entry's assistants answers in the room."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.restore_state import ExtraStoredData, RestoredExtraData, RestoreEntity

from .assistants import assistants, room_assistant
from .entity import RoomEntity, async_add_room_entities
from .models import ShackletonConfigEntry

PARALLEL_UPDATES = 0

ROOM_ASSISTANT = SelectEntityDescription(
    key="assistant", translation_key="assistant", entity_category=EntityCategory.CONFIG
)
# What a restart keeps: the subentry id, which a renamed assistant keeps too.
_RESTORED = "subentry_id"


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the assistant choice of every room, and of each new one."""
    async_add_room_entities(
        hass, entry, async_add_entities, lambda room: [RoomAssistantSelect(entry, room)]
    )


class RoomAssistantSelect(RoomEntity, SelectEntity, RestoreEntity):
    """Picks the assistant of one room; a new room talks to the entry's first one."""

    def __init__(self, entry: ShackletonConfigEntry, room: str) -> None:
        """Serve one room."""
        super().__init__(entry, room, ROOM_ASSISTANT)

    async def async_added_to_hass(self) -> None:
        """Restore the room's choice (a deleted assistant falls back to the first)."""
        extra = await self.async_get_last_extra_data()
        subentry_id = extra.as_dict().get(_RESTORED) if extra else None
        if isinstance(subentry_id, str) and subentry_id in self.entry.subentries:
            self.entry.runtime_data.room_assistants[self.room] = subentry_id
        await super().async_added_to_hass()

    @property
    def options(self) -> list[str]:
        """Return the assistants' names."""
        return [assistant.name for assistant in assistants(self.entry)] or [self.current_option]

    @property
    def current_option(self) -> str:
        """Return the name of the room's assistant."""
        return room_assistant(self.entry, self.room).name

    @property
    def extra_restore_state_data(self) -> ExtraStoredData:
        """Keep the choice by subentry id: names can change."""
        subentry_id = room_assistant(self.entry, self.room).subentry_id
        return RestoredExtraData({_RESTORED: subentry_id})

    async def async_select_option(self, option: str) -> None:
        """Hand the room to another assistant, at once if someone is talking there.

        HA's select action has checked `option` against `options` already; with every
        assistant deleted the one option is the stand-in, already the room's.
        """
        chosen = [a for a in assistants(self.entry) if a.name == option]
        if not chosen:
            return
        self.entry.runtime_data.room_assistants[self.room] = chosen[0].subentry_id
        self.async_write_ha_state()
        await self.entry.runtime_data.voice.async_refresh_room(self.room)
