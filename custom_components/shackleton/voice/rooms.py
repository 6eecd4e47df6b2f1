"""Joining LiveKit rooms directly: agent tokens, one session per room, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import logging
from typing import TYPE_CHECKING, Any

from livekit import rtc

from .settings import Backoff, LiveKitServer

if TYPE_CHECKING:
    from .engine import RoomSession, VoiceEngine

_LOGGER = logging.getLogger(__name__)
AGENT_IDENTITY = "shackleton-agent"


def agent_token(server: LiveKitServer, room: str, ttl: timedelta = timedelta(hours=1)) -> str:
    """Return a token that lets the agent, and only into `room`."""
    return server.room_token(room, AGENT_IDENTITY, name="Shackleton", ttl=ttl, agent=True)


def classify(error: Exception) -> str:
    """Return `invalid_auth` or `cannot_connect` for a failed room connection."""
    text = str(error)
    if "401" in text or "403" in text or "Unauthorized" in text:
        return "invalid_auth"
    return "cannot_connect"


class RoomLink:
    """Keeps the agent in one room for as long as it is wanted."""

    def __init__(
        self,
        engine: VoiceEngine,
        server: LiveKitServer,
        room: str,
        *,
        on_status: Callable[[str, str | None], None],
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        """Prepare; `run` does the work until cancelled."""
        self.engine = engine
        self.server = server
        self.room = room
        self._on_status = on_status
        self._backoff = backoff or Backoff()
        self._connect_timeout = connect_timeout
        self.attempts = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        """Connect, serve, and reconnect after failures, until cancelled."""
        failures = 0
        while True:
            self.attempts += 1
            rtc_room = rtc.Room()
            try:
                await asyncio.wait_for(
                    rtc_room.connect(
                        self.server.url,
                        agent_token(self.server, self.room),
                        rtc.RoomOptions(auto_subscribe=True),
                    ),
                    self._connect_timeout,
                )
            except (rtc.ConnectError, TimeoutError) as err:
                await rtc_room.disconnect()
                failures += 1
                reason = classify(err) if isinstance(err, rtc.ConnectError) else "cannot_connect"
                if reason != self.last_error:
                    # Once per kind of outage; the status callback carries the rest.
                    _LOGGER.warning("Room %s: cannot join (%s): %s", self.room, reason, err)
                self.last_error = reason
                self._on_status("error", reason)
                await asyncio.sleep(self._backoff.delay(failures))
                continue
            failures = 0
            self.last_error = None
            try:
                await self._serve(rtc_room)
            finally:
                await self.engine.async_end_session(self.room)
                await rtc_room.disconnect()
            self._on_status("reconnecting", None)
            await asyncio.sleep(self._backoff.delay(1))

    async def _serve(self, rtc_room: rtc.Room) -> None:
        """Wait for a person, talk with them, and return when the room is lost."""
        self._on_status("connected", None)
        lost = asyncio.Event()
        person: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def consider(participant: rtc.RemoteParticipant) -> None:
            if participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT and not person.done():
                person.set_result(participant.identity)

        session: RoomSession | None = None

        def reconnecting() -> None:
            # The server went away: LiveKit's SDK retries on its own for a while. Until
            # it is back, nobody in the room can be heard, and the states say so.
            self._on_status("server_lost", None)
            self.engine.home.report_state(self.room, "offline")

        def reconnected() -> None:
            self._on_status("serving" if session is not None else "connected", None)
            if session is not None and session.session is not None:
                self.engine.home.report_state(self.room, session.session.agent_state)

        rtc_room.on("participant_connected", consider)
        rtc_room.on("disconnected", lambda *_: lost.set())
        rtc_room.on("reconnecting", reconnecting)
        rtc_room.on("reconnected", reconnected)
        for participant in rtc_room.remote_participants.values():
            consider(participant)
        waiting: asyncio.Future[Any] = asyncio.ensure_future(lost.wait())
        try:
            first: set[asyncio.Future[Any]] = {person, waiting}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if not person.done():
                return
            session = await self.engine.async_start_session(
                self.room, rtc_room=rtc_room, participant_identity=person.result()
            )
            self._on_status("serving", None)
            closed: asyncio.Future[Any] = asyncio.ensure_future(session.closed.wait())
            ended: set[asyncio.Future[Any]] = {closed, waiting}
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
        finally:
            waiting.cancel()
            if not person.done():
                person.cancel()
