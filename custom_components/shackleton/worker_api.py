"""The WebSocket commands through which an external voice worker serves an entry.

A worker (`python -m shackleton_voice`: the voice package run on its own, see
`voice/worker.py`) connects to HA's WebSocket API with an administrator's long-lived
token and binds its connection to one entry whose voice worker option is *external*.
It then:

- receives the entry's voice settings (secrets included, hence admins only) and, later,
  new turn-taking settings, announcements and start_conversation requests;
- lists and calls the LLM API's tools, asks the home's conversation agents and speech
  engines: all of it runs here, through the same `HassHome` as the in-process engine,
  so confirmations, audit events and redaction are the same;
- reports sessions, states, turns and errors, which feed the same entities and events.

A connection serves one entry. Every command but `connect` must name the entry the
connection is bound to.
"""

from __future__ import annotations

import asyncio
import binascii
from collections.abc import Callable, Coroutine, Mapping
import dataclasses
from functools import wraps
import time
from typing import TYPE_CHECKING, Any, Final
import weakref

from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import (
    ERR_INVALID_FORMAT,
    WebSocketCommandHandler,
)
from homeassistant.components.websocket_api.decorators import (
    async_response,
    require_admin,
    websocket_command,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util.hass_dict import HassKey
import probatio

from .const import CONF_WORKER, DOMAIN, LOGGER, WORKER_EXTERNAL
from .home_bridge import HassHome
from .voice import protocol
from .voice.home import QUESTION_PLAYOUT_SECONDS, NobodyListening, QuestionPending, ToolCallError
from .voice.protocol import PROTOCOL, Command, Event, ReportKind, agent_name
from .voice_config import livekit_server, settings_from_entry

if TYPE_CHECKING:
    from .announcements import Announcement
    from .models import ShackletonConfigEntry

__all__ = [
    "WorkerHub",
    "agent_name",
    "async_get_hub",
    "async_register_worker_api",
    "worker_settings",
]

# How long start_conversation waits for the worker to say whether someone heard it.
REPLY_TIMEOUT: Final = 10.0

# Each entry's hub, by entry id. Weak: a hub lives as long as the voice manager that
# made it keeps it, and a hub from another hass (tests run many) is told apart by its
# entry object (see async_get_hub).
_HUBS: Final[weakref.WeakValueDictionary[str, WorkerHub]] = weakref.WeakValueDictionary()


@dataclasses.dataclass(eq=False, slots=True)
class WorkerLink:
    """One worker connection bound to an entry, and the rooms it reported serving."""

    hub: WorkerHub
    connection: ActiveConnection
    msg_id: int
    name: str
    rooms: set[str] = dataclasses.field(default_factory=set)

    def send(self, event: Mapping[str, object]) -> None:
        """Push an event on the worker's subscription."""
        self.connection.send_event(self.msg_id, event)


class WorkerHub:
    """An entry's external workers: the rooms they serve and what is sent to them."""

    def __init__(
        self,
        entry: ShackletonConfigEntry,
        *,
        settings: Callable[[], protocol.SettingsMessage],
        on_room: Callable[[str, bool], None],
        on_workers: Callable[[int], None],
        requeue: Callable[[Announcement], None],
    ) -> None:
        """Route to the workers of `entry`; callbacks reach the entry's voice manager.

        The hub is the entry's from now until `async_close`: workers find it by entry id.
        """
        self.entry = entry
        self._settings = settings
        self._on_room = on_room
        self._on_workers = on_workers
        self._requeue = requeue
        self.links: list[WorkerLink] = []
        self.rooms: dict[str, WorkerLink] = {}
        # Sent but not yet acknowledged: put back in the queue if their worker goes.
        self._unacked: dict[str, tuple[WorkerLink, Announcement]] = {}
        # A request's reply: whether someone heard it, and what they answered (`ask`).
        self._replies: dict[str, tuple[WorkerLink, asyncio.Future[tuple[bool, str | None]]]] = {}
        self._home: HassHome | None = None
        _HUBS[entry.entry_id] = self

    def home(self, hass: HomeAssistant) -> HassHome:
        """Return the home every worker of the entry reaches (turns and confirmations carry)."""
        if self._home is None:
            self._home = HassHome(hass, self.entry)
        return self._home

    @callback
    def async_add(self, connection: ActiveConnection, msg_id: int, name: str) -> WorkerLink:
        """Bind a worker's subscription; it gets its settings at once."""
        link = WorkerLink(self, connection, msg_id, name)
        self.links.append(link)
        LOGGER.info("%s: voice worker %s connected", self.entry.title, name)
        link.send({"type": Event.SETTINGS, "settings": self._settings()})
        self._on_workers(len(self.links))
        return link

    @callback
    def async_remove(self, link: WorkerLink) -> None:
        """Forget a worker: its rooms end, and what it had not said goes back in the queue."""
        if link not in self.links:
            return
        self.links.remove(link)
        LOGGER.info("%s: voice worker %s disconnected", self.entry.title, link.name)
        for room in sorted(link.rooms):
            self.async_set_room(link, room, active=False)
        for key, (owner, announcement) in list(self._unacked.items()):
            if owner is link:
                del self._unacked[key]
                self._requeue(announcement)
        for owner, future in list(self._replies.values()):
            if owner is link and not future.done():
                future.set_result((False, None))
        self._on_workers(len(self.links))

    @callback
    def async_set_room(self, link: WorkerLink, room: str, *, active: bool) -> None:
        """Record that a worker started or ended a room's session."""
        if active:
            link.rooms.add(room)
            self.rooms[room] = link
        else:
            link.rooms.discard(room)
            if self.rooms.get(room) is not link:
                return
            del self.rooms[room]
        self._on_room(room, active)

    @callback
    def async_push_settings(self) -> None:
        """Send every worker the entry's current settings (turn-taking changed)."""
        settings = self._settings()
        for link in self.links:
            link.send({"type": Event.SETTINGS, "settings": settings})

    @callback
    def async_close(self) -> None:
        """Tell every worker the entry is going (unload, reload); they reconnect later."""
        if _HUBS.get(self.entry.entry_id) is self:
            del _HUBS[self.entry.entry_id]
        for link in list(self.links):
            link.send({"type": Event.CLOSING})
            self.async_remove(link)

    def leave(self, room: str) -> bool:
        """Ask the worker serving `room` to end its session; False when none does."""
        if (link := self.rooms.get(room)) is None:
            return False
        link.send({"type": Event.LEAVE, "room": room})
        return True

    def announce(self, announcement: Announcement, room: str, *, interrupt: bool) -> bool:
        """Send an announcement to the worker serving `room`; False when none does."""
        link = self.rooms.get(room)
        if link is None:
            return False
        item = dataclasses.replace(announcement, room=room)
        key = f"{item.id}:{room}"
        self._unacked[key] = (link, item)
        event: protocol.AnnounceEvent = {
            "type": Event.ANNOUNCE,
            "id": key,
            "room": room,
            "text": item.text,
            "chime": item.chime,
            "interrupt": interrupt,
        }
        link.send(event)
        return True

    async def async_start_conversation(
        self, room: str, text: str, context: str | None, *, chime: bool = False
    ) -> bool:
        """Have the worker serving `room` speak first; False when nobody heard it."""
        event: protocol.StartConversationEvent = {
            "type": Event.START_CONVERSATION,
            "id": f"conversation:{time.monotonic_ns()}",
            "room": room,
            "text": text,
            "context": context,
            "chime": chime,
        }
        heard, _answer = await self._async_request(room, event, REPLY_TIMEOUT)
        return heard

    async def async_ask(self, room: str, text: str, *, chime: bool, seconds: float) -> str | None:
        """Have the worker serving `room` ask `text`; return the answer, None if none came.

        Raises `NobodyListening` when no worker serves the room, or nobody is in it.
        """
        event: protocol.AskEvent = {
            "type": Event.ASK,
            "id": f"ask:{time.monotonic_ns()}",
            "room": room,
            "text": text,
            "chime": chime,
            "seconds": seconds,
        }
        # The worker waits for the question to be said, then `seconds` for the answer.
        bound = QUESTION_PLAYOUT_SECONDS + seconds + REPLY_TIMEOUT
        heard, answer = await self._async_request(room, event, bound)
        if not heard:
            raise NobodyListening(room)
        return answer

    async def _async_request(
        self,
        room: str,
        event: protocol.StartConversationEvent | protocol.AskEvent,
        seconds: float,
    ) -> tuple[bool, str | None]:
        """Send a request to the worker serving `room`; return its reply (not heard: False)."""
        link = self.rooms.get(room)
        if link is None:
            return False, None
        key = event["id"]
        future: asyncio.Future[tuple[bool, str | None]] = asyncio.get_running_loop().create_future()
        self._replies[key] = (link, future)
        link.send(event)
        try:
            return await asyncio.wait_for(future, seconds)
        except TimeoutError:
            LOGGER.warning("%s: the voice worker did not answer in time", self.entry.title)
            return False, None
        finally:
            self._replies.pop(key, None)

    @callback
    def async_ack(
        self, key: str, *, ok: bool, answer: str | None = None, busy: bool = False
    ) -> None:
        """Record whether an announcement or a request reached someone, and any answer.

        `busy`: the room waits for the answer to another question (`ask`).
        """
        if (unacked := self._unacked.pop(key, None)) is not None:
            if not ok:  # the session ended before it could be said: wait for the next one
                self._requeue(unacked[1])
        elif (reply := self._replies.get(key)) is not None and not reply[1].done():
            if busy:
                reply[1].set_exception(QuestionPending(key))
            else:
                reply[1].set_result((ok, answer))


@callback
def async_get_hub(hass: HomeAssistant, entry_id: str) -> WorkerHub | None:
    """Return the hub of one of this hass's entries; None while it has none (reloading)."""
    hub = _HUBS.get(entry_id)
    if hub is None or hass.config_entries.async_get_entry(entry_id) is not hub.entry:
        return None
    return hub


def worker_settings(hass: HomeAssistant, entry: ShackletonConfigEntry) -> protocol.SettingsMessage:
    """Return what a worker needs: voice settings, the home, and the LiveKit server."""
    return protocol.settings_message(
        entry_id=entry.entry_id,
        title=entry.title,
        home_name=hass.config.location_name,
        time_zone=str(hass.config.time_zone),
        voice=settings_from_entry(entry, hass.config.language),
        livekit=livekit_server(entry),
    )


class _BadMessage(Exception):
    """A command whose fields make no sense together (sent as ERR_INVALID_FORMAT)."""


# A bound command: given the message, the entry's home and the worker's link, it
# returns the command's result.
type _Handler = Callable[[dict[str, Any], HassHome, WorkerLink], Coroutine[Any, Any, Any]]

# Which entry, through which link, each worker connection serves.
_BINDINGS: Final[HassKey[dict[ActiveConnection, tuple[str, WorkerLink]]]] = HassKey(
    f"{DOMAIN}_worker_bindings"
)


def _bindings(hass: HomeAssistant) -> dict[ActiveConnection, tuple[str, WorkerLink]]:
    return hass.data.setdefault(_BINDINGS, {})


def _error(
    connection: ActiveConnection,
    msg_id: int,
    code: str,
    key: str,
    message: str,
    **placeholders: str,
) -> None:
    connection.send_error(
        msg_id,
        code,
        message,
        translation_key=key,
        translation_domain=DOMAIN,
        translation_placeholders=placeholders or None,
    )


def _external_entry(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> ShackletonConfigEntry | None:
    """Return the entry a message names if a worker may serve it; else send the error."""
    entry_id = msg["entry_id"]
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        _error(
            connection,
            msg["id"],
            protocol.ERR_NOT_FOUND,
            "worker_no_entry",
            f"There is no Shackleton entry {entry_id}",
            entry_id=entry_id,
        )
        return None
    if entry.state is not ConfigEntryState.LOADED:
        _error(
            connection,
            msg["id"],
            protocol.ERR_NOT_LOADED,
            "worker_entry_not_loaded",
            f"{entry.title} is not loaded",
            title=entry.title,
        )
        return None
    if entry.options.get(CONF_WORKER) != WORKER_EXTERNAL:
        _error(
            connection,
            msg["id"],
            protocol.ERR_NOT_ALLOWED,
            "worker_not_external",
            f"{entry.title} runs its voice engine inside Home Assistant; set its voice "
            "worker option to external to serve it from a worker",
            title=entry.title,
        )
        return None
    return entry


def _bound_link(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> WorkerLink | None:
    """Return the link of a command for the connection's own entry; else send the error."""
    bound = _bindings(hass).get(connection)
    if bound is None or bound[0] != msg["entry_id"]:
        _error(
            connection,
            msg["id"],
            protocol.ERR_UNAUTHORIZED,
            "worker_wrong_entry",
            "This connection does not serve that entry: connect to it first, and "
            "serve one entry per connection",
        )
        return None
    if (entry := _external_entry(hass, connection, msg)) is None:
        return None
    link = bound[1]
    if async_get_hub(hass, entry.entry_id) is not link.hub:  # the worker's told to reconnect
        raise HomeAssistantError(f"{entry.title} is reloading")
    return link


def _worker_command(
    command: Command, schema: dict[Any, Any]
) -> Callable[[_Handler], WebSocketCommandHandler]:
    """Make a handler a command: for admins, for the bound entry, errors sent one way.

    The handler returns the command's result. A ToolCallError is a refusal the model
    reads (`tool_error`); a _BadMessage is ERR_INVALID_FORMAT; anything else HA's
    WebSocket API reports as it does for every command.
    """

    def decorate(handler: _Handler) -> WebSocketCommandHandler:
        @wraps(handler)
        async def run(
            hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
        ) -> None:
            if (link := _bound_link(hass, connection, msg)) is None:
                return
            try:
                result = await handler(msg, link.hub.home(hass), link)
            except ToolCallError as err:
                connection.send_error(msg["id"], protocol.ERR_TOOL, str(err))
            except _BadMessage as err:
                connection.send_error(msg["id"], ERR_INVALID_FORMAT, str(err))
            else:
                connection.send_result(msg["id"], result)

        full_schema = {
            probatio.Required("type"): command.message_type,
            probatio.Required("entry_id"): str,
            **schema,
        }
        return require_admin(websocket_command(full_schema)(async_response(run)))

    return decorate


@require_admin
@websocket_command(
    {
        probatio.Required("type"): Command.CONNECT.message_type,
        probatio.Required("entry_id"): str,
        probatio.Required("protocol"): int,
        probatio.Optional("name", default="worker"): probatio.All(str, probatio.Length(max=100)),
    }
)
@callback
def ws_connect(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Bind this connection to an entry and subscribe to its settings and requests."""
    bindings = _bindings(hass)
    if (bound := bindings.get(connection)) is not None and bound[0] != msg["entry_id"]:
        _error(
            connection,
            msg["id"],
            protocol.ERR_UNAUTHORIZED,
            "worker_wrong_entry",
            "This connection already serves another entry",
        )
        return
    if msg["protocol"] != PROTOCOL:
        _error(
            connection,
            msg["id"],
            protocol.ERR_PROTOCOL_MISMATCH,
            "worker_protocol",
            f"This worker speaks protocol {msg['protocol']}, Home Assistant's Shackleton "
            f"speaks {PROTOCOL}: run the same Shackleton version on both",
            worker=str(msg["protocol"]),
            home=str(PROTOCOL),
        )
        return
    if (entry := _external_entry(hass, connection, msg)) is None:
        return
    if (hub := async_get_hub(hass, entry.entry_id)) is None:  # options changed; reload pending
        raise HomeAssistantError(f"{entry.title} is reloading")
    connection.send_result(msg["id"])
    link = hub.async_add(connection, msg["id"], msg["name"])
    bindings[connection] = (entry.entry_id, link)

    @callback
    def unsubscribe() -> None:
        if bindings.get(connection, (None, None))[1] is link:
            del bindings[connection]
        hub.async_remove(link)

    connection.subscriptions[msg["id"]] = unsubscribe


@_worker_command(Command.TOOLS, {probatio.Required("room"): str})
async def ws_tools(msg: dict[str, Any], home: HassHome, link: WorkerLink) -> protocol.ToolsResult:
    """Return the tools the model may use in a room, and their guide."""
    return protocol.tools_result(await home.room_tools(msg["room"]))


@_worker_command(
    Command.CALL_TOOL,
    {
        probatio.Required("room"): str,
        probatio.Required("name"): str,
        probatio.Required("arguments"): dict,
        probatio.Optional("turn", default=0): int,
    },
)
async def ws_call_tool(
    msg: dict[str, Any], home: HassHome, link: WorkerLink
) -> protocol.CallToolResult:
    """Run a tool in the home; a refusal comes back as `tool_error` for the model."""
    result = await home.call_tool(msg["room"], msg["name"], msg["arguments"], turn=msg["turn"])
    return {"result": result}


@_worker_command(
    Command.CONVERSE,
    {
        probatio.Required("room"): str,
        probatio.Required("text"): str,
        probatio.Required("agent_id"): str,
        probatio.Optional("turn", default=0): int,
    },
)
async def ws_converse(
    msg: dict[str, Any], home: HassHome, link: WorkerLink
) -> protocol.ConverseResult:
    """Hand a user's words to one of the home's conversation agents."""
    speech, tools = await home.converse(msg["room"], msg["text"], msg["agent_id"], turn=msg["turn"])
    return {"speech": speech, "tools": tools}


@_worker_command(
    Command.TRANSCRIBE,
    {
        probatio.Required("engine"): str,
        probatio.Required("audio"): str,
        probatio.Required("rate"): probatio.In(protocol.AUDIO_RATES),
        probatio.Required("language"): str,
    },
)
async def ws_transcribe(
    msg: dict[str, Any], home: HassHome, link: WorkerLink
) -> protocol.TranscribeResult:
    """Transcribe base64 16-bit mono PCM with one of the home's speech-to-text engines."""
    try:
        pcm = protocol.decode_audio(msg["audio"])
    except binascii.Error as err:
        raise _BadMessage("audio is not base64") from err
    text = await home.transcribe(msg["engine"], pcm, msg["rate"], msg["language"])
    return {"text": text}


@_worker_command(
    Command.SYNTHESIZE,
    {
        probatio.Required("engine"): str,
        probatio.Required("text"): str,
        probatio.Required("language"): str,
    },
)
async def ws_synthesize(
    msg: dict[str, Any], home: HassHome, link: WorkerLink
) -> protocol.SynthesizeResult:
    """Speak with one of the home's text-to-speech engines; the audio comes as base64."""
    extension, data = await home.synthesize(msg["engine"], msg["text"], msg["language"])
    return {"extension": extension, "audio": protocol.encode_audio(data)}


@_worker_command(
    Command.REPORT,
    {
        probatio.Required("room"): str,
        probatio.Required("kind"): probatio.In(tuple(ReportKind)),
        probatio.Optional("active"): bool,
        probatio.Optional("state"): str,
        probatio.Optional("turn"): dict,
        probatio.Optional("source"): str,
        probatio.Optional("message"): str,
        probatio.Optional("recoverable"): bool,
        probatio.Optional("usage"): dict,
    },
)
async def ws_report(msg: dict[str, Any], home: HassHome, link: WorkerLink) -> None:
    """Record what a worker's session did, as the in-process engine would."""
    room, kind = msg["room"], msg["kind"]
    try:
        if kind == ReportKind.SESSION:
            link.hub.async_set_room(link, room, active=msg["active"])
        elif kind == ReportKind.STATE:
            home.report_state(room, msg["state"])
        elif kind == ReportKind.TURN:
            home.report_turn(protocol.turn_report(room, msg["turn"]))
        elif kind == ReportKind.USAGE:
            home.report_usage(protocol.usage_report(msg["usage"]))
        else:
            home.report_error(room, msg["source"], msg["message"], recoverable=msg["recoverable"])
    except (KeyError, TypeError, ValueError) as err:
        raise _BadMessage(f"incomplete {kind} report: {err}") from err


@_worker_command(
    Command.ACK,
    {
        probatio.Required("request"): str,
        probatio.Required("ok"): bool,
        # What the room answered an `ask` (None: nobody answered in time).
        probatio.Optional("answer"): probatio.Any(str, None),
        # The room already waits for another question's answer.
        probatio.Optional("busy", default=False): bool,
    },
)
async def ws_ack(msg: dict[str, Any], home: HassHome, link: WorkerLink) -> None:
    """Record whether an announcement or a request reached someone, and any answer."""
    link.hub.async_ack(msg["request"], ok=msg["ok"], answer=msg.get("answer"), busy=msg["busy"])


@callback
def async_register_worker_api(hass: HomeAssistant) -> None:
    """Register the worker's commands (once, for every entry)."""
    for command in (
        ws_connect,
        ws_tools,
        ws_call_tool,
        ws_converse,
        ws_transcribe,
        ws_synthesize,
        ws_report,
        ws_ack,
    ):
        async_register_command(hass, command)
