"""Rooms as devices: each room the assistant has served, until it goes stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .compat import device_by_identifier
from .const import DOMAIN, LOGGER
from .models import ShackletonConfigEntry
from .storage import async_load_checked, async_remove_store, check, saved_time

STORAGE_VERSION: Final = 1
# A room nobody has talked in for this long is removed, with its entities.
STALE_AFTER: Final = timedelta(days=30)
CLEANUP_INTERVAL: Final = timedelta(hours=24)
SAVE_DELAY: Final = 10.0


def signal_room_added(entry_id: str) -> str:
    """Return the dispatcher signal that announces a new room of an entry."""
    return f"{DOMAIN}_{entry_id}_room_added"


def room_identifier(entry_id: str, room: str) -> tuple[str, str]:
    """Return a room device's identifier."""
    return (DOMAIN, f"{entry_id}_room_{room}")


def _parse_rooms(data: Any) -> dict[str, datetime]:
    return {
        room: saved_time(when, f"rooms[{room!r}]")
        for room, when in check(data, dict, "data").items()
    }


class RoomDevices:
    """Keeps a device per room served, with when it was last served."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ShackletonConfigEntry,
        is_active: Callable[[str], bool],
    ) -> None:
        """Serve one entry; `is_active(room)` says whether a room has a session now."""
        self._hass = hass
        self._entry = entry
        self._is_active = is_active
        self._store: Store[dict[str, str]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.rooms"
        )
        self.last_served: dict[str, datetime] = {}

    @property
    def rooms(self) -> list[str]:
        """Return the known rooms, sorted."""
        return sorted(self.last_served)

    async def async_load(self) -> None:
        """Load the rooms, then start the daily clean-up."""
        self.last_served = await async_load_checked(self._store, _parse_rooms, "rooms") or {}
        self.async_cleanup()
        self._entry.async_on_unload(
            async_track_time_interval(self._hass, self.async_cleanup, CLEANUP_INTERVAL)
        )
        # A delayed save is written at HA's final write; a reload must not wait for it.
        self._entry.async_on_unload(self._async_save_now)

    async def _async_save_now(self) -> None:
        await self._store.async_save(self._data())

    @callback
    def async_served(self, room: str) -> str:
        """Record that `room` is being served now; return its device id."""
        new = room not in self.last_served
        self.last_served[room] = dt_util.utcnow()
        self._store.async_delay_save(self._data, SAVE_DELAY)
        device_id = self.device_id(room)
        if new:
            async_dispatcher_send(self._hass, signal_room_added(self._entry.entry_id), room)
        return device_id

    @callback
    def device_id(self, room: str) -> str:
        """Return the room's device id, creating the device (and room) if needed."""
        if room not in self.last_served:
            return self.async_served(room)
        registry = dr.async_get(self._hass)
        # The entry's service device (made by its entities) is the room's hub.
        hub = device_by_identifier(registry, (DOMAIN, self._entry.entry_id), self._entry.entry_id)
        device = registry.async_get_or_create(
            config_entry_id=self._entry.entry_id,
            identifiers={room_identifier(self._entry.entry_id, room)},
            name=f"{self._entry.title} {room}",
            manufacturer="Shackleton",
            model="Voice room",
            via_device_id=hub.id if hub else None,
        )
        return device.id

    @callback
    def async_cleanup(self, _now: datetime | None = None) -> None:
        """Remove rooms nobody has been served in for `STALE_AFTER`."""
        cutoff = dt_util.utcnow() - STALE_AFTER
        for room, when in list(self.last_served.items()):
            if when < cutoff and not self._is_active(room):
                LOGGER.info("%s: removing room %s, unused since %s", self._entry.title, room, when)
                self.async_remove(room)

    @callback
    def async_remove(self, room: str, *, remove_device: bool = True) -> bool:
        """Forget a room and remove its device (and so its entities), unless it is busy.

        `remove_device=False` when HA removes the device itself (the user deleted it).
        """
        if self._is_active(room):
            return False
        self.last_served.pop(room, None)
        self._store.async_delay_save(self._data, SAVE_DELAY)
        if not remove_device:
            return True
        registry = dr.async_get(self._hass)
        device = device_by_identifier(
            registry, room_identifier(self._entry.entry_id, room), self._entry.entry_id
        )
        if device is not None:
            registry.async_remove_device(device.id)
        return True

    def room_of(self, device: dr.DeviceEntry) -> str | None:
        """Return the room a device stands for, or None (the service device)."""
        prefix = f"{self._entry.entry_id}_room_"
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith(prefix):
                return identifier.removeprefix(prefix)
        return None

    def room_of_device_id(self, device_id: str) -> str | None:
        """Return the room a device id stands for, or None."""
        device = dr.async_get(self._hass).async_get(device_id)
        return self.room_of(device) if isinstance(device, dr.DeviceEntry) else None

    def _data(self) -> dict[str, Any]:
        return {room: when.isoformat() for room, when in self.last_served.items()}

    async def async_remove_store(self) -> None:
        """Delete the stored rooms (the entry is being removed)."""
        await async_remove_store(self._store)
