"""A notify entity per room: `notify.send_message` speaks into that room."""

from __future__ import annotations

import time

from homeassistant.components.notify import NotifyEntity, NotifyEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .announcements import Announcement
from .const import CONF_ANNOUNCE_NOBODY, CONF_ANNOUNCE_QUEUE_MINUTES, DEFAULT_OPTIONS
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
        options = {**DEFAULT_OPTIONS, **self.entry.options}
        text = f"{title}. {message}" if title else message
        announcement = Announcement(
            text=text,
            expires_at=time.monotonic() + 60 * float(options[CONF_ANNOUNCE_QUEUE_MINUTES]),
        )
        self.entry.runtime_data.voice.async_announce(
            [self.room], announcement, str(options[CONF_ANNOUNCE_NOBODY])
        )
