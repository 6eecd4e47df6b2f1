"""Runtime data of a Shackleton config entry."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import statistics
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, callback

from .const import (
    STATE_IDLE,
    STATE_LISTENING,
    STATE_OFFLINE,
    STATE_SPEAKING,
    STATE_THINKING,
)

if TYPE_CHECKING:
    from .conversation import ShackletonConversationEntity
    from .livekit_server import LiveKitLink
    from .room_devices import RoomDevices
    from .tools.api import ShackletonAPI
    from .tools.notes import NoteStore
    from .tools.reminders import ReminderStore
    from .usage import UsageMeter
    from .voice_manager import VoiceManager

# The busiest room decides what the assistant state sensor shows.
_STATE_RANK = {STATE_SPEAKING: 3, STATE_THINKING: 2, STATE_LISTENING: 1, STATE_IDLE: 0}
TURN_WINDOW = 200

type ShackletonConfigEntry = ConfigEntry[ShackletonData]


class Observable:
    """Pushes every change to its listeners: the entities that show it."""

    def __init__(self) -> None:
        """Start with nobody listening."""
        self._listeners: list[Callable[[], None]] = []

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` after every change; return the function that stops it."""
        self._listeners.append(listener)

        @callback
        def remove() -> None:
            self._listeners.remove(listener)

        return remove

    @callback
    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()


class ShackletonRuntime(Observable):
    """The live state the entities show; every change is pushed to listeners."""

    def __init__(self, *, livekit_configured: bool) -> None:
        """Start offline: nothing is known about the server yet."""
        super().__init__()
        self.livekit_configured = livekit_configured
        self.livekit_connected = False
        self.livekit_error: str | None = None
        self.voice_enabled = True
        # None while the voice packages load; then whether they could be used.
        self.voice_available: bool | None = None
        self.voice_error: str | None = None
        self.voice_details: dict[str, Any] = {}
        self.room_states: dict[str, str] = {}
        self.last_turn_ms: float | None = None
        self.room_last_turn_ms: dict[str, int] = {}
        self._e2e: deque[float] = deque(maxlen=TURN_WINDOW)
        self._turns = 0
        self._failed_turns = 0

    @property
    def active_sessions(self) -> int:
        """Return how many rooms have a voice session."""
        return len(self.room_states)

    def room_state(self, room: str) -> str:
        """Return what the assistant is doing in one room (`offline`: nobody there)."""
        if not self.voice_enabled:
            return STATE_OFFLINE
        return self.room_states.get(room, STATE_OFFLINE)

    @property
    def assistant_state(self) -> str:
        """Return what the assistant is doing, `offline` when it cannot hear anyone."""
        if not self.voice_enabled or not (self.livekit_connected or self.room_states):
            return STATE_OFFLINE
        return max(
            self.room_states.values(), key=lambda s: _STATE_RANK.get(s, 0), default=STATE_IDLE
        )

    @callback
    def async_set_livekit(self, *, connected: bool, error: str | None) -> None:
        """Record the LiveKit server's reachability."""
        if (connected, error) == (self.livekit_connected, self.livekit_error):
            return
        self.livekit_connected = connected
        self.livekit_error = error
        self._notify()

    @callback
    def async_set_voice_enabled(self, enabled: bool) -> None:
        """Turn the voice assistant on or off."""
        if enabled != self.voice_enabled:
            self.voice_enabled = enabled
            self._notify()

    @callback
    def async_set_voice(
        self, *, available: bool, error: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Record whether the voice engine could be started."""
        self.voice_available = available
        self.voice_error = error
        self.voice_details = details or {}
        self._notify()

    @callback
    def async_set_room_state(self, room: str, state: str | None) -> None:
        """Record a room's agent state; None when its session ended."""
        if state is None:
            if self.room_states.pop(room, None) is None:
                return
        elif self.room_states.get(room) == state:
            return
        else:
            self.room_states[room] = state
        self._notify()

    @callback
    def async_record_turn(
        self, end_to_end: float | None, *, failed: bool, room: str | None = None
    ) -> None:
        """Feed a finished turn into the rolling figures (the home's, and its room's)."""
        self._turns += 1
        if failed:
            self._failed_turns += 1
        if end_to_end is not None:
            self._e2e.append(end_to_end)
            self.last_turn_ms = milliseconds = round(end_to_end * 1000)
            if room is not None:
                self.room_last_turn_ms[room] = milliseconds
        self._notify()

    def turn_figures(self) -> dict[str, Any]:
        """Return p50/p95 end-to-end latency (ms) over the last turns."""
        figures: dict[str, Any] = {"turns": self._turns, "failed_turns": self._failed_turns}
        if len(self._e2e) >= 2:
            cuts = statistics.quantiles(self._e2e, n=20, method="inclusive")
            figures |= {"e2e_p50_ms": round(cuts[9] * 1000), "e2e_p95_ms": round(cuts[18] * 1000)}
        elif self._e2e:
            figures |= {"e2e_p50_ms": round(self._e2e[0] * 1000)}
        return figures

    def as_dict(self) -> dict[str, Any]:
        """Return the state for diagnostics."""
        return {
            "livekit_configured": self.livekit_configured,
            "livekit_connected": self.livekit_connected,
            "livekit_error": self.livekit_error,
            "voice_enabled": self.voice_enabled,
            "voice_available": self.voice_available,
            "voice_error": self.voice_error,
            "voice": self.voice_details,
            "assistant_state": self.assistant_state,
            "active_sessions": self.active_sessions,
            "rooms": dict(self.room_states),
            "turn_figures": self.turn_figures(),
        }


@dataclass(slots=True)
class ShackletonData:
    """What a loaded entry holds in `entry.runtime_data`."""

    runtime: ShackletonRuntime
    voice: VoiceManager
    # Shackleton's LLM API, registered with HA while the entry is loaded.
    api: ShackletonAPI
    # What the assistant remembers (Store-backed, survives restarts).
    notes: NoteStore
    reminders: ReminderStore
    # Each room served is a device (room_devices.py).
    rooms: RoomDevices
    # What the providers did today and this month (usage.py; the usage sensors).
    usage: UsageMeter
    link: LiveKitLink | None = field(default=None)
    # Each assistant's Assist agent by subentry id, once their platform is set up.
    agents: dict[str, ShackletonConversationEntity] = field(default_factory=dict)
    # The assistant each room talks to (subentry id), as its select entity says.
    room_assistants: dict[str, str] = field(default_factory=dict)
    # The options the entry runs with, to tell a live change from a reload.
    options: dict[str, Any] = field(default_factory=dict)
