"""The voice assistant switch of Shackleton."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import STATE_OFF
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .entity import ShackletonEntity
from .models import ShackletonConfigEntry

PARALLEL_UPDATES = 0

VOICE_ENABLED = SwitchEntityDescription(key="voice_enabled", translation_key="voice_enabled")


async def async_setup_entry(
    hass: HomeAssistant, entry: ShackletonConfigEntry, async_add_entities: AddEntitiesCallback
) -> None:
    """Add the switch that turns voice on and off."""
    async_add_entities([VoiceEnabledSwitch(entry, VOICE_ENABLED)])


class VoiceEnabledSwitch(ShackletonEntity, SwitchEntity, RestoreEntity):
    """Turns voice on or off; while off the assistant joins no room. Survives restarts."""

    async def async_added_to_hass(self) -> None:
        """Restore the last choice before following the runtime."""
        if (last := await self.async_get_last_state()) is not None:
            self.runtime.async_set_voice_enabled(last.state != STATE_OFF)
        await super().async_added_to_hass()

    @property
    def is_on(self) -> bool:
        """Return whether voice is enabled."""
        return self.runtime.voice_enabled

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Enable voice."""
        self.runtime.async_set_voice_enabled(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Disable voice."""
        self.runtime.async_set_voice_enabled(False)
