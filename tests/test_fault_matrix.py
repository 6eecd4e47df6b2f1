"""Every place Shackleton asks a provider, against every fault a network shows.

One row per path, one column per fault (harness/fakes.py FAULTS), injected by the fake
servers at the network boundary. A row runs all its cells at once, so a row costs its
slowest cell (the bound), not their sum. Each cell asserts what the README promises for
its path: the outcome, within the path's bound; then the same path serves a normal
request, and nothing is left running: no task, no thread, no connection in use.

`SHACKLETON_FAULT_TIMES=FILE` records each cell's outcome and time for the README's
table ("When a provider fails"), which `scripts/fault_table` writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
import json
import os
from pathlib import Path
import threading
import time
from typing import Any

from homeassistant.components import conversation
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import __version__ as ha_version
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent
from homeassistant.helpers.httpx_client import get_async_client
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.const import DEFAULT_OPTIONS, DOMAIN
from custom_components.shackleton.provider_faults import ProviderFault
from custom_components.shackleton.voice.local_audio import LocalAudioInput, LocalAudioOutput
from custom_components.shackleton.voice.settings import VoiceSettings
from custom_components.shackleton.voice_sets import voice_requirements
from harness.fakes import FAULT_MARK, FAULTS, FakeOpenAI, FakeRealtime, closed_port_url, start_app
from tuning import prompts

from .conftest import LIGHT, Room, entry_data, wait_for
from .fault_rows import ROWS

APOLOGY = VoiceSettings(mode="pipeline", llm=None).apology  # type: ignore[arg-type]
TIMES = os.environ.get("SHACKLETON_FAULT_TIMES")


@dataclass(slots=True)
class Cell:
    """What one faulted call did."""

    outcome: str
    seconds: float
    detail: str = ""


_recorded: dict[str, dict[str, dict[str, Any]]] = {}


@pytest.fixture(scope="module", autouse=True)
def record_times() -> Iterator[None]:
    """Write every cell's outcome and time when asked to (for the README's table)."""
    yield
    if TIMES:
        path = Path(TIMES)
        known = json.loads(path.read_text()) if path.exists() else {}
        known.update(_recorded)
        path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")


@dataclass
class Leftovers:
    """What runs before a row; `check` fails on anything the row left behind."""

    tasks: set[asyncio.Task[Any]]
    threads: set[int]

    @classmethod
    def now(cls) -> Leftovers:
        """Take the baseline."""
        return cls(asyncio.all_tasks(), {thread.ident or 0 for thread in threading.enumerate()})

    async def check(self, hass: HomeAssistant, fakes: list[FakeOpenAI]) -> None:
        """Assert no task, thread or connection in use outlives the row (10 s to end)."""
        for fake in fakes:
            fake.released.set()  # the fakes' hung handlers end (the drip's within 1 s)
        await hass.async_block_till_done(wait_background_tasks=True)
        deadline = time.monotonic() + 10
        left = self._left(hass)
        while any(left) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            left = self._left(hass)
        tasks, threads, busy = left
        assert not tasks, f"tasks left running: {tasks}"
        assert not threads, f"threads left running: {threads}"
        assert not busy, f"connections still in use: {busy}"

    def _left(self, hass: HomeAssistant) -> tuple[list[Any], list[str], list[Any]]:
        """Return the tasks, threads and pooled connections still busy since the baseline."""
        tasks = [
            task
            for task in asyncio.all_tasks() - self.tasks
            if not task.done()
            # The fake servers' connection handlers (the client's idle keep-alives).
            # (A garbage-collected async generator's `aclose` has no name: it is waited for.)
            and not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler")
            and task is not asyncio.current_task()
        ]
        threads = [
            thread.name
            for thread in threading.enumerate()
            if (thread.ident or 0) not in self.threads
            # HA's executor keeps its workers; they are idle, not ours.
            and not thread.name.startswith(("SyncWorker", "ImportExecutor"))
        ]
        pool = get_async_client(hass)._transport._pool  # type: ignore[attr-defined]
        busy = [connection for connection in pool.connections if not connection.is_idle()]
        return tasks, threads, busy


async def _timed(call: Awaitable[str | Cell]) -> Cell:
    """Time a call, unless it times itself (a voice turn counts from the end of speech)."""
    started = time.monotonic()
    outcome = await call
    return outcome if isinstance(outcome, Cell) else Cell(outcome, time.monotonic() - started)


async def _run_row(
    name: str, cells: dict[str, Callable[[], Awaitable[str | Cell]]]
) -> dict[str, Cell]:
    """Run every cell of a row at once; return their outcomes and times."""
    done = await asyncio.gather(*(_timed(cell()) for cell in cells.values()))
    result = dict(zip(cells, done, strict=True))
    _recorded[name] = {
        fault: {"outcome": cell.outcome, "seconds": round(cell.seconds, 2)}
        for fault, cell in result.items()
    }
    return result


def _assert_row(name: str, result: dict[str, Cell]) -> None:
    row = ROWS[name]
    wrong = {
        fault: (cell.outcome, round(cell.seconds, 2))
        for fault, cell in result.items()
        if cell.outcome != row.expected(fault) or cell.seconds > row.bound
    }
    assert not wrong, f"{name}: cells off their promise ({row.bound} s): {wrong}"


# --- The text agent and the actions -------------------------------------------------


def _marked(text: str, fault: str) -> str:
    return f"{text} [fault:{fault}]"


async def _entry(hass: HomeAssistant, data: dict[str, Any], entry_id: str) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"Shackleton {entry_id}",
        data=data,
        options={**DEFAULT_OPTIONS, "language": "en"},
        entry_id=entry_id,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return entry


async def _text_entries(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> tuple[MockConfigEntry, MockConfigEntry]:
    """Return an entry on the fake, and one whose provider refuses connections."""
    main = await _entry(hass, entry_data(None, fake_openai), "01JFAULTMATRIXMAIN00000000")
    refused = entry_data(None, fake_openai) | {
        "openai_base_url": fake_openai.fault_url("chat", "refused")
    }
    return main, await _entry(hass, refused, "01JFAULTMATRIXREFUSED00000")


def _agent(hass: HomeAssistant, entry: MockConfigEntry) -> str:
    [agent] = entry.runtime_data.agents.values()
    assert agent is not None
    assert agent.entity_id is not None
    return agent.entity_id


async def _process(hass: HomeAssistant, entry: MockConfigEntry, text: str) -> str:
    result = await conversation.async_converse(
        hass, text=text, conversation_id=None, context=Context(), language="en",
        agent_id=_agent(hass, entry),
    )  # fmt: skip
    speech = result.response.speech["plain"]["speech"]
    if result.response.response_type is intent.IntentResponseType.ERROR:
        return "apology" if speech == APOLOGY else f"error response: {speech}"
    return "answer" if speech else "silence"


# The reason `shackleton.ask`'s error gives for each fault (provider_<reason> in en.json).
REASONS = {
    "refused": "unreachable",
    "hang": "timeout",
    "stall": "timeout",
    "drip": "timeout",
    "cut": "broken",
    "401": "auth",
    "429": "rate_limited",
    "500": "server",
    "503": "server",
    "sse_error": "error_event",
    "bad_json": "malformed",
    "bad_sse": "malformed",
    "empty": "empty",
}


async def _ask(hass: HomeAssistant, entry: MockConfigEntry, text: str) -> str:
    try:
        response = await hass.services.async_call(
            DOMAIN, "ask", {"text": text, "config_entry_id": entry.entry_id},
            blocking=True, return_response=True,
        )  # fmt: skip
    except HomeAssistantError as err:
        # Translated, and naming what went wrong with the provider.
        cause = err.__cause__
        marked = FAULT_MARK.search(text)
        want = REASONS.get(marked.group(1) if marked else "refused")
        if (
            err.translation_key == "ask_failed"
            and isinstance(cause, ProviderFault)
            and cause.reason == want
            and str(cause) in str(err)
        ):
            return "error"
        return f"other error: {err!r} from {cause!r}"
    assert response is not None
    return "answer" if response["response"] else "silence"


async def _announce(hass: HomeAssistant, entry: MockConfigEntry, message: str) -> str:
    response = await hass.services.async_call(
        DOMAIN, "announce", {"message": message, "rephrase": True,
                             "config_entry_id": entry.entry_id},
        blocking=True, return_response=True,
    )  # fmt: skip
    assert response is not None
    if response["rephrased"]:
        return "rephrased"
    return "as written" if response["message"] == message else f"changed: {response}"


TEXT_CALLS = {
    "conversation.process": (_process, "Turn on the kitchen light"),
    "shackleton.ask": (_ask, "Turn on the kitchen light"),
    "announce rephrase": (_announce, "Dinner is ready"),
}


@pytest.mark.parametrize("name", list(TEXT_CALLS))
async def test_text_paths(
    hass: HomeAssistant, kitchen_light: None, fake_openai: FakeOpenAI, name: str
) -> None:
    """The text agent and the actions that use it, each fault at once."""
    call, text = TEXT_CALLS[name]
    main, refused = await _text_entries(hass, fake_openai)
    leftovers = Leftovers.now()
    cells: dict[str, Callable[[], Awaitable[str]]] = {
        fault: (
            lambda fault=fault: call(hass, main, _marked(text, fault))
            if fault != "refused"
            else call(hass, refused, text)
        )
        for fault in ROWS[name].faults()
    }
    result = await _run_row(name, cells)
    _assert_row(name, result)
    # Retries are bounded: one more try for what may pass, none for a refused key.
    tries = [fault for stage, fault in fake_openai.faulted if stage == "chat"]
    assert tries.count("429") == 2  # Retry-After: 1 s fits the turn, once
    assert tries.count("500") == tries.count("503") == 2
    assert tries.count("401") == 1
    # A tool call whose arguments are not JSON ran no tool.
    assert hass.states.get(LIGHT).state == "off"
    # The same path then serves a normal request.
    assert await call(hass, main, text) == (
        "rephrased" if name == "announce rephrase" else "answer"
    )
    await leftovers.check(hass, [fake_openai])


async def test_retry_after_is_honoured_or_fails_fast(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> None:
    """A short Retry-After is waited out within the turn; a long one fails at once."""
    main, _ = await _text_entries(hass, fake_openai)
    text = _marked("Hello", "429")
    fake_openai.retry_after = "30"
    cell = await _timed(_ask(hass, main, text))
    assert (cell.outcome, cell.seconds < 3.0) == ("error", True)  # not after its 30 s
    assert fake_openai.faulted.count(("chat", "429")) == 1  # no retry that cannot fit
    # Passing rate limit: the second try, after the 1 s asked for, is answered.
    fake_openai.retry_after = "1"
    fake_openai.faulted.clear()
    original = fake_openai._fault

    def once(request: Any, stage: str, fallback: str | None) -> str | None:
        fault = original(request, stage, fallback)
        if fault == "429":
            fake_openai.healed.add("429")  # the limit passes after this request
        return fault

    fake_openai._fault = once  # type: ignore[method-assign]
    cell = await _timed(_ask(hass, main, text))
    assert cell.outcome == "answer"
    assert 1.0 <= cell.seconds < 3.0


# --- The voice pipeline ---------------------------------------------------------------

ANSWER = "Okay, the kitchen light is on now."  # about 1 s of the fake's speech
VOICE_STAGES = {"voice STT": "stt", "voice LLM": "chat", "voice TTS": "tts"}


@dataclass
class VoiceCell:
    """A room of its own entry, whose provider fails one way at one stage."""

    entry: MockConfigEntry
    room: Room
    heard: int = 0

    @classmethod
    async def start(cls, hass: HomeAssistant, base_url: str, number: int) -> VoiceCell:
        """Set up the entry and start its room on local audio."""
        data = entry_data(None, FakeOpenAI()) | {"openai_base_url": base_url}
        entry = await _entry(hass, data, f"01JFAULTVOICE{number:013d}")
        mic, speaker = LocalAudioInput(), LocalAudioOutput()
        session = await entry.runtime_data.voice.async_start_local_session(
            "kitchen", audio_input=mic, audio_output=speaker
        )
        return cls(entry, Room(mic, speaker, session))

    async def turn(
        self, bound: float, *, faulted: bool = True, say: str = "turn_on_kitchen_light"
    ) -> Cell:
        """Say "turn on the kitchen light"; return what came back, from the end of speech.

        The apology is the bundled clip (3-4 s); the fake's answer, ANSWER, about 1 s. A
        faulted turn's reply may be cut short, and followed by the apology.
        """
        spoken_end = await self.room.say(say)
        try:
            reply = await self.room.reply(self.heard + 1, wait=bound + 6)
        except TimeoutError:
            return Cell("silence", 0.0, f"nothing said within {bound + 6:g} s")
        self.heard += 1
        if 3.0 < reply.duration < 4.0:
            return Cell("apology", reply.started_at - spoken_end)
        if reply.duration > 0.8 and not faulted:
            return Cell("answer", reply.started_at - spoken_end, f"{reply.duration:.2f} s")
        try:
            later = await self.room.reply(self.heard + 1, wait=bound)
        except TimeoutError:
            outcome = "answer" if reply.duration > 0.8 else "cut short"
            return Cell(outcome, reply.started_at - spoken_end, f"{reply.duration:.2f} s")
        self.heard += 1
        if not 3.0 < later.duration < 4.0:  # it went on talking: the model answered
            return Cell(
                "answer" if reply.duration > 0.8 else "cut short", reply.started_at - spoken_end
            )
        outcome = "apology"
        return Cell(outcome, later.started_at - spoken_end, f"after {reply.duration:.2f} s")


# Home Assistant releases with no in-process voice set (2026.10: voice runs in the worker)
# would pair their own HTTP client with a voice stack they cannot install.
in_process_voice = pytest.mark.skipif(
    voice_requirements(ha_version) is None,
    reason=f"HA {ha_version} has no in-process voice set; its voice runs in the worker",
)


@in_process_voice
@pytest.mark.parametrize("name", list(VOICE_STAGES))
async def test_voice_paths(
    hass: HomeAssistant, kitchen_light: None, fake_openai: FakeOpenAI, name: str
) -> None:
    """A spoken turn in a room whose STT, LLM or TTS fails; the next turn is served."""
    stage, row = VOICE_STAGES[name], ROWS[name]
    fake_openai.default_transcript = "Turn on the kitchen light."
    fake_openai.default_reply = ANSWER
    leftovers = Leftovers.now()
    rooms = {
        fault: await VoiceCell.start(hass, fake_openai.fault_url(stage, fault), number)
        for number, fault in enumerate(row.faults())
    }
    cells: dict[str, Callable[[], Awaitable[str | Cell]]] = {
        fault: lambda cell=cell: cell.turn(row.bound) for fault, cell in rooms.items()
    }
    result = await _run_row(name, cells)
    _assert_row(name, result)
    # The provider recovers: every room answers its next turn (a refused port stays shut).
    fake_openai.healed.update(FAULTS)
    again = await asyncio.gather(
        *(
            cell.turn(row.bound, faulted=False)
            for fault, cell in rooms.items()
            if fault != "refused"
        )
    )
    assert {cell.outcome for cell in again} == {"answer"}, again
    for cell in rooms.values():
        cell.room.mic.close()
        assert await hass.config_entries.async_unload(cell.entry.entry_id)
    await leftovers.check(hass, [fake_openai])


# --- Realtime mode ---------------------------------------------------------------------

HANDSHAKE_FAULTS = {"refused", "hang", "401", "429", "500", "503"}


async def _realtime_cell(fault: str) -> Cell:
    """Serve a den on the engine alone, its realtime model failing with `fault`; then heal."""
    from livekit.plugins import silero

    from custom_components.shackleton.voice.engine import VoiceEngine

    from .test_realtime import ToolHome, _settings

    fake = FakeRealtime(fault=fault, reply_seconds=1.2, transcripts=["What time is it?"] * 4)
    runner, fake.url = await start_app(fake.app())
    base_url = f"{closed_port_url()}/v1" if fault == "refused" else fake.base_url
    home = ToolHome()
    engine = await VoiceEngine.async_create(home, _settings(base_url), vad=silero.VAD.load())
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    started = time.monotonic()
    try:
        room = await engine.async_start_session("den", audio_input=mic, audio_output=speaker)
        cell = VoiceCell(None, Room(mic, speaker, room))  # type: ignore[arg-type]
        if fault in HANDSHAKE_FAULTS:
            await asyncio.wait_for(home.gave_up.wait(), 10)
            result = Cell("restart", time.monotonic() - started)
            if fault == "refused":
                return result
        else:
            result = await cell.turn(ROWS["realtime"].bound, say="whats_the_time")
        # The model recovers: the room (restarted, if it had to) answers the next turn.
        fake.fault = None
        fake.released.set()
        await wait_for(lambda: fake.models, 15)
        again = await cell.turn(ROWS["realtime"].bound, faulted=False, say="whats_the_time")
        assert again.outcome == "answer", (fault, again)
        return result
    finally:
        mic.close()
        fake.released.set()
        await asyncio.wait_for(engine.aclose(), 10)
        await runner.cleanup()


async def test_realtime(hass: HomeAssistant, socket_enabled: None) -> None:
    """A realtime model failing at the handshake or in the answer; then a good turn."""
    name = "realtime"
    leftovers = Leftovers.now()
    cells: dict[str, Callable[[], Awaitable[str | Cell]]] = {
        fault: lambda fault=fault: _realtime_cell(fault) for fault in ROWS[name].faults()
    }
    result = await _run_row(name, cells)
    _assert_row(name, result)
    await leftovers.check(hass, [])


# --- The notebooks' online candidates ---------------------------------------------------

SUITE = Path(__file__).parents[1] / "notebooks" / "prompt_suite.yaml"


async def _candidate(base_url: str) -> str:
    """Run the prompt suite's first case with a candidate served at `base_url`."""
    suite = prompts.load_suite(SUITE)
    one = prompts.Suite(suite.entities, suite.cases[:1])
    [case] = await prompts.run_suite(
        one, [prompts.Candidate("online", "gpt-4.1-mini")], base_url=base_url, api_key="sk-test"
    )
    if case.error:
        return "case error"
    return "answer" if case.reply or case.calls else f"nothing: {case}"


async def test_notebook_candidates(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """A failing candidate costs its case (recorded as an error), never the whole run."""
    name = "notebook candidates"
    leftovers = Leftovers.now()
    cells: dict[str, Callable[[], Awaitable[str | Cell]]] = {
        fault: lambda fault=fault: _candidate(fake_openai.fault_url("chat", fault))
        for fault in ROWS[name].faults()
    }
    result = await _run_row(name, cells)
    _assert_row(name, result)
    assert await _candidate(fake_openai.base_url) == "answer"
    await leftovers.check(hass, [fake_openai])


# --- The config flow's key check ----------------------------------------------------


async def _flow(hass: HomeAssistant, base_url: str) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": "skip_livekit"}
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"voice_mode": "pipeline", "stt_provider": "openai", "llm_provider": "openai",
         "tts_provider": "openai"},
    )  # fmt: skip
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"openai_api_key": "sk-test", "openai_base_url": base_url,
         "stt_model": "gpt-4o-mini-transcribe", "llm_model": "gpt-4.1-mini",
         "tts_model": "gpt-4o-mini-tts"},
    )  # fmt: skip
    if result["type"] is FlowResultType.CREATE_ENTRY:
        return "entry"
    hass.config_entries.flow.async_abort(result["flow_id"])
    errors = result.get("errors") or {}
    known = {"provider_cannot_connect", "provider_error", "invalid_api_key",
             "provider_rate_limited"}  # fmt: skip
    return "form error" if set(errors.values()) <= known and errors else f"errors: {errors}"


async def test_config_flow_key_check(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """Checking a key against a failing provider ends in a form error, in bounded time."""
    name = "config flow"
    leftovers = Leftovers.now()
    cells: dict[str, Callable[[], Awaitable[str]]] = {
        fault: lambda fault=fault: _flow(hass, fake_openai.fault_url("models", fault))
        for fault in ROWS[name].faults()
    }
    result = await _run_row(name, cells)
    _assert_row(name, result)
    assert await _flow(hass, fake_openai.base_url) == "entry"
    await leftovers.check(hass, [fake_openai])


def test_readme_states_every_cell() -> None:
    """The README's table says, for every cell, what this matrix asserts."""
    from .fault_table import README, cells_in

    stated = cells_in(README.read_text())
    for name, row in ROWS.items():
        for fault in FAULTS:
            want = "n/a" if fault in row.skip else row.expected(fault)
            assert stated.get((fault, name)) == want, (fault, name, stated.get((fault, name)))
