"""Binary sensors of Shackleton."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .entity import ShackletonEntity
from .models import ShackletonConfigEntry

PARALLEL_UPDATES = 0

LIVEKIT_CONNECTED = BinarySensorEntityDescription(
    key="livekit_connected",
    translation_key="livekit_connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the LiveKit connectivity sensor."""
    async_add_entities([LiveKitConnectedSensor(entry, LIVEKIT_CONNECTED)])


class LiveKitConnectedSensor(ShackletonEntity, BinarySensorEntity):
    """Whether the LiveKit server answers; unavailable when none is configured."""

    @property
    def available(self) -> bool:
        """Return whether there is a server to be connected to."""
        return self.runtime.livekit_configured

    @property
    def is_on(self) -> bool:
        """Return whether the server answered last time."""
        return self.runtime.livekit_connected
