"""An entry's voice: where it runs (chosen once, at set-up), and what it announces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import Event, HomeAssistant, callback

from .announcements import Announcement, Announcer
from .const import CONF_WORKER, WORKER_EXTERNAL
from .models import ShackletonConfigEntry, ShackletonRuntime
from .voice.home import NobodyListening
from .voice_backend import VoiceHost
from .voice_external import ExternalVoice
from .voice_in_process import InProcessVoice

if TYPE_CHECKING:
    from .voice.engine import RoomSession, VoiceEngine
    from .voice.settings import LiveKitServer


class VoiceManager:
    """Owns an entry's voice for as long as the entry is loaded."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ShackletonConfigEntry,
        runtime: ShackletonRuntime,
        server: LiveKitServer | None,
    ) -> None:
        """Choose where the voice runs; `async_start` starts it."""
        self._hass = hass
        self._entry = entry
        self._runtime = runtime
        self.server = server
        self.announcer = Announcer(
            hass,
            entry.entry_id,
            entry.title,
            say=self._say,
            active_rooms=lambda: self.backend.active_rooms,
        )
        host = VoiceHost(hass, entry, runtime, server, self._async_room_served)
        self.backend: InProcessVoice | ExternalVoice
        if entry.options.get(CONF_WORKER) == WORKER_EXTERNAL:
            self.backend = ExternalVoice(
                host,
                lambda announcement: self.announcer.async_requeue(
                    announcement, dict(entry.options)
                ),
            )
        else:
            self.backend = InProcessVoice(host)

    async def async_load(self) -> None:
        """Take back the announcements queued before a restart."""
        await self.announcer.async_load()

    @callback
    def async_start(self) -> None:
        """Start the voice without holding up Home Assistant's start."""
        self._entry.async_on_unload(self.async_stop)
        self._entry.async_on_unload(
            self._hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, self._async_on_hass_stop)
        )
        self.backend.async_start()

    @property
    def engine(self) -> VoiceEngine | None:
        """Return the in-process engine, once loaded (None with external workers)."""
        return self.backend.engine if isinstance(self.backend, InProcessVoice) else None

    async def async_ready(self) -> bool:
        """Wait until the voice can serve rooms; False when it cannot."""
        return await self.backend.async_ready()

    @property
    def active_rooms(self) -> list[str]:
        """Return the rooms with a voice session (someone can hear the assistant)."""
        return self.backend.active_rooms

    def _say(self, room: str, announcement: Announcement, interrupt: bool) -> bool:
        return self._runtime.voice_enabled and self.backend.say(room, announcement, interrupt)

    def announce(self, room: str | None, text: str, *, chime: bool = False) -> bool:
        """Say `text` in `room` if someone is there; False otherwise (reminders, timers)."""
        return room is not None and self._say(room, Announcement(text, chime=chime), False)

    @callback
    def async_announce(
        self, rooms: list[str] | None, announcement: Announcement, policy: str
    ) -> list[dict[str, Any]]:
        """Announce into `rooms` (None: every active room); see `Announcer`."""
        return self.announcer.async_announce(rooms, announcement, policy)

    @property
    def queued(self) -> list[Announcement]:
        """Return the announcements waiting for someone to join."""
        return self.announcer.queued

    async def async_start_conversation(
        self, room: str, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Speak first in `room` and listen; False when nobody is there."""
        return self._runtime.voice_enabled and await self.backend.async_start_conversation(
            room, text, context, chime=chime
        )

    async def async_refresh_room(self, room: str) -> None:
        """Hand a room to its (newly chosen) assistant now.

        In HA's process only: an external worker's room takes it at its next session.
        """
        if (engine := self.engine) is not None:
            await engine.async_refresh_room(room)

    async def async_ask(self, room: str, text: str, *, chime: bool, seconds: float) -> str | None:
        """Ask `text` in `room`; return the answer heard within `seconds`, else None.

        Raises `NobodyListening` (voice/home.py) when nobody can hear the question.
        """
        if not self._runtime.voice_enabled:
            raise NobodyListening(room)
        return await self.backend.async_ask(room, text, chime=chime, seconds=seconds)

    async def async_start_local_session(self, room: str, **io: Any) -> RoomSession:
        """Start a session on local audio (tests, the demo, notebooks)."""
        if isinstance(self.backend, InProcessVoice):
            return await self.backend.async_start_local_session(room, **io)
        raise RuntimeError("the voice engine runs in an external worker")

    @callback
    def async_join_room(self, room: str) -> None:
        """Have the agent join a LiveKit room (and stay, reconnecting) until asked to leave."""
        self.backend.async_join_room(room)

    async def async_leave_room(self, room: str) -> bool:
        """Make the agent leave a room; return whether it was there (or trying to be)."""
        return await self.backend.async_leave_room(room)

    def async_apply_options(self, options: dict[str, Any]) -> bool:
        """Apply changed turn-taking options live; False when the entry must reload."""
        return self.backend.async_apply_options(options)

    @callback
    def _async_room_served(self, room: str) -> None:
        """Someone is in `room`: make it a device, and say what waited for them."""
        self._entry.runtime_data.rooms.async_served(room)
        self.announcer.async_deliver(room)

    async def _async_on_hass_stop(self, _event: Event) -> None:
        await self.async_stop()

    async def async_stop(self) -> None:
        """Stop the voice; the announcement queue is saved for the next start."""
        await self.announcer.async_save()
        await self.backend.async_stop()
