"""An external worker's line to Home Assistant: its WebSocket API, and the `Home` over it.

`HomeLink` keeps one authenticated WebSocket connection bound to one Shackleton entry
(the `shackleton/worker/*` commands of `worker_api.py`), reconnecting with backoff for
as long as it runs. Reports made while Home Assistant is away wait in a bounded queue
and go out when it is back. `RemoteHome` is the engine's `Home` over that link: tools,
conversation agents and speech engines run inside Home Assistant.

The access token goes into the auth message only: never into a log, a repr or an error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
import logging
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp

from .home import HomeContext, RoomTools, ToolCallError, TurnReport, Usage
from .protocol import (
    FATAL_CODES,
    PREFIX,
    PROTOCOL,
    Command,
    Event,
    ReportKind,
    WorkerSettings,
    decode_audio,
    encode_audio,
    room_tools,
    turn_fields,
    usage_fields,
)
from .settings import Backoff

_LOGGER = logging.getLogger(__name__)

# Reports that wait for Home Assistant while it is away (the oldest go first).
MAX_WAITING_REPORTS: Final = 500


class HomeAway(Exception):
    """Home Assistant cannot be reached right now."""


class HomeRefused(Exception):
    """Home Assistant answered a command with an error."""

    def __init__(self, code: str, message: str) -> None:
        """Keep HA's error code and its message."""
        super().__init__(message)
        self.code = code


class FatalLinkError(Exception):
    """A fault that retrying cannot mend (a refused token)."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Where Home Assistant is, who the worker is, and which entry it serves."""

    url: str  # http(s)://host:port, as a browser reaches Home Assistant
    token: str = field(repr=False)
    entry_id: str
    name: str = "worker"
    request_timeout: float = 15.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=15.0))

    @property
    def websocket_url(self) -> str:
        """Return the WebSocket API's URL."""
        base = self.url.rstrip("/")
        scheme, rest = base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/api/websocket"


class HomeLink:
    """One WebSocket connection to Home Assistant, kept up until `aclose`."""

    def __init__(
        self,
        config: LinkConfig,
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_connection: Callable[[bool], None],
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """Prepare; `start` connects in the background."""
        self.config = config
        self._on_event = on_event
        self._on_connection = on_connection
        self._own_session = session is None
        self._session = session
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._waiting: deque[dict[str, Any]] = deque(maxlen=MAX_WAITING_REPORTS)
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self.connected = False
        self.settings: WorkerSettings | None = None
        self.settings_ready = asyncio.Event()
        # Home Assistant said the entry is reloading (an options change): no outage.
        self.reloading = False
        self.last_error: str | None = None
        self.fatal: FatalLinkError | None = None

    def start(self) -> None:
        """Connect, and reconnect after every loss, in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="shackleton home link")

    async def wait_settings(self, seconds: float | None = None) -> WorkerSettings:
        """Return the entry's settings once Home Assistant sent them."""
        self.start()
        if self._task is None:  # pragma: no cover - start() made it
            raise HomeAway("the link is not running")
        waiter = asyncio.ensure_future(self.settings_ready.wait())
        try:
            await asyncio.wait(
                {waiter, self._task}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if self.fatal is not None:
            raise self.fatal
        if self.settings is None:
            raise HomeAway(self.last_error or "Home Assistant did not answer in time")
        return self.settings

    async def _run(self) -> None:
        failures = 0
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            while True:
                try:
                    await self._connect_and_serve()
                    failures = 0
                except FatalLinkError as err:
                    self.fatal = err
                    _LOGGER.error("%s", err)  # noqa: TRY400 - said, not a bug
                    return
                except (aiohttp.ClientError, HomeAway, HomeRefused, OSError, TimeoutError) as err:
                    reason = _describe(err)
                    if reason != self.last_error:
                        _LOGGER.warning(
                            "Cannot reach Home Assistant at %s: %s", self.config.url, reason
                        )
                    self.last_error = reason
                finally:
                    self._lost()
                failures += 1
                await asyncio.sleep(self.config.backoff.delay(failures))
        finally:
            if self._own_session and self._session is not None:
                await self._session.close()

    async def _connect_and_serve(self) -> None:
        if self._session is None:  # pragma: no cover - _run made it
            raise HomeAway("no HTTP session")
        ws = await self._session.ws_connect(
            self.config.websocket_url, heartbeat=10, timeout=aiohttp.ClientWSTimeout(ws_close=5)
        )
        try:
            await self._authenticate(ws)
            self._ws = ws
            self._next_id = 1
            subscription = self._next_id
            self._next_id += 1
            await ws.send_json(
                {
                    "id": subscription,
                    "type": Command.CONNECT.message_type,
                    "entry_id": self.config.entry_id,
                    "protocol": PROTOCOL,
                    "name": self.config.name,
                }
            )
            reader = asyncio.ensure_future(self._read(ws, subscription))
            try:
                await reader
            finally:
                reader.cancel()
        finally:
            self._ws = None
            await ws.close()

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async with asyncio.timeout(self.config.request_timeout):
            hello = await ws.receive_json()
            if hello.get("type") != "auth_required":
                raise HomeAway(f"unexpected greeting {hello.get('type')!r}")
            await ws.send_json({"type": "auth", "access_token": self.config.token})
            answer = await ws.receive_json()
        if answer.get("type") == "auth_invalid":
            raise FatalLinkError(
                "Home Assistant refused the access token: create a long-lived access "
                "token for an administrator (profile → Security) and give it to the worker"
            )
        if answer.get("type") != "auth_ok":
            raise HomeAway(f"unexpected auth answer {answer.get('type')!r}")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, subscription: int) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            for item in _messages(message.json()):
                if item.get("id") == subscription:
                    self._subscription_message(item)
                elif (future := self._pending.pop(item.get("id", -1), None)) is not None:
                    if future.done():
                        continue
                    if item.get("success", True):
                        future.set_result(item.get("result"))
                    else:
                        error = item.get("error") or {}
                        future.set_exception(
                            HomeRefused(str(error.get("code")), str(error.get("message")))
                        )
        raise HomeAway("Home Assistant closed the connection")

    def _subscription_message(self, item: dict[str, Any]) -> None:
        if item.get("type") == "result":
            if not item.get("success"):
                error = item.get("error") or {}
                code, message = str(error.get("code")), str(error.get("message"))
                # Wrong token rights, entry or version: no retry mends those.
                if code in FATAL_CODES:
                    raise FatalLinkError(f"Home Assistant refused this worker: {message}")
                raise HomeRefused(code, message)
            return
        event = item.get("event") or {}
        if event.get("type") == Event.SETTINGS:
            self.settings = WorkerSettings.from_message(event["settings"])
            first = not self.connected
            self.connected = True
            self.last_error = None
            self.settings_ready.set()
            if first:
                _LOGGER.info("Connected to Home Assistant at %s", self.config.url)
                self._flush()
                self._on_connection(True)
                self.reloading = False
        if event.get("type") == Event.CLOSING:
            self.reloading = True
            raise HomeAway("the entry is reloading")
        self._on_event(event)

    def _lost(self) -> None:
        was = self.connected
        self.connected = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HomeAway("the connection to Home Assistant was lost"))
        self._pending.clear()
        if was:
            _LOGGER.warning("Lost the connection to Home Assistant; reconnecting")
            self._on_connection(False)

    async def request(self, command: str, **fields: Any) -> Any:
        """Run one of the worker commands; HomeAway when HA is away, HomeRefused on errors."""
        ws = self._ws
        if ws is None or not self.connected:
            raise HomeAway("Home Assistant is not connected")
        message_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await ws.send_json(
                {
                    "id": message_id,
                    "type": f"{PREFIX}/{command}",  # a Command (a str)
                    "entry_id": self.config.entry_id,
                    **fields,
                }
            )
            async with asyncio.timeout(self.config.request_timeout):
                return await future
        except (aiohttp.ClientError, ConnectionError) as err:
            raise HomeAway(_describe(err)) from err
        except TimeoutError as err:
            raise HomeAway("Home Assistant did not answer in time") from err
        finally:
            self._pending.pop(message_id, None)

    def report(self, **fields: Any) -> None:
        """Send a report; while HA is away it waits (bounded) and goes out on reconnect."""
        last = self._waiting[-1] if self._waiting else None
        if fields.get("kind") == ReportKind.USAGE and last and last.get("kind") == ReportKind.USAGE:
            # Usage comes several times a turn: while HA is away it adds up in one report
            # rather than pushing the rooms' states and turns out of the bounded queue.
            last["usage"] = {
                name: last["usage"].get(name, 0) + fields["usage"].get(name, 0)
                for name in {*last["usage"], *fields["usage"]}
            }
            return
        self._waiting.append(fields)
        if self.connected:
            self._flush()

    def _flush(self) -> None:
        while self._waiting and self.connected:
            fields = self._waiting.popleft()
            task = asyncio.ensure_future(self._send_report(fields))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            task.add_done_callback(_quiet)

    async def _send_report(self, fields: dict[str, Any]) -> None:
        try:
            await self.request(Command.REPORT, **fields)
        except HomeAway:
            self._waiting.appendleft(fields)  # HA went while it was on its way
        except HomeRefused as err:
            _LOGGER.warning("Home Assistant refused a %s report: %s", fields.get("kind"), err)

    async def drain(self, seconds: float = 2.0) -> None:
        """Wait (a little) for the reports on their way."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=seconds)

    async def aclose(self) -> None:
        """Disconnect and stop reconnecting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif self._own_session and self._session is not None:
            await self._session.close()


def _messages(payload: Any) -> list[dict[str, Any]]:
    """HA may coalesce several messages into one JSON array."""
    return payload if isinstance(payload, list) else [payload]


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        _LOGGER.debug("A report failed: %s", _describe(error))


AWAY_MESSAGE: Final = (
    "Home Assistant cannot be reached right now, so nothing was done. Tell the user, "
    "and that they can try again in a moment."
)


class RemoteHome:
    """The engine's `Home`, served by Home Assistant over a `HomeLink`."""

    def __init__(self, link: HomeLink) -> None:
        """Use a link that has its settings."""
        self.link = link
        # The last tools and guide per room: a session that restarts while HA is away
        # keeps them (calls then say HA is away).
        self._tools: dict[str, RoomTools] = {}

    @property
    def _settings(self) -> WorkerSettings:
        if self.link.settings is None:  # pragma: no cover - the engine starts after them
            raise HomeAway("no settings from Home Assistant yet")
        return self.link.settings

    def context(self, room: str) -> HomeContext:
        """Return the home's name, language, time zone and time."""
        settings = self._settings
        return HomeContext(
            home_name=settings.home_name,
            language=settings.voice.language,
            time_zone=settings.time_zone,
            now=datetime.now(ZoneInfo(settings.time_zone)),
        )

    async def room_tools(self, room: str) -> RoomTools:
        """Return the tools Home Assistant offers the room, and their guide."""
        try:
            answer = await self.link.request(Command.TOOLS, room=room)
        except (HomeAway, HomeRefused) as err:
            _LOGGER.warning("Room %s: no fresh tools from Home Assistant: %s", room, err)
            return self._tools.get(room, RoomTools([], ""))
        known = self._tools[room] = room_tools(answer)
        return known

    async def _ask(self, command: Command, **fields: Any) -> Any:
        try:
            return await self.link.request(command, **fields)
        except HomeAway as err:
            raise ToolCallError(AWAY_MESSAGE) from err
        except HomeRefused as err:
            raise ToolCallError(str(err)) from err

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Run a tool inside Home Assistant."""
        answer = await self._ask(
            Command.CALL_TOOL, room=room, name=name, arguments=arguments, turn=turn
        )
        return answer["result"]

    async def converse(
        self, room: str, text: str, agent_id: str, *, turn: int = 0
    ) -> tuple[str, list[str]]:
        """Ask one of the home's conversation agents."""
        answer = await self._ask(
            Command.CONVERSE, room=room, text=text, agent_id=agent_id, turn=turn
        )
        return str(answer["speech"]), list(answer["tools"])

    async def transcribe(self, engine: str, pcm: bytes, rate: int, language: str) -> str:
        """Transcribe with one of the home's speech-to-text engines."""
        answer = await self._ask(
            Command.TRANSCRIBE,
            engine=engine,
            audio=encode_audio(pcm),
            rate=rate,
            language=language,
        )
        return str(answer["text"])

    async def synthesize(self, engine: str, text: str, language: str) -> tuple[str, bytes]:
        """Speak with one of the home's text-to-speech engines."""
        answer = await self._ask(Command.SYNTHESIZE, engine=engine, text=text, language=language)
        return str(answer["extension"]), decode_audio(answer["audio"])

    def report_state(self, room: str, state: str) -> None:
        """Show the room's state on Home Assistant's sensors."""
        self.link.report(kind=ReportKind.STATE, room=room, state=state)

    def report_turn(self, report: TurnReport) -> None:
        """Send a finished turn: HA fires `shackleton_turn` and feeds its sensors."""
        self.link.report(kind=ReportKind.TURN, room=report.room, turn=turn_fields(report))

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Send a fault: HA fires `shackleton_error` (and raises the breaker's repair)."""
        self.link.report(
            kind=ReportKind.ERROR,
            room=room,
            source=source,
            message=message,
            recoverable=recoverable,
        )

    def report_usage(self, usage: Usage) -> None:
        """Send what the providers did: HA counts it on the entry's usage sensors."""
        self.link.report(kind=ReportKind.USAGE, room="", usage=usage_fields(usage))

    def report_session(self, room: str, *, active: bool) -> None:
        """Say that a room's session started or ended (announcements follow sessions)."""
        self.link.report(kind=ReportKind.SESSION, room=room, active=active)
