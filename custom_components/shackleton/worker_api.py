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
import base64
import binascii
from collections.abc import Callable, Coroutine
import dataclasses
from functools import wraps
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.websocket_api import async_register_command
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.const import (
    ERR_INVALID_FORMAT,
    ERR_NOT_ALLOWED,
    ERR_NOT_FOUND,
    ERR_UNAUTHORIZED,
)
from homeassistant.components.websocket_api.decorators import (
    async_response,
    require_admin,
    websocket_command,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
import probatio

from .const import (
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_URL,
    CONF_WORKER,
    DOMAIN,
    LOGGER,
    WORKER_EXTERNAL,
)
from .voice.home import ToolCallError, TurnReport

if TYPE_CHECKING:
    from .home_bridge import HassHome
    from .models import ShackletonConfigEntry
    from .voice_manager import Announcement

# Bumped when a command or a message changes shape; a worker of another version is told.
PROTOCOL: Final = 1
PREFIX: Final = f"{DOMAIN}/worker"
# How long start_conversation waits for the worker to say whether someone heard it.
REPLY_TIMEOUT: Final = 10.0
_REPORT_KINDS: Final = ("session", "state", "turn", "error")


def agent_name(entry_id: str) -> str:
    """Return the LiveKit agent name an entry's workers register under (explicit dispatch)."""
    return f"shackleton-{entry_id}"


@dataclasses.dataclass(eq=False, slots=True)
class WorkerLink:
    """One worker connection bound to an entry, and the rooms it reported serving."""

    connection: ActiveConnection
    msg_id: int
    name: str
    rooms: set[str] = dataclasses.field(default_factory=set)

    def send(self, event: dict[str, Any]) -> None:
        """Push an event on the worker's subscription."""
        self.connection.send_event(self.msg_id, event)


class WorkerHub:
    """An entry's external workers: the rooms they serve and what is sent to them."""

    def __init__(
        self,
        entry: ShackletonConfigEntry,
        *,
        settings: Callable[[], dict[str, Any]],
        on_room: Callable[[str, bool], None],
        on_workers: Callable[[int], None],
        requeue: Callable[[Announcement], None],
    ) -> None:
        """Route to the workers of `entry`; callbacks reach the entry's voice manager."""
        self._entry = entry
        self._settings = settings
        self._on_room = on_room
        self._on_workers = on_workers
        self._requeue = requeue
        self.links: list[WorkerLink] = []
        self.rooms: dict[str, WorkerLink] = {}
        # Sent but not yet acknowledged: put back in the queue if their worker goes.
        self._unacked: dict[str, tuple[WorkerLink, Announcement]] = {}
        self._replies: dict[str, tuple[WorkerLink, asyncio.Future[bool]]] = {}

    @callback
    def async_add(self, connection: ActiveConnection, msg_id: int, name: str) -> WorkerLink:
        """Bind a worker's subscription; it gets its settings at once."""
        link = WorkerLink(connection, msg_id, name)
        self.links.append(link)
        LOGGER.info("%s: voice worker %s connected", self._entry.title, name)
        link.send({"type": "settings", "settings": self._settings()})
        self._on_workers(len(self.links))
        return link

    @callback
    def async_remove(self, link: WorkerLink) -> None:
        """Forget a worker: its rooms end, and what it had not said goes back in the queue."""
        if link not in self.links:
            return
        self.links.remove(link)
        LOGGER.info("%s: voice worker %s disconnected", self._entry.title, link.name)
        for room in sorted(link.rooms):
            self.async_set_room(link, room, active=False)
        for key, (owner, announcement) in list(self._unacked.items()):
            if owner is link:
                del self._unacked[key]
                self._requeue(announcement)
        for owner, future in list(self._replies.values()):
            if owner is link and not future.done():
                future.set_result(False)
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
            link.send({"type": "settings", "settings": settings})

    @callback
    def async_close(self) -> None:
        """Tell every worker the entry is going (unload, reload); they reconnect later."""
        for link in list(self.links):
            link.send({"type": "closing"})
            self.async_remove(link)

    def leave(self, room: str) -> bool:
        """Ask the worker serving `room` to end its session; False when none does."""
        if (link := self.rooms.get(room)) is None:
            return False
        link.send({"type": "leave", "room": room})
        return True

    def announce(self, announcement: Announcement, room: str, *, interrupt: bool) -> bool:
        """Send an announcement to the worker serving `room`; False when none does."""
        link = self.rooms.get(room)
        if link is None:
            return False
        item = dataclasses.replace(announcement, room=room)
        key = f"{item.id}:{room}"
        self._unacked[key] = (link, item)
        link.send(
            {
                "type": "announce",
                "id": key,
                "room": room,
                "text": item.text,
                "chime": item.chime,
                "interrupt": interrupt,
            }
        )
        return True

    async def async_start_conversation(self, room: str, text: str, context: str | None) -> bool:
        """Have the worker serving `room` speak first; False when nobody heard it."""
        link = self.rooms.get(room)
        if link is None:
            return False
        key = f"conversation:{time.monotonic_ns()}"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._replies[key] = (link, future)
        link.send(
            {
                "type": "start_conversation",
                "id": key,
                "room": room,
                "text": text,
                "context": context,
            }
        )
        try:
            return await asyncio.wait_for(future, REPLY_TIMEOUT)
        except TimeoutError:
            LOGGER.warning("%s: the voice worker did not answer in time", self._entry.title)
            return False
        finally:
            self._replies.pop(key, None)

    @callback
    def async_ack(self, key: str, *, ok: bool) -> None:
        """Record whether an announcement or a conversation reached someone."""
        if (unacked := self._unacked.pop(key, None)) is not None:
            if not ok:  # the session ended before it could be said: wait for the next one
                self._requeue(unacked[1])
        elif (reply := self._replies.get(key)) is not None and not reply[1].done():
            reply[1].set_result(ok)


def worker_settings(hass: HomeAssistant, entry: ShackletonConfigEntry) -> dict[str, Any]:
    """Return what a worker needs: voice settings, the home, and the LiveKit server."""
    from .voice_manager import settings_from_entry

    settings = settings_from_entry(entry, hass.config.language)
    livekit = None
    if CONF_LIVEKIT_URL in entry.data:
        livekit = {
            "url": entry.data[CONF_LIVEKIT_URL],
            "api_key": entry.data[CONF_LIVEKIT_API_KEY],
            "api_secret": entry.data[CONF_LIVEKIT_API_SECRET],
            "agent_name": agent_name(entry.entry_id),
        }
    return {
        "protocol": PROTOCOL,
        "entry_id": entry.entry_id,
        "title": entry.title,
        "home": {
            "name": hass.config.location_name,
            "time_zone": str(hass.config.time_zone),
        },
        "voice": dataclasses.asdict(settings),
        "livekit": livekit,
    }


_Handler = Callable[
    [
        HomeAssistant,
        ActiveConnection,
        dict[str, Any],
        "ShackletonConfigEntry",
        WorkerLink,
    ],
    Coroutine[Any, Any, None],
]


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
            ERR_NOT_FOUND,
            "worker_no_entry",
            f"There is no Shackleton entry {entry_id}",
            entry_id=entry_id,
        )
        return None
    if entry.state is not ConfigEntryState.LOADED:
        _error(
            connection,
            msg["id"],
            "not_loaded",
            "worker_entry_not_loaded",
            f"{entry.title} is not loaded",
            title=entry.title,
        )
        return None
    if entry.options.get(CONF_WORKER) != WORKER_EXTERNAL:
        _error(
            connection,
            msg["id"],
            ERR_NOT_ALLOWED,
            "worker_not_external",
            f"{entry.title} runs its voice engine inside Home Assistant; set its voice "
            "worker option to external to serve it from a worker",
            title=entry.title,
        )
        return None
    return entry


def _bound(
    handler: _Handler,
) -> Callable[[HomeAssistant, ActiveConnection, dict[str, Any]], Coroutine[Any, Any, None]]:
    """Run a command only for the entry this connection's worker is bound to."""

    @wraps(handler)
    async def run(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
        bound = _bindings(hass).get(connection)
        if bound is None or bound[0] != msg["entry_id"]:
            _error(
                connection,
                msg["id"],
                ERR_UNAUTHORIZED,
                "worker_wrong_entry",
                "This connection does not serve that entry: connect to it first, and "
                "serve one entry per connection",
            )
            return
        entry = _external_entry(hass, connection, msg)
        if entry is None:
            return
        await handler(hass, connection, msg, entry, bound[1])

    return run


_BINDINGS: Final = f"{DOMAIN}_worker_bindings"


def _bindings(
    hass: HomeAssistant,
) -> dict[ActiveConnection, tuple[str, WorkerLink]]:
    bindings: dict[ActiveConnection, tuple[str, WorkerLink]]
    bindings = hass.data.setdefault(_BINDINGS, {})
    return bindings


def _home(entry: ShackletonConfigEntry) -> HassHome:
    if (home := entry.runtime_data.voice.home) is None:  # options changed; reload pending
        raise HomeAssistantError(f"{entry.title} is reloading")
    return home


def _hub(entry: ShackletonConfigEntry) -> WorkerHub:
    if (hub := entry.runtime_data.voice.hub) is None:
        raise HomeAssistantError(f"{entry.title} is reloading")
    return hub


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/connect",
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
            ERR_UNAUTHORIZED,
            "worker_wrong_entry",
            "This connection already serves another entry",
        )
        return
    if msg["protocol"] != PROTOCOL:
        _error(
            connection,
            msg["id"],
            "protocol_mismatch",
            "worker_protocol",
            f"This worker speaks protocol {msg['protocol']}, Home Assistant's Shackleton "
            f"speaks {PROTOCOL}: run the same Shackleton version on both",
            worker=str(msg["protocol"]),
            home=str(PROTOCOL),
        )
        return
    if (entry := _external_entry(hass, connection, msg)) is None:
        return
    hub = _hub(entry)
    connection.send_result(msg["id"])
    link = hub.async_add(connection, msg["id"], msg["name"])
    bindings[connection] = (entry.entry_id, link)

    @callback
    def unsubscribe() -> None:
        if bindings.get(connection, (None, None))[1] is link:
            del bindings[connection]
        hub.async_remove(link)

    connection.subscriptions[msg["id"]] = unsubscribe


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/tools",
        probatio.Required("entry_id"): str,
        probatio.Required("room"): str,
    }
)
@async_response
@_bound
async def ws_tools(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Return the tools the model may use in a room, and their guide."""
    home = _home(entry)
    tools = await home.tools(msg["room"])
    guide = await home.tool_guide(msg["room"])
    connection.send_result(
        msg["id"], {"tools": [dataclasses.asdict(tool) for tool in tools], "guide": guide}
    )


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/call_tool",
        probatio.Required("entry_id"): str,
        probatio.Required("room"): str,
        probatio.Required("name"): str,
        probatio.Required("arguments"): dict,
        probatio.Optional("turn", default=0): int,
    }
)
@async_response
@_bound
async def ws_call_tool(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Run a tool in the home; a refusal comes back as `tool_error` for the model."""
    try:
        result = await _home(entry).call_tool(
            msg["room"], msg["name"], msg["arguments"], turn=msg["turn"]
        )
    except ToolCallError as err:
        connection.send_error(msg["id"], "tool_error", str(err))
        return
    connection.send_result(msg["id"], {"result": result})


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/converse",
        probatio.Required("entry_id"): str,
        probatio.Required("room"): str,
        probatio.Required("text"): str,
        probatio.Required("agent_id"): str,
        probatio.Optional("turn", default=0): int,
    }
)
@async_response
@_bound
async def ws_converse(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Hand a user's words to one of the home's conversation agents."""
    try:
        speech, tools = await _home(entry).converse(
            msg["room"], msg["text"], msg["agent_id"], turn=msg["turn"]
        )
    except ToolCallError as err:
        connection.send_error(msg["id"], "tool_error", str(err))
        return
    connection.send_result(msg["id"], {"speech": speech, "tools": tools})


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/transcribe",
        probatio.Required("entry_id"): str,
        probatio.Required("engine"): str,
        probatio.Required("audio"): str,
        probatio.Required("rate"): probatio.In(
            [8000, 11000, 16000, 18900, 22000, 32000, 37800, 44100, 48000]
        ),
        probatio.Required("language"): str,
    }
)
@async_response
@_bound
async def ws_transcribe(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Transcribe base64 16-bit mono PCM with one of the home's speech-to-text engines."""
    try:
        pcm = base64.b64decode(msg["audio"], validate=True)
    except binascii.Error:
        connection.send_error(msg["id"], ERR_INVALID_FORMAT, "audio is not base64")
        return
    try:
        text = await _home(entry).transcribe(msg["engine"], pcm, msg["rate"], msg["language"])
    except ToolCallError as err:
        connection.send_error(msg["id"], "tool_error", str(err))
        return
    connection.send_result(msg["id"], {"text": text})


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/synthesize",
        probatio.Required("entry_id"): str,
        probatio.Required("engine"): str,
        probatio.Required("text"): str,
        probatio.Required("language"): str,
    }
)
@async_response
@_bound
async def ws_synthesize(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Speak with one of the home's text-to-speech engines; the audio comes as base64."""
    try:
        extension, data = await _home(entry).synthesize(msg["engine"], msg["text"], msg["language"])
    except ToolCallError as err:
        connection.send_error(msg["id"], "tool_error", str(err))
        return
    connection.send_result(
        msg["id"], {"extension": extension, "audio": base64.b64encode(data).decode()}
    )


_TURN_FIELDS: Final = {field.name for field in dataclasses.fields(TurnReport)} - {"room"}


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/report",
        probatio.Required("entry_id"): str,
        probatio.Required("room"): str,
        probatio.Required("kind"): probatio.In(_REPORT_KINDS),
        probatio.Optional("active"): bool,
        probatio.Optional("state"): str,
        probatio.Optional("turn"): dict,
        probatio.Optional("source"): str,
        probatio.Optional("message"): str,
        probatio.Optional("recoverable"): bool,
    }
)
@async_response
@_bound
async def ws_report(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Record what a worker's session did, as the in-process engine would."""
    room, kind = msg["room"], msg["kind"]
    home = _home(entry)
    hub = _hub(entry)
    try:
        if kind == "session":
            hub.async_set_room(link, room, active=msg["active"])
        elif kind == "state":
            home.report_state(room, msg["state"])
        elif kind == "turn":
            fields = {k: v for k, v in msg["turn"].items() if k in _TURN_FIELDS}
            home.report_turn(TurnReport(room=room, **fields))
        else:
            home.report_error(room, msg["source"], msg["message"], recoverable=msg["recoverable"])
    except (KeyError, TypeError) as err:
        connection.send_error(msg["id"], ERR_INVALID_FORMAT, f"incomplete {kind} report: {err}")
        return
    connection.send_result(msg["id"])


@require_admin
@websocket_command(
    {
        probatio.Required("type"): f"{PREFIX}/ack",
        probatio.Required("entry_id"): str,
        probatio.Required("request"): str,
        probatio.Required("ok"): bool,
    }
)
@async_response
@_bound
async def ws_ack(
    hass: HomeAssistant,
    connection: ActiveConnection,
    msg: dict[str, Any],
    entry: ShackletonConfigEntry,
    link: WorkerLink,
) -> None:
    """Record whether an announcement or a conversation reached someone."""
    hub = _hub(entry)
    hub.async_ack(msg["request"], ok=msg["ok"])
    connection.send_result(msg["id"])


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
