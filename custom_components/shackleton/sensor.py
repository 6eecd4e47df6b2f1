"""Sensors of Shackleton."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddEntitiesCallback

from .const import ASSISTANT_STATES
from .entity import RoomEntity, ShackletonEntity, async_add_room_entities, service_device_info
from .models import ShackletonConfigEntry, ShackletonRuntime
from .provider_catalog import PROVIDERS
from .usage import COUNTERS, PERIOD_DAY, PERIODS, PROVIDER_NAMES, Counter, UsageMeter

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
    usage = usage_sensors(entry)
    async_remove_stale_usage(hass, entry, {sensor.unique_id for sensor in usage})
    async_add_entities(usage)


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


# --- Usage and cost (usage.py) ------------------------------------------------------

# Counter -> device class and unit; None: the unit is translated (tokens, characters).
_USAGE_UNITS: dict[str, tuple[SensorDeviceClass | None, str | None]] = {
    "stt_seconds": (SensorDeviceClass.DURATION, UnitOfTime.SECONDS),
}


def usage_sensors(entry: ShackletonConfigEntry) -> list[SensorEntity]:
    """Return a sensor per counter in use and period, and the cost sensors if priced."""
    meter = entry.runtime_data.usage
    sensors: list[SensorEntity] = [
        UsageSensor(entry, counter, provider, period)
        for counter, provider in meter.counters.items()
        for period in PERIODS
    ]
    if meter.prices():
        sensors += [CostSensor(entry, period) for period in PERIODS]
    return sensors


@callback
def async_remove_stale_usage(
    hass: HomeAssistant, entry: ShackletonConfigEntry, kept: set[str | None]
) -> None:
    """Remove the usage and cost sensors the entry no longer has.

    A cleared price, or a stage moved to another provider, would otherwise leave a
    sensor "unavailable" for good.
    """
    registry = er.async_get(hass)
    possible = {
        f"{entry.entry_id}_{provider}_{counter.key}_{period}"
        for provider in PROVIDERS
        for counter in COUNTERS
        for period in PERIODS
    } | {f"{entry.entry_id}_estimated_cost_{period}" for period in PERIODS}
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        if entity.domain == "sensor" and entity.unique_id in possible - kept:
            registry.async_remove(entity.entity_id)


class _PeriodSensor(SensorEntity):
    """A total of the current day or month, restarted with a new `last_reset`.

    `total` with `last_reset`: HA's statistics (sensor/recorder.py) start a new cycle
    when `last_reset` changes, and sum the cycles, so the month's sensor gives hourly,
    daily and monthly figures in a statistics card.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    _attr_state_class = SensorStateClass.TOTAL

    def __init__(self, entry: ShackletonConfigEntry, period: str) -> None:
        """Bind the sensor to its entry's usage meter and service device."""
        self.meter: UsageMeter = entry.runtime_data.usage
        self.period = period
        self._attr_device_info = service_device_info(entry)
        # Enough with the month's totals (its statistics have the days); the day's
        # counters are there for those who want them on a dashboard.
        self._attr_entity_registry_enabled_default = period != PERIOD_DAY

    @property
    def last_reset(self) -> datetime:
        """Return when the day or month began."""
        return self.meter.last_reset(self.period)

    async def async_added_to_hass(self) -> None:
        """Follow the meter's changes."""
        await super().async_added_to_hass()
        self.async_on_remove(self.meter.async_add_listener(self.async_write_ha_state))


class UsageSensor(_PeriodSensor):
    """What one provider did for one stage today or this month."""

    def __init__(
        self, entry: ShackletonConfigEntry, counter: Counter, provider: str, period: str
    ) -> None:
        """Show `counter` of `provider` for `period`."""
        super().__init__(entry, period)
        self.counter = counter
        self._attr_unique_id = f"{entry.entry_id}_{provider}_{counter.key}_{period}"
        self._attr_translation_key = f"{counter.key}_{period}"
        self._attr_translation_placeholders = {"provider": PROVIDER_NAMES.get(provider, provider)}
        self._attr_device_class, self._attr_native_unit_of_measurement = _USAGE_UNITS.get(
            counter.key, (None, None)
        )
        self._attr_suggested_display_precision = 0

    @property
    def native_value(self) -> float:
        """Return the total so far (seconds to the millisecond)."""
        return round(self.meter.count(self.counter, self.period), 3)


class CostSensor(_PeriodSensor):
    """The estimated cost of the day or month: each priced counter times its price."""

    _attr_device_class = SensorDeviceClass.MONETARY
    _attr_suggested_display_precision = 2

    def __init__(self, entry: ShackletonConfigEntry, period: str) -> None:
        """Show the cost for `period`, in the home's currency."""
        super().__init__(entry, period)
        self._attr_unique_id = f"{entry.entry_id}_estimated_cost_{period}"
        self._attr_translation_key = f"estimated_cost_{period}"
        # The day's cost is the figure people look at; the entities are few.
        self._attr_entity_registry_enabled_default = True

    async def async_added_to_hass(self) -> None:
        """Take the home's currency (it can change; a reload takes the new one)."""
        self._attr_native_unit_of_measurement = self.hass.config.currency
        await super().async_added_to_hass()

    @property
    def native_value(self) -> float:
        """Return the estimated cost, to a millionth (a few tokens cost less than a cent)."""
        return round(self.meter.cost(self.period), 6)
