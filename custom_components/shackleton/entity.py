"""The base entity of Shackleton."""

from __future__ import annotations

from collections.abc import Callable, Iterable
import time
from typing import Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .announcements import Announcement
from .const import CONF_ANNOUNCE_NOBODY, CONF_ANNOUNCE_QUEUE_MINUTES, DEFAULT_OPTIONS, DOMAIN
from .models import ShackletonConfigEntry
from .room_devices import room_identifier, signal_room_added


def service_device_info(entry: ShackletonConfigEntry) -> DeviceInfo:
    """Return the assistant's own device: the service every room device hangs off."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)},
        name=entry.title,
        manufacturer="Shackleton",
        model="LiveKit voice assistant",
        entry_type=DeviceEntryType.SERVICE,
    )


class ShackletonEntity(Entity):
    """An entity of the assistant's service device; its state is pushed by the runtime."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: ShackletonConfigEntry, description: EntityDescription) -> None:
        """Bind the entity to its entry's runtime and device."""
        self.entity_description = description
        self.runtime = entry.runtime_data.runtime
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = service_device_info(entry)

    async def async_added_to_hass(self) -> None:
        """Follow the runtime's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self.runtime.async_add_listener(self.async_write_ha_state))


class RoomEntity(Entity):
    """An entity of one room's device."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(
        self, entry: ShackletonConfigEntry, room: str, description: EntityDescription
    ) -> None:
        """Bind the entity to its room's device."""
        self.entity_description = description
        self.entry = entry
        self.room = room
        self.runtime = entry.runtime_data.runtime
        self._attr_unique_id = f"{entry.entry_id}_room_{room}_{description.key}"
        # The room's device exists already: it was created when the room was served.
        self._attr_device_info = DeviceInfo(identifiers={room_identifier(entry.entry_id, room)})

    async def async_added_to_hass(self) -> None:
        """Follow the runtime's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self.runtime.async_add_listener(self.async_write_ha_state))

    def async_say(self, text: str, *, chime: bool = False) -> list[dict[str, Any]]:
        """Say `text` in the room; nobody there: the entry's no-listener option applies."""
        options = {**DEFAULT_OPTIONS, **self.entry.options}
        announcement = Announcement(
            text=text,
            chime=chime,
            expires_at=time.monotonic() + 60 * float(options[CONF_ANNOUNCE_QUEUE_MINUTES]),
        )
        return self.entry.runtime_data.voice.async_announce(
            [self.room], announcement, str(options[CONF_ANNOUNCE_NOBODY])
        )


def async_add_room_entities(
    hass: HomeAssistant,
    entry: ShackletonConfigEntry,
    async_add_entities: AddEntitiesCallback,
    make: Callable[[str], Iterable[Entity]],
) -> None:
    """Add a platform's entities for every known room, and for each new one as it comes."""
    for room in entry.runtime_data.rooms.rooms:
        async_add_entities(make(room))

    @callback
    def added(room: str) -> None:
        async_add_entities(make(room))

    entry.async_on_unload(async_dispatcher_connect(hass, signal_room_added(entry.entry_id), added))
