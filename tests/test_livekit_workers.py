"""External workers in LiveKit mode: LiveKit's dispatch shares an entry's rooms among them.

Against the real LiveKit server. In the first test, Home Assistant runs in its own process
(harness/ha_process.py) with its entry on that server, and two workers
(`python -m custom_components.shackleton.voice livekit`) register under the entry's agent
name. People ask for the card's token, which asks LiveKit for a dispatch, and listen over
WebRTC. Which worker serves a room is read three ways: the agent the person hears is
`agent-<job id>`, the worker's log names that job, and Home Assistant's log names the
job's own link to it (`<worker>/<room>`). The other tests run Home Assistant in-process to
watch its dispatches at the server when no worker takes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from livekit import api
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton import voice_external
from custom_components.shackleton.const import (
    CONF_LIVEKIT_URL,
    CONF_WORKER,
    DEFAULT_OPTIONS,
    DOMAIN,
    WORKER_EXTERNAL,
)
from custom_components.shackleton.voice.livekit_worker import _server_options
from custom_components.shackleton.voice.settings import Backoff
from custom_components.shackleton.worker_api import agent_name
from harness.fakes import FakeOpenAI, closed_port_url
from harness.ha_process import free_port
from harness.livekit_participant import Participant
from harness.livekit_server import API_KEY, API_SECRET, LiveKitProcess

from .conftest import livekit_data, wait_for
from .test_worker_process import WORKER_MODULE, Home, Process, worker_env

pytestmark = pytest.mark.livekit

SESSIONS = "/api/states/sensor.shackleton_active_voice_sessions"


@pytest.fixture
async def home(
    tmp_path: Path, fake_openai: FakeOpenAI, livekit: LiveKitProcess
) -> AsyncIterator[Home]:
    """Return Home Assistant in its own process, its entry on the real LiveKit server."""
    home = Home(tmp_path / "ha", fake_openai.base_url, livekit.url)
    yield home
    if home.process is not None:
        await home.process.stop()


async def start_worker(home: Home, facts: dict[str, Any], name: str) -> Process:
    """Start a LiveKit-mode worker that serves one room at a time, with no warm process."""
    env = worker_env(home, facts["users"]["admin"]["token"], facts["entry_id"])
    return await Process.start(
        "-m",
        WORKER_MODULE,
        "livekit",
        "--health-port",
        str(free_port()),
        "--idle-processes",
        "0",
        "--max-rooms",
        "1",
        env=env | {"SHACKLETON_NAME": name},
    )


def log_of(worker: Process) -> str:
    """Return what the worker logged, its jobs' lines included (LiveKit forwards them)."""
    return "".join(worker.stderr)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30) -> None:
    """Wait until an asynchronous `check` passes."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.2)


class Rooms:
    """The people in the home's rooms, who join with the card's tokens."""

    def __init__(self, home: Home, token: str, workers: dict[str, Process]) -> None:
        """Act as the administrator; `workers` by name."""
        self.home = home
        self.token = token
        self.workers = workers
        self.people: dict[str, Participant] = {}

    async def join(self, room: str) -> str:
        """Ask for the card's token, join, and return the name of the worker that came."""
        grant = await self.home.call(self.token, "POST", "/api/shackleton/token", {"room": room})
        person = self.people[room] = Participant()
        await person.join(grant["url"], grant["token"])
        try:
            await wait_for(lambda: person.agent_identity is not None, 60)
        except TimeoutError as err:
            # What Home Assistant and the workers said about the dispatch explains it.
            raise AssertionError(f"no agent came to {room}:\n{self._dispatch_lines()}") from err
        assert person.agent_identity is not None
        job = person.agent_identity.removeprefix("agent-")
        serving = f"Serving room {room} (job {job})"
        # The job's line reaches its worker's stderr through LiveKit's IPC, unordered
        # with the agent's track reaching the person.
        await wait_for(lambda: any(serving in log_of(w) for w in self.workers.values()))
        [name] = [name for name, worker in self.workers.items() if serving in log_of(worker)]
        await wait_for(lambda: f"voice worker {name}/{room} connected" in self.home.log())
        return name

    def _dispatch_lines(self) -> str:
        """Return the logs' lines about dispatches, rooms and workers (the last 40 each)."""
        words = ("dispatch", "worker", "room", "job", "LiveKit")
        logs = {"home": self.home.log()} | {
            name: log_of(worker) for name, worker in self.workers.items()
        }
        return "\n".join(
            f"--- {name}\n"
            + "\n".join(
                [line for line in log.splitlines() if any(word in line for word in words)][-40:]
            )
            for name, log in logs.items()
        )

    async def leave(self, room: str) -> None:
        """Have the room's person leave."""
        await self.people.pop(room).leave()

    async def served(self, count: int) -> bool:
        """Return whether Home Assistant sees `count` rooms served."""
        state = await self.home.call(self.token, "GET", SESSIONS)
        return int(state["state"]) == count

    async def announce_heard(self, room: str, message: str) -> float:
        """Announce into `room` through Home Assistant; return when its person heard it."""
        before = time.monotonic()
        answer = await self.home.call(
            self.token,
            "POST",
            "/api/services/shackleton/announce?return_response",
            {"message": message, "rooms": [room]},
        )
        assert answer["service_response"]["rooms"] == [{"room": room, "outcome": "spoken"}]
        return await self.people[room].wait_audible(before)

    async def aclose(self) -> None:
        """Have everybody leave."""
        for room in list(self.people):
            await self.leave(room)


async def test_workers_share_rooms_and_take_over(home: Home, fake_openai: FakeOpenAI) -> None:
    """Two workers take a room each; when one is killed, the other serves its room."""
    facts = await home.start()
    admin = facts["users"]["admin"]["token"]
    workers = {name: await start_worker(home, facts, name) for name in ("worker-a", "worker-b")}
    rooms = Rooms(home, admin, workers)
    try:
        for worker in workers.values():
            await wait_for(lambda w=worker: "registered worker" in log_of(w), 60)

        # Both rooms at once. A worker with a room, or one on its way, is full: LiveKit
        # gives the other room to the other worker.
        kitchen_worker, study_worker = await asyncio.gather(
            rooms.join("kitchen"), rooms.join("study")
        )
        assert {kitchen_worker, study_worker} == {"worker-a", "worker-b"}
        await eventually(lambda: rooms.served(2))

        # An announcement reaches each room through the worker that serves it.
        await rooms.announce_heard("kitchen", "Dinner is ready")
        await rooms.announce_heard("study", "The post has come")
        assert {"Dinner is ready", "The post has come"} <= set(fake_openai.tts_inputs)

        # The study's person leaves: the job ends with the session, so Home Assistant
        # sees the room free, and its worker can take another.
        await rooms.leave("study")
        await eventually(lambda: rooms.served(1), 15)

        # The kitchen's worker is killed. Its job dies with it, and Home Assistant sees
        # the kitchen unserved as soon as the job's link drops.
        killed_at = time.monotonic()
        workers[kitchen_worker].proc.kill()
        await eventually(lambda: rooms.served(0), 10)

        # The kitchen's person connects again, as the card does: the other worker comes
        # (LiveKit may refuse the first offer while it still counts that worker full, from
        # a status up to 2.5 s old: Home Assistant offers the room again).
        await rooms.leave("kitchen")
        assert await rooms.join("kitchen") == study_worker
        await eventually(lambda: rooms.served(1))
        heard = await rooms.announce_heard("kitchen", "Dinner is getting cold")
        assert heard - killed_at < 40
    finally:
        await rooms.aclose()
        codes = {name: await worker.stop() for name, worker in workers.items()}
    assert codes[kitchen_worker] == -9
    assert codes[study_worker] == 0, log_of(workers[study_worker])
    assert admin not in log_of(workers[study_worker]) + home.log()


@pytest.fixture
def quick_offers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give up on an offer after half a second, and offer a room twice in all."""
    monkeypatch.setattr(voice_external, "DISPATCH_TAKEN_SECONDS", 0.5)
    monkeypatch.setattr(voice_external, "DISPATCH_ATTEMPTS", 2)
    monkeypatch.setattr(voice_external, "DISPATCH_BACKOFF", Backoff(initial=0.1, maximum=0.1))


async def external_entry(hass: HomeAssistant, data: dict[str, Any]) -> MockConfigEntry:
    """Set up an entry served by external workers (none runs here)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (workers)",
        data=data,
        options={**DEFAULT_OPTIONS, "language": "en", CONF_WORKER: WORKER_EXTERNAL},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_room_offered_again_when_no_worker_takes_it(
    hass: HomeAssistant,
    livekit: LiveKitProcess,
    fake_openai: FakeOpenAI,
    quick_offers: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No worker is registered: each offer stays untaken, is withdrawn, and is made again."""
    entry = await external_entry(hass, livekit_data(livekit, fake_openai))
    room = f"hall-{entry.entry_id}"
    client = api.LiveKitAPI(
        livekit.http_url, API_KEY, API_SECRET, session=async_get_clientsession(hass)
    )

    async def offers_in_room() -> int:
        # LiveKit lists the room's own automatic dispatch too (no agent name).
        dispatches = await client.agent_dispatch.list_dispatch(room)
        return sum(dispatch.agent_name == agent_name(entry.entry_id) for dispatch in dispatches)

    def logged(call: str) -> int:
        # The server's log of its API calls, for this room.
        lines = livekit.log().splitlines()
        return sum(call in line and f'"room": "{room}"' in line for line in lines)

    for _ in range(2):  # a second request while the first is on its way adds nothing
        await hass.services.async_call(DOMAIN, "start_session", {"room": room}, blocking=True)
    await wait_for(lambda: f'"room": "{room}"' in livekit.log())
    # One offer, or none once the untaken one is withdrawn (after 0.5 s here): never two.
    assert await offers_in_room() <= 1

    await hass.async_block_till_done(wait_background_tasks=True)
    assert f"no voice worker took room {room} after 2 offers" in caplog.text
    assert await offers_in_room() == 0
    await wait_for(lambda: logged("DeleteDispatch") >= 2)  # the server may log after answering
    assert (logged("CreateDispatch"), logged("DeleteDispatch")) == (2, 2)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_room_not_offered_when_livekit_is_unreachable(
    hass: HomeAssistant,
    livekit: LiveKitProcess,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server does not answer: Home Assistant says so, and shows LiveKit disconnected."""
    data = livekit_data(livekit, fake_openai) | {CONF_LIVEKIT_URL: closed_port_url("ws")}
    entry = await external_entry(hass, data)
    await hass.services.async_call(DOMAIN, "start_session", {"room": "hall"}, blocking=True)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert "LiveKit could not send a worker to room hall" in caplog.text
    assert not entry.runtime_data.runtime.livekit_connected
    assert await hass.config_entries.async_unload(entry.entry_id)


def test_worker_keeps_livekits_defaults() -> None:
    """Without --idle-processes and --max-rooms, LiveKit's pool and load decide."""
    assert _server_options(None, 0) == {}
