"""Where an entry's voice runs: the interface both places implement."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant

from .models import ShackletonConfigEntry, ShackletonRuntime

if TYPE_CHECKING:
    from .announcements import Announcement
    from .voice.settings import LiveKitServer


@dataclass(frozen=True, slots=True)
class VoiceHost:
    """What either place needs from the entry: HA, the entry, its state and server."""

    hass: HomeAssistant
    entry: ShackletonConfigEntry
    runtime: ShackletonRuntime
    server: LiveKitServer | None
    # Someone is in a room: make it a device, and say what waited for them.
    on_served: Callable[[str], None]


class VoiceBackend(ABC):
    """An entry's voice, in Home Assistant's process or in external workers.

    Chosen once, when the entry is set up (the placement option reloads the entry).
    """

    def __init__(self, host: VoiceHost) -> None:
        """Serve the host's entry."""
        self._hass = host.hass
        self._entry = host.entry
        self._runtime = host.runtime
        self._server = host.server
        self._on_served = host.on_served

    @abstractmethod
    def async_start(self) -> None:
        """Start serving (loading an engine, or opening the entry to workers)."""

    @abstractmethod
    async def async_ready(self) -> bool:
        """Wait until the voice can serve rooms; False when it cannot."""

    @property
    @abstractmethod
    def active_rooms(self) -> list[str]:
        """Return the rooms with a voice session."""

    @abstractmethod
    def say(self, room: str, announcement: Announcement, interrupt: bool) -> bool:
        """Say an announcement in `room` now; False when nobody is there."""

    @abstractmethod
    async def async_start_conversation(
        self, room: str, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Speak first in `room` and listen; False when nobody is there."""

    @abstractmethod
    async def async_ask(self, room: str, text: str, *, chime: bool, seconds: float) -> str | None:
        """Ask `text` in `room`; return the answer heard within `seconds`, else None.

        Raises `NobodyListening` (voice/home.py) when nobody is in the room.
        """

    @abstractmethod
    def async_join_room(self, room: str) -> None:
        """Bring the agent into a LiveKit room."""

    @abstractmethod
    async def async_leave_room(self, room: str) -> bool:
        """Take the agent out of a room; return whether it was there."""

    @abstractmethod
    def async_apply_options(self, options: dict[str, Any]) -> bool:
        """Apply changed turn-taking options live; False when the entry must reload."""

    @abstractmethod
    async def async_stop(self) -> None:
        """Stop serving, leaving nothing running."""
