"""Runtime data of a Shackleton config entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, callback

from .const import STATE_IDLE, STATE_OFFLINE

if TYPE_CHECKING:
    from .livekit_server import LiveKitLink

type ShackletonConfigEntry = ConfigEntry[ShackletonData]


class ShackletonRuntime:
    """The live state the entities show; every change is pushed to listeners."""

    def __init__(self, *, livekit_configured: bool) -> None:
        """Start offline: nothing is known about the server yet."""
        self.livekit_configured = livekit_configured
        self.livekit_connected = False
        self.livekit_error: str | None = None
        self.voice_enabled = True
        self.agent_state = STATE_IDLE
        self.active_sessions = 0
        self._listeners: list[Callable[[], None]] = []

    @property
    def assistant_state(self) -> str:
        """Return what the assistant is doing, `offline` when it cannot hear anyone."""
        if not (self.livekit_connected and self.voice_enabled):
            return STATE_OFFLINE
        return self.agent_state

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` after every change; return the function that stops it."""
        self._listeners.append(listener)

        @callback
        def remove() -> None:
            self._listeners.remove(listener)

        return remove

    @callback
    def async_set_livekit(self, *, connected: bool, error: str | None) -> None:
        """Record the LiveKit server's reachability."""
        if (connected, error) == (self.livekit_connected, self.livekit_error):
            return
        self.livekit_connected = connected
        self.livekit_error = error
        if not connected:
            self.active_sessions = 0
        self._notify()

    @callback
    def async_set_voice_enabled(self, enabled: bool) -> None:
        """Turn the voice assistant on or off."""
        if enabled != self.voice_enabled:
            self.voice_enabled = enabled
            self._notify()

    def as_dict(self) -> dict[str, Any]:
        """Return the state for diagnostics."""
        return {
            "livekit_configured": self.livekit_configured,
            "livekit_connected": self.livekit_connected,
            "livekit_error": self.livekit_error,
            "voice_enabled": self.voice_enabled,
            "assistant_state": self.assistant_state,
            "active_sessions": self.active_sessions,
        }

    @callback
    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


@dataclass(slots=True)
class ShackletonData:
    """What a loaded entry holds in `entry.runtime_data`."""

    runtime: ShackletonRuntime
    link: LiveKitLink | None = field(default=None)
