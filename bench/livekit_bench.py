"""Benchmark the voice engine over a real LiveKit server and WebRTC, beside its local audio.

A real Home Assistant runs in this process with a Shackleton entry on a real LiveKit
server (`scripts/livekit`, on loopback) and the test suite's zero-latency fake OpenAI
server, as `bench/voice_bench.py` and `bench/worker_bench.py` use it. People join rooms
as the card does: Home Assistant's token endpoint gives them a token and calls the agent.
They are LiveKit participants (`harness/livekit_participant.py`) in a child process of
their own, as a person's WebRTC stack runs on their own device: here it would add to the
CPU and the loop lag measured. They speak the test WAVs, and time the agent's audio as it
leaves their AudioStream (after the jitter buffer and Opus), when a person would hear it.

- speech end → first reply audio, over WebRTC and, in the same run, on the engine's
  local audio transport (`speech_end_to_first_audio`, as the voice bench measures it);
- barge-in over WebRTC: the onset of "Stop." → the reply's audio quiet at the participant;
- Home Assistant's event-loop lag, and CPU per room, with 4 people in 4 rooms.

Run: `scripts/bench livekit` (about 4 minutes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import itertools
import json
from pathlib import Path
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp
from homeassistant.core import HomeAssistant
from livekit.agents import AgentStateChangedEvent

from bench.voice_bench import (
    AUDIO,
    UTTERANCES,
    CpuMeter,
    idle_cores,
    loop_lag,
    pct,
    print_figures,
    script_barge_in,
    script_chatter,
    script_turns,
    speech_end_to_first_audio,
)
from custom_components.shackleton.const import (
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_URL,
)
from custom_components.shackleton.models import ShackletonConfigEntry
from custom_components.shackleton.voice.engine import VoiceEngine
from custom_components.shackleton.voice.loading import import_heavy
from harness.fakes import FakeOpenAI, start_app
from harness.ha_process import REPO, free_port, start_home
from harness.livekit_participant import AUDIBLE, Participant
from harness.livekit_server import API_KEY, API_SECRET, LiveKitProcess

TURNS = 20
BARGE_INS = 12  # about 5 s each: 20 would take the run well past 4 minutes
ROOMS = 4
LAG_SECONDS = 20.0
CPU_SECONDS = 10.0
# Lines of the people's process that answer a request; anything else it prints is not.
ANSWER = "PEOPLE "
START = time.monotonic()


async def until(condition: Callable[[], bool], seconds: float) -> None:
    """Wait until `condition()` holds, or raise TimeoutError after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.02)


# --- the people, in their own process ---------------------------------------------


@dataclass
class Crowd:
    """One person per room: what the benchmark asks of them, timed where they are."""

    people: dict[str, Participant] = field(default_factory=dict)

    async def join(self, room: str, url: str, token: str) -> dict[str, Any]:
        """Join with the card's grant; return once the agent listens."""
        person = self.people[room] = Participant()
        await person.join(url, token)
        await self._listening(person, 30)
        return {}

    async def turn(self, room: str, clip: str) -> dict[str, Any]:
        """Say `clip`; return when it ended and when the reply was first heard."""
        person = self.people[room]
        ended = await person.say(AUDIO / f"{clip}.wav")
        queued = mic_queue(person)
        heard = await person.wait_audible(ended)
        await person.wait_silent(heard)
        await self._listening(person, 10)
        await asyncio.sleep(0.5)  # as the voice bench's microphone pauses between turns
        return {"ended": ended, "heard": heard, "queued": queued}

    async def ask(self, room: str) -> dict[str, Any]:
        """Ask the time; return once the answer is heard."""
        person = self.people[room]
        ended = await person.say(AUDIO / "whats_the_time.wav")
        return {"heard": await person.wait_audible(ended)}

    async def stop(self, room: str, heard: float) -> dict[str, Any]:
        """Say "Stop." 0.5 s into the answer; return when it began and when the answer stopped."""
        person = self.people[room]
        await asyncio.sleep(max(0.0, heard + 0.5 - time.monotonic()))
        if person.heard[-1].rms <= AUDIBLE:
            raise RuntimeError("the answer was over before the person talked over it")
        onset = time.monotonic()
        await person.say(AUDIO / "stop.wav")
        # The answer is 7 s long: quiet within 5 s of "Stop." is the interruption.
        silenced = await person.wait_silent(onset, within=5)
        # "Stop." gets its own short answer; wait for it and for quiet.
        answer = await person.wait_audible(silenced)
        await person.wait_silent(answer)
        await self._listening(person, 10)
        await asyncio.sleep(0.8)
        return {"onset": onset, "silenced": silenced}

    async def talk(self, rooms: list[str], clip: str, seconds: float) -> dict[str, Any]:
        """Have everyone in `rooms` say `clip` every 2 s or so for `seconds`, all at once."""
        start = time.monotonic()
        stop = start + seconds

        async def chatter(person: Participant) -> int:
            said = 0
            while time.monotonic() < stop - 3:
                await person.say(AUDIO / f"{clip}.wav")
                await asyncio.sleep(2.0)
                said += 1
            return said

        said = await asyncio.gather(*(chatter(self.people[room]) for room in rooms))
        await asyncio.sleep(1.0)  # the last replies
        return {
            "said": sum(said),
            "replies": sum(replies_since(self.people[room], start) for room in rooms),
        }

    async def leave(self, room: str) -> dict[str, Any]:
        """Leave `room`."""
        await self.people.pop(room).leave()
        return {}

    async def leave_all(self) -> None:
        """Leave every room."""
        for room in list(self.people):
            await self.leave(room)

    @staticmethod
    async def _listening(person: Participant, seconds: float) -> None:
        try:
            await until(lambda: agent_state(person) == "listening", seconds)
        except TimeoutError:
            others = list(person.room.remote_participants)
            raise TimeoutError(
                f"the agent is not listening: states {person.state_path()}, others {others}"
            ) from None


def mic_queue(person: Participant) -> float:
    """Return the seconds of audio waiting in the person's microphone, by the SDK's reckoning.

    What a busy moment queued stays there, ahead of later speech (both ends run in real
    time): speech leaves this late after `say` returns. The participant keeps the queue
    short (0.1 s); a browser's microphone keeps none.
    """
    return person.queued_seconds


def agent_state(person: Participant) -> str | None:
    """Return the agent's state as the room has it now.

    Not `person.states`: a change made while the person was joining comes with the room,
    not as an event.
    """
    for other in person.room.remote_participants.values():
        if (state := other.attributes.get("lk.agent.state")) is not None:
            return state
    return None


def replies_since(person: Participant, moment: float) -> int:
    """Count the agent's replies heard after `moment`: quiet-to-audible edges."""
    count, loud = 0, False
    for heard in person.heard:
        if heard.at > moment:
            count += heard.rms > AUDIBLE and not loud
            loud = heard.rms > AUDIBLE
    return count


async def serve_people() -> None:
    """Be the people: answer the benchmark's requests (a JSON line each) until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    crowd = Crowd()
    actions: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "join": crowd.join,
        "turn": crowd.turn,
        "ask": crowd.ask,
        "stop": crowd.stop,
        "talk": crowd.talk,
        "leave": crowd.leave,
    }
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request: dict[str, Any]) -> None:
        try:
            reply = await actions[request["op"]](**request["args"])
        except Exception as err:  # noqa: BLE001 - the benchmark reports it and stops
            reply = {"error": f"{type(err).__name__}: {err}"}
        sys.stdout.write(ANSWER + json.dumps({"id": request["id"], **reply}) + "\n")
        sys.stdout.flush()

    try:
        while line := await reader.readline():
            task = loop.create_task(answer(json.loads(line)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await crowd.leave_all()


class People:
    """The benchmark's side of the people's process: ask, and wait for the answer."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        """Start reading the process's answers."""
        self._process = process
        self._log = log
        self._ids = itertools.count()
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, log: Path) -> People:
        """Start the people's process, its stderr going to `log`.

        Not to ours: at exit the SDK's handles outlive its FFI server, and each one logs a
        traceback. The log is shown if the process ends before it was asked to.
        """
        with await asyncio.to_thread(log.open, "wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.livekit_bench",
                "--people",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                cwd=REPO,
            )
        return cls(process, log)

    async def ask(self, op: str, **args: Any) -> dict[str, Any]:
        """Have the people do `op`; return their answer, or raise their error."""
        assert self._process.stdin is not None
        key = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        request = {"id": key, "op": op, "args": args}
        self._process.stdin.write(json.dumps(request).encode() + b"\n")
        await self._process.stdin.drain()
        # Each request ends within a minute (`talk`, the longest, in LAG_SECONDS + 5 s).
        answer = await asyncio.wait_for(future, 60)
        if "error" in answer:
            raise RuntimeError(f"the people's {op} failed: {answer['error']}")
        return answer

    async def _read(self) -> None:
        assert self._process.stdout is not None
        while line := (await self._process.stdout.readline()).decode():
            if not line.startswith(ANSWER):
                continue
            answer = json.loads(line.removeprefix(ANSWER))
            future = self._waiting.pop(answer["id"], None)
            if future is not None and not future.done():
                future.set_result(answer)
        if pending := [future for future in self._waiting.values() if not future.done()]:
            code = await self._process.wait()
            log = (await asyncio.to_thread(self._log.read_text, errors="replace"))[-4000:]
            for future in pending:
                future.set_exception(RuntimeError(f"the people's process ended ({code}):\n{log}"))

    async def close(self) -> None:
        """Let everyone leave, and the process end."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 20)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        await self._reader


# --- Home Assistant's side --------------------------------------------------------


@dataclass
class Home:
    """The running Home Assistant: its entry's engine, and its token endpoint."""

    hass: HomeAssistant
    url: str
    token: str
    entry_id: str

    @property
    def engine(self) -> VoiceEngine:
        """The entry's voice engine (in this process)."""
        engine = self._entry().runtime_data.voice.engine
        assert engine is not None
        return engine

    def _entry(self) -> ShackletonConfigEntry:
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        assert entry is not None
        return entry

    async def attach(self, server: LiveKitProcess) -> None:
        """Give the entry the LiveKit server, as reconfiguring it would; wait for its engine."""
        entry = self._entry()
        await entry.runtime_data.voice.async_ready()  # no engine cut off half-loaded
        assert await self.hass.config_entries.async_unload(self.entry_id)
        self.hass.config_entries.async_update_entry(
            entry,
            data={
                **entry.data,
                CONF_LIVEKIT_URL: server.url,
                CONF_LIVEKIT_API_KEY: API_KEY,
                CONF_LIVEKIT_API_SECRET: API_SECRET,
            },
        )
        assert await self.hass.config_entries.async_setup(self.entry_id)
        if not await entry.runtime_data.voice.async_ready():
            raise RuntimeError("the voice engine did not start")

    async def join(self, people: People, room: str) -> None:
        """Have a person join `room` as the card does: a token from HA, which calls the agent."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.url}/api/shackleton/token",
                json={"room": room},
                headers={"Authorization": f"Bearer {self.token}"},
            ) as response,
        ):
            assert response.status == 200, await response.text()
            grant = await response.json()
        await people.ask("join", room=room, url=grant["url"], token=grant["token"])

    async def leave(self, people: People, room: str) -> None:
        """Have the agent leave `room`, then the person."""
        await self._entry().runtime_data.voice.async_leave_room(room)
        await people.ask("leave", room=room)

    def decisions(self, room: str) -> list[float]:
        """Return a list that gets the time of each turn decided in `room` (the agent thinks)."""
        session = self.engine.sessions[room].session
        assert session is not None
        decided: list[float] = []

        def on_state(event: AgentStateChangedEvent) -> None:
            if event.new_state == "thinking":
                decided.append(time.monotonic())

        session.on("agent_state_changed", on_state)
        return decided


async def webrtc_turns(
    home: Home, people: People, fake: FakeOpenAI, room: str
) -> tuple[list[float], list[float], list[float]]:
    """Return seconds from each utterance's end at the participant to the reply heard there.

    And to the turn decided in the engine (the same clock: CLOCK_MONOTONIC is the
    system's), and the participant's microphone queue at the end (`mic_queue`).
    """
    script_turns(fake)
    decided = home.decisions(room)
    latency, detection, queued = [], [], []
    for number in range(1, TURNS + 1):
        turn = await people.ask("turn", room=room, clip=UTTERANCES[number % len(UTTERANCES)])
        latency.append(turn["heard"] - turn["ended"])
        detection.append(min(t for t in decided if t > turn["ended"]) - turn["ended"])
        queued.append(turn["queued"])
    return latency, detection, queued


async def webrtc_barge_in(people: People, fake: FakeOpenAI, room: str) -> list[float]:
    """Return seconds from the onset of "Stop." to the answer quiet at the participant."""
    results = []
    for _ in range(BARGE_INS):
        # The long answer to any request until it is heard, then "Okay.": not an ordered
        # script, whose long answer a preemptive request (begun before the turn ends, then
        # dropped when the turn's context changed) can take, leaving "Okay." to be heard.
        script_barge_in(fake)
        fake.chat_script.clear()
        heard = (await people.ask("ask", room=room))["heard"]
        fake.default_reply = "Okay."
        trial = await people.ask("stop", room=room, heard=heard)
        results.append(trial["silenced"] - trial["onset"])
    return results


async def rooms_at_once(
    home: Home, people: People, fake: FakeOpenAI
) -> tuple[list[float], dict[str, float], dict[str, Any]]:
    """Return loop-lag samples with ROOMS rooms talking, the cores used, and what was said.

    Cores: with no room (the baseline), with the rooms talking, and with them listening
    to an open microphone in a quiet room (WebRTC still carries its silence).
    """
    cores = {"baseline": await idle_cores(CPU_SECONDS)}
    rooms = [f"lag{index}" for index in range(ROOMS)]
    for room in rooms:
        await home.join(people, room)
    await asyncio.sleep(1.0)  # past start-up
    script_chatter(fake)
    meter = CpuMeter()
    lags, talked = await asyncio.gather(
        loop_lag(time.monotonic() + LAG_SECONDS),
        people.ask("talk", rooms=rooms, clip="turn_on_kitchen_light", seconds=LAG_SECONDS),
    )
    cores["talking"] = meter.cores()
    cores["listening"] = await idle_cores(CPU_SECONDS)
    for room in rooms:
        await home.leave(people, room)
    return lags, cores, talked


def progress(message: str) -> None:
    """Say on stderr what is being measured, and when."""
    print(f"[{time.monotonic() - START:3.0f} s] {message}", file=sys.stderr)


async def measure(fake: FakeOpenAI, server: LiveKitProcess, workdir: Path) -> dict[str, Any]:
    """Run every measure in a real Home Assistant; return the figures."""
    port = free_port()
    people = await People.start(workdir / "people.log")
    try:
        hass, facts = await start_home(
            workdir / "home", port, fake.base_url, placement="home_assistant"
        )
        try:
            token = facts["users"]["admin"]["token"]
            home = Home(hass, f"http://127.0.0.1:{port}", token, facts["entry_id"])
            await home.attach(server)
            progress(f"local transport, {TURNS} turns...")
            local, local_decided = await speech_end_to_first_audio(home.engine, fake, TURNS)
            progress(f"WebRTC, {TURNS} turns...")
            await home.join(people, "webrtc")
            webrtc, webrtc_decided, queued = await webrtc_turns(home, people, fake, "webrtc")
            progress(f"barge-in over WebRTC, {BARGE_INS} trials...")
            barge = await webrtc_barge_in(people, fake, "webrtc")
            await home.leave(people, "webrtc")
            progress(f"{ROOMS} rooms at once: event-loop lag and CPU...")
            lags, cores, talked = await rooms_at_once(home, people, fake)
        finally:
            await hass.async_stop()
    finally:
        await people.close()
    local_after = [t - d for t, d in zip(local, local_decided, strict=True)]
    webrtc_after = [t - d for t, d in zip(webrtc, webrtc_decided, strict=True)]
    return {
        "local_speech_end_to_first_audio_p50_ms": round(pct(local, 50) * 1000),
        "local_speech_end_to_first_audio_p95_ms": round(pct(local, 95) * 1000),
        "webrtc_speech_end_to_first_audio_p50_ms": round(pct(webrtc, 50) * 1000),
        "webrtc_speech_end_to_first_audio_p95_ms": round(pct(webrtc, 95) * 1000),
        "webrtc_over_local_p50_ratio": round(pct(webrtc, 50) / pct(local, 50), 3),
        "webrtc_over_local_p95_ratio": round(pct(webrtc, 95) / pct(local, 95), 3),
        "webrtc_minus_local_p50_ms": round((pct(webrtc, 50) - pct(local, 50)) * 1000),
        # Part of that is the test participant's own microphone queue (none in a browser).
        "participant_mic_queue_at_speech_end_p50_ms": round(statistics.median(queued) * 1000),
        # Where the difference is: before the turn is decided (the way in, and the VAD),
        # or after it (the engine, and the way out).
        "local_turn_decided_p50_ms": round(statistics.median(local_decided) * 1000),
        "webrtc_turn_decided_p50_ms": round(statistics.median(webrtc_decided) * 1000),
        "local_first_audio_after_decision_p50_ms": round(statistics.median(local_after) * 1000, 1),
        "webrtc_first_audio_after_decision_p50_ms": round(
            statistics.median(webrtc_after) * 1000, 1
        ),
        "webrtc_barge_in_p50_ms": round(pct(barge, 50) * 1000),
        "webrtc_barge_in_p95_ms": round(pct(barge, 95) * 1000),
        f"loop_lag_p99_ms_{ROOMS}_rooms": round(pct(lags, 99) * 1000, 1),
        f"loop_lag_max_ms_{ROOMS}_rooms": round(max(lags) * 1000, 1),
        "cpu_percent_per_listening_room": round(
            (cores["listening"] - cores["baseline"]) / ROOMS * 100, 2
        ),
        "cpu_percent_per_talking_room": round(
            (cores["talking"] - cores["baseline"]) / ROOMS * 100, 2
        ),
        "turns_each": TURNS,
        "barge_in_trials": BARGE_INS,
        f"utterances_{ROOMS}_rooms": talked["said"],
        f"replies_heard_{ROOMS}_rooms": talked["replies"],
    }


async def main() -> None:
    """Start the servers, measure, and print a table and JSON."""
    fake = FakeOpenAI()
    runner, fake.url = await start_app(fake.app())
    # Load like HA does, so that no first-use import lands inside a measured turn.
    await asyncio.to_thread(import_heavy)
    tmp = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="livekit_bench."))
    server = LiveKitProcess(tmp / "livekit")
    try:
        await asyncio.to_thread(server.start)
        figures = await measure(fake, server, tmp)
    finally:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(shutil.rmtree, tmp)
        await runner.cleanup()
    print_figures(figures)


if __name__ == "__main__":
    asyncio.run(serve_people() if sys.argv[1:] == ["--people"] else main())
