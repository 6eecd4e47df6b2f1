"""The base entity of Shackleton."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .const import DOMAIN
from .models import ShackletonConfigEntry


class ShackletonEntity(Entity):
    """An entity of the assistant's service device; its state is pushed by the runtime."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: ShackletonConfigEntry, description: EntityDescription) -> None:
        """Bind the entity to its entry's runtime and device."""
        self.entity_description = description
        self.runtime = entry.runtime_data.runtime
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, entry.entry_id)},
            name=entry.title,
            manufacturer="Shackleton",
            model="LiveKit voice assistant",
            entry_type=DeviceEntryType.SERVICE,
        )

    async def async_added_to_hass(self) -> None:
        """Follow the runtime's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self.runtime.async_add_listener(self.async_write_ha_state))
