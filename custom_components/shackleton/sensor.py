"""Sensors of Shackleton."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import ASSISTANT_STATES
from .entity import ShackletonEntity
from .models import ShackletonConfigEntry, ShackletonRuntime

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ShackletonSensorDescription(SensorEntityDescription):
    """A sensor read off the runtime."""

    value_fn: Callable[[ShackletonRuntime], str | int]
    available_fn: Callable[[ShackletonRuntime], bool]


SENSORS: tuple[ShackletonSensorDescription, ...] = (
    ShackletonSensorDescription(
        key="assistant_state",
        translation_key="assistant_state",
        device_class=SensorDeviceClass.ENUM,
        options=list(ASSISTANT_STATES),
        value_fn=lambda runtime: runtime.assistant_state,
        available_fn=lambda runtime: runtime.livekit_configured,
    ),
    ShackletonSensorDescription(
        key="active_sessions",
        translation_key="active_sessions",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda runtime: runtime.active_sessions,
        available_fn=lambda runtime: runtime.livekit_connected,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the assistant's sensors."""
    async_add_entities(ShackletonSensor(entry, description) for description in SENSORS)


class ShackletonSensor(ShackletonEntity, SensorEntity):
    """A sensor whose value and availability come from the runtime."""

    entity_description: ShackletonSensorDescription

    @property
    def available(self) -> bool:
        """Return whether the sensor's source is up."""
        return self.entity_description.available_fn(self.runtime)

    @property
    def native_value(self) -> str | int:
        """Return the current value."""
        return self.entity_description.value_fn(self.runtime)
