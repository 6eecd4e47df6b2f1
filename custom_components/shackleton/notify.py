"""A notify entity per room: `notify.send_message` speaks into that room."""

from __future__ import annotations

from homeassistant.components.notify import NotifyEntity, NotifyEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .entity import RoomEntity, async_add_room_entities
from .models import ShackletonConfigEntry

PARALLEL_UPDATES = 0
ANNOUNCE = NotifyEntityDescription(key="announce", translation_key="announce")


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add each room's announcer."""
    async_add_room_entities(
        hass, entry, async_add_entities, lambda room: [RoomAnnouncer(entry, room, ANNOUNCE)]
    )


class RoomAnnouncer(RoomEntity, NotifyEntity):
    """Says messages in one room, as HA's notify actions and automation editor expect."""

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        """Say `title. message` in the room, following the entry's no-listener option."""
        self.async_say(f"{title}. {message}" if title else message)
