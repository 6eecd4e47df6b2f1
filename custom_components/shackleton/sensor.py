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
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import ASSISTANT_STATES
from .entity import RoomEntity, ShackletonEntity, async_add_room_entities
from .models import ShackletonConfigEntry, ShackletonRuntime

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ShackletonSensorDescription(SensorEntityDescription):
    """A sensor read off the runtime."""

    value_fn: Callable[[ShackletonRuntime], str | int | float | None]
    available_fn: Callable[[ShackletonRuntime], bool]


def _voice_ready(runtime: ShackletonRuntime) -> bool:
    return runtime.voice_available is True


SENSORS: tuple[ShackletonSensorDescription, ...] = (
    ShackletonSensorDescription(
        key="assistant_state",
        translation_key="assistant_state",
        device_class=SensorDeviceClass.ENUM,
        options=list(ASSISTANT_STATES),
        value_fn=lambda runtime: runtime.assistant_state,
        available_fn=_voice_ready,
    ),
    ShackletonSensorDescription(
        key="active_sessions",
        translation_key="active_sessions",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda runtime: runtime.active_sessions,
        available_fn=_voice_ready,
    ),
    ShackletonSensorDescription(
        key="last_turn_latency",
        translation_key="last_turn_latency",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Changes every turn: recorder noise most people do not want.
        entity_registry_enabled_default=False,
        value_fn=lambda runtime: runtime.last_turn_ms,
        available_fn=_voice_ready,
    ),
)


@dataclass(frozen=True, kw_only=True)
class RoomSensorDescription(SensorEntityDescription):
    """A room's sensor read off the runtime."""

    value_fn: Callable[[ShackletonRuntime, str], str | int | float | None]


ROOM_SENSORS: tuple[RoomSensorDescription, ...] = (
    RoomSensorDescription(
        key="room_state",
        translation_key="room_state",
        device_class=SensorDeviceClass.ENUM,
        options=list(ASSISTANT_STATES),
        value_fn=lambda runtime, room: runtime.room_state(room),
    ),
    RoomSensorDescription(
        key="room_last_turn_latency",
        translation_key="room_last_turn_latency",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.MILLISECONDS,
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda runtime, room: runtime.room_last_turn_ms.get(room),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the assistant's sensors, and each room's."""
    async_add_entities(ShackletonSensor(entry, description) for description in SENSORS)
    async_add_room_entities(
        hass,
        entry,
        async_add_entities,
        lambda room: [RoomSensor(entry, room, description) for description in ROOM_SENSORS],
    )


class ShackletonSensor(ShackletonEntity, SensorEntity):
    """A sensor whose value and availability come from the runtime."""

    entity_description: ShackletonSensorDescription

    @property
    def available(self) -> bool:
        """Return whether the sensor's source is up."""
        return self.entity_description.available_fn(self.runtime)

    @property
    def native_value(self) -> str | int | float | None:
        """Return the current value."""
        return self.entity_description.value_fn(self.runtime)


class RoomSensor(RoomEntity, SensorEntity):
    """A room's state or last-turn figure."""

    entity_description: RoomSensorDescription

    @property
    def available(self) -> bool:
        """Return whether the voice engine runs (else nothing is known of rooms)."""
        return _voice_ready(self.runtime)

    @property
    def native_value(self) -> str | int | float | None:
        """Return the current value."""
        return self.entity_description.value_fn(self.runtime, self.room)
