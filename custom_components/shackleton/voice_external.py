"""Voice served by external workers: they connect over WebSocket, LiveKit sends them rooms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from functools import partial
import time
from typing import TYPE_CHECKING, Any, Final

import aiohttp
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .announcements import Announcement
from .const import DOMAIN, ISSUE_VOICE_START_FAILED, ISSUE_VOICE_UNAVAILABLE, LOGGER
from .repairs import async_clear_issue
from .voice.home import NobodyListening
from .voice.settings import Backoff
from .voice_backend import VoiceBackend, VoiceHost
from .worker_api import WorkerHub, agent_name, worker_settings

if TYPE_CHECKING:
    from livekit import api

    from .voice.settings import LiveKitServer


# LiveKit offers a dispatch once, to the workers available at that moment: when all are
# full (a worker reports a freed room up to 2.5 s late) or none is registered, it stays
# in the room with nobody coming. A worker that takes it shows as the dispatch's job in
# a fraction of a second (0.2 s on a loaded 2-core machine); its session takes seconds.
DISPATCH_TAKEN_SECONDS: Final = 3.0
DISPATCH_SERVED_SECONDS: Final = 40.0
DISPATCH_POLL_SECONDS: Final = 0.5
DISPATCH_ATTEMPTS: Final = 5
DISPATCH_BACKOFF: Final = Backoff(initial=1.0, maximum=10.0)


class ExternalVoice(VoiceBackend):
    """The entry's side of its external workers: their rooms, and LiveKit dispatches."""

    def __init__(self, host: VoiceHost, requeue: Callable[[Announcement], None]) -> None:
        """Prepare; `async_start` opens the entry to workers, `requeue` keeps the unsaid."""
        super().__init__(host)
        self._requeue = requeue
        self.hub: WorkerHub | None = None
        # One dispatch per room until its worker reports in.
        self._dispatches: dict[str, asyncio.Task[None]] = {}

    @callback
    def async_start(self) -> None:
        """Serve the entry from external workers: they connect over WebSocket."""
        # The voice packages are the worker's business now: an in-process failure is moot.
        async_clear_issue(self._hass, ISSUE_VOICE_UNAVAILABLE, self._entry.entry_id)
        async_clear_issue(self._hass, ISSUE_VOICE_START_FAILED, self._entry.entry_id)
        self.hub = WorkerHub(
            self._entry,
            settings=partial(worker_settings, self._hass, self._entry),
            on_room=self._async_on_room,
            on_workers=self._async_on_workers,
            requeue=self._requeue,
        )
        self._entry.async_on_unload(self.hub.async_close)
        self._async_on_workers(0)

    async def async_ready(self) -> bool:
        """Return True: the workers take rooms from LiveKit's dispatch, whenever they come."""
        return True

    @callback
    def _async_on_workers(self, count: int) -> None:
        """Voice is available while at least one worker is connected."""
        self._runtime.async_set_voice(
            available=count > 0,
            error=None if count else "no_worker",
            details={"mode": "external", "workers": count},
        )

    @callback
    def _async_on_room(self, room: str, active: bool) -> None:
        if active:
            self._runtime.async_set_room_state(room, "listening")
            self._on_served(room)
        else:
            self._runtime.async_set_room_state(room, None)

    @property
    def active_rooms(self) -> list[str]:
        """Return the rooms a worker serves."""
        return sorted(self.hub.rooms) if self.hub is not None else []

    def say(self, room: str, announcement: Announcement, interrupt: bool) -> bool:
        """Have the room's worker say an announcement; False when no worker serves it."""
        return self.hub is not None and self.hub.announce(announcement, room, interrupt=interrupt)

    async def async_start_conversation(
        self, room: str, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Have the room's worker speak first and listen; False when none serves it."""
        return self.hub is not None and await self.hub.async_start_conversation(
            room, text, context, chime=chime
        )

    async def async_ask(self, room: str, text: str, *, chime: bool, seconds: float) -> str | None:
        """Have the room's worker ask `text`; return the answer heard within `seconds`."""
        if self.hub is None:
            raise NobodyListening(room)
        return await self.hub.async_ask(room, text, chime=chime, seconds=seconds)

    def async_apply_options(self, options: dict[str, Any]) -> bool:
        """Send changed turn-taking options to the workers, which apply them live."""
        if self.hub is None:
            return False
        self.hub.async_push_settings()
        return True

    async def async_leave_room(self, room: str) -> bool:
        """Have the room's worker leave it; return whether one served it."""
        return self.hub is not None and self.hub.leave(room)

    async def async_stop(self) -> None:
        """Nothing to close here: the hub closes with the entry, the workers go on."""

    @callback
    def async_join_room(self, room: str) -> None:
        """Ask LiveKit to send one of the entry's workers to `room` (its own dispatch)."""
        # One dispatch at a time per room, until its worker reports in: a second card
        # (or a reconnect) meanwhile would bring a second agent.
        if (
            self._server is None
            or self.hub is None
            or room in self.hub.rooms
            or room in self._dispatches
        ):
            return
        task = self._entry.async_create_background_task(
            self._hass, self._async_dispatch(self._server, room), f"{DOMAIN} dispatch {room}"
        )
        self._dispatches[room] = task
        task.add_done_callback(lambda _: self._dispatches.pop(room, None))

    async def _async_dispatch(self, server: LiveKitServer, room: str) -> None:
        """Dispatch the entry's agent to `room`, again while no worker takes it."""
        from livekit import api

        client = api.LiveKitAPI(
            server.url.replace("ws", "http", 1),
            server.api_key,
            server.api_secret,
            session=async_get_clientsession(self._hass),
        )
        try:
            if await self._async_offer(client, room):
                return
        except (TimeoutError, aiohttp.ClientError, api.TwirpError) as err:
            LOGGER.warning(
                "%s: LiveKit could not send a worker to room %s: %s",
                self._entry.title,
                room,
                getattr(err, "message", None) or type(err).__name__,
            )
            self._runtime.async_set_livekit(connected=False, error="cannot_connect")
            return
        LOGGER.warning(
            "%s: no voice worker took room %s after %s offers: are the workers running, "
            "and is one of them free?",
            self._entry.title,
            room,
            DISPATCH_ATTEMPTS,
        )

    async def _async_offer(self, client: api.LiveKitAPI, room: str) -> bool:
        """Offer `room` to the workers until one serves it; False when none took it."""
        from livekit import api

        request = api.CreateAgentDispatchRequest(
            agent_name=agent_name(self._entry.entry_id), room=room
        )
        for attempt in range(1, DISPATCH_ATTEMPTS + 1):
            dispatch = await asyncio.wait_for(client.agent_dispatch.create_dispatch(request), 10)
            self._runtime.async_set_livekit(connected=True, error=None)
            if await self._async_wait_served(client, dispatch.id, room):
                return True
            # Withdrawn before the next offer: LiveKit waits for this one's answers
            # and ends any job it started, so a late taker brings no second agent.
            with contextlib.suppress(api.TwirpError):
                await asyncio.wait_for(client.agent_dispatch.delete_dispatch(dispatch.id, room), 10)
            if attempt < DISPATCH_ATTEMPTS:
                await asyncio.sleep(DISPATCH_BACKOFF.delay(attempt))
        return False

    async def _async_wait_served(self, client: api.LiveKitAPI, dispatch_id: str, room: str) -> bool:
        """Wait until a worker serves `room`; False when no worker took the dispatch."""
        now = time.monotonic()
        taken_by, served_by = now + DISPATCH_TAKEN_SECONDS, now + DISPATCH_SERVED_SECONDS
        taken = False
        while self.hub is not None and room not in self.hub.rooms:
            if not taken:
                found = await asyncio.wait_for(
                    client.agent_dispatch.get_dispatch(dispatch_id, room), 10
                )
                taken = found is not None and len(found.state.jobs) > 0
                if not taken and time.monotonic() > taken_by:
                    return False
            elif time.monotonic() > served_by:
                # Taken, but its session never reported (the job failed): the room's
                # next request may try again.
                return True
            await asyncio.sleep(DISPATCH_POLL_SECONDS)
        return True
