"""Soak: 100 turns in a row, a random third of them faulted, through voice and text.

Every faulted turn gets its apology (voice, the Assist dialog) or a translated error
(`shackleton.ask`); every other turn its answer; nothing escapes as an unhandled
exception; and what the process holds (tasks, threads, open sockets, traced memory)
does not grow between the 20th and the 100th turn. The figures are printed for the
closing note and written to SHACKLETON_SOAK_FIGURES when set.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta
import gc
import json
import os
from pathlib import Path
import random
import threading
import tracemalloc
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)

from harness.fakes import ChatReply, FakeOpenAI

from .conftest import Room, deprecation_reports
from .test_fault_matrix import ANSWER, _ask, _process

pytestmark = pytest.mark.slow

TURNS = 100
# The faults a turn may get (a closed port needs another base URL: the matrix covers it).
VOICE_FAULTS = {
    "stt": ["hang", "stall", "cut", "401", "429", "500", "503", "bad_json"],
    "chat": ["hang", "stall", "drip", "cut", "401", "429", "500", "503", "sse_error",
             "bad_json", "bad_sse", "empty"],
    "tts": ["hang", "stall", "cut", "429", "500", "503", "empty"],
}  # fmt: skip
TEXT_FAULTS = VOICE_FAULTS["chat"]


@dataclass
class Holdings:
    """What the process holds after a turn."""

    turn: int
    tasks: int
    threads: int
    sockets: int
    memory_kib: int


def _holdings(turn: int) -> Holdings:
    gc.collect()
    sockets = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            sockets += str(fd.readlink()).startswith("socket:")
        except OSError:
            continue  # closed while listed
    current, _peak = tracemalloc.get_traced_memory()
    return Holdings(
        turn, len(asyncio.all_tasks()), threading.active_count(), sockets, current // 1024
    )


async def _voice_turn(room: Room, fake: FakeOpenAI, fault: tuple[str, str] | None) -> str:
    fake.stt_fault = fake.tts_fault = None
    fake.healed.clear()
    fake.chat_script.clear()
    if fault is not None:
        stage, name = fault
        if stage == "stt":
            fake.stt_fault = name
        elif stage == "tts":
            fake.tts_fault = name
        else:
            fake.chat_script = [ChatReply(ANSWER, fault=name)] * 2  # the retry faults too
    heard = len(room.speaker.segments)
    await room.say("turn_on_kitchen_light")
    # The reply, or a reply cut short and then the apology.
    reply = await room.reply(heard + 1, wait=45)
    if 3.0 < reply.duration < 4.0:
        outcome = "apology"
    elif fault is None:
        outcome = "answer" if reply.duration > 0.8 else "cut short"
    else:
        try:
            later = await room.reply(heard + 2, wait=30)
        except TimeoutError:
            later = None
        outcome = "apology" if later and 3.0 < later.duration < 4.0 else "no apology"
    # Let the room settle (a restarted session, the apology's end) before the next turn.
    await asyncio.sleep(0.3)
    fake.released.set()
    fake.released.clear()
    return outcome


async def test_soak_voice_and_text(
    hass: HomeAssistant,
    room: Room,
    loaded_entry: MockConfigEntry,
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
) -> None:
    """100 turns, a third faulted at random: each answered as promised, nothing grows."""
    rng = random.Random(19)  # noqa: S311 - a reproducible run, not a secret
    fake_openai.default_transcript = "Turn on the kitchen light."
    fake_openai.default_reply = ANSWER
    # The breaker may open on three faults in a row: let it try again at once.
    room.session.engine.breaker_retry_after = 0
    unhandled: list[Any] = []
    loop = asyncio.get_running_loop()
    default_handler = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        unhandled.append(context.get("exception") or context.get("message"))
        if default_handler is not None:
            default_handler(loop, context)

    loop.set_exception_handler(handler)
    tracemalloc.start()
    faulted = set(rng.sample(range(1, TURNS + 1), TURNS // 3))
    outcomes: Counter[str] = Counter()
    wrong: list[tuple[int, str, Any, str]] = []
    figures: list[Holdings] = []
    snapshots: list[tracemalloc.Snapshot] = []
    trace: list[str] = []
    errors: list[str] = []
    deprecations: list[str] = []
    try:
        for turn in range(1, TURNS + 1):
            path = rng.choice(["voice", "voice", "process", "ask"])
            fault: tuple[str, str] | None = None
            if turn in faulted:
                stage = "chat" if path != "voice" else rng.choice(list(VOICE_FAULTS))
                fault = (stage, rng.choice(VOICE_FAULTS[stage]))
            trace.append(f"{turn} {path} {fault} segments={len(room.speaker.segments)}")
            if path == "voice":
                outcome = await _voice_turn(room, fake_openai, fault)
            else:
                call = _process if path == "process" else _ask
                text = "Turn on the kitchen light"
                if fault is not None:
                    text += f" [fault:{fault[1]}]"
                outcome = await call(hass, loaded_entry, text)
            if fault is None:
                expected = "answer"
            elif path == "ask":
                expected = "error"
            else:
                expected = "apology"
            outcomes[f"{path} {'faulted' if fault else 'clean'}: {outcome}"] += 1
            if outcome != expected:
                wrong.append((turn, path, fault, outcome))
            if turn in (20, TURNS):
                # HA forgets an idle conversation after 5 minutes: let it, as time would.
                async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=6))
                await hass.async_block_till_done()
                await asyncio.sleep(1)
                # What the test itself keeps goes: the log records (and the tracebacks
                # in them), the fake's request log, the speaker's recordings.
                # Words only: a record's traceback would keep whole sessions alive.
                errors += [
                    r.getMessage()
                    for r in caplog.records
                    if r.levelname == "ERROR" and "shackleton" in r.name
                ]
                deprecations += deprecation_reports(caplog.records)
                caplog.clear()
                logs = request.config.pluginmanager.get_plugin("logging-plugin")
                logs.report_handler.reset()  # the report's copy of the same records
                fake_openai.chat_requests.clear()
                fake_openai.stt_audio_seconds.clear()
                fake_openai.tts_inputs.clear()
                fake_openai.faulted.clear()
                room.speaker.segments.clear()
                figures.append(_holdings(turn))
                snapshots.append(tracemalloc.take_snapshot())
    finally:
        print("\n".join(trace[-6:]))  # noqa: T201 - the last turns, should one hang
        tracemalloc.stop()
        loop.set_exception_handler(default_handler)
    report = {
        "turns": TURNS,
        "faulted": len(faulted),
        "outcomes": dict(sorted(outcomes.items())),
        "holdings": [asdict(figure) for figure in figures],
        "unhandled": [repr(item) for item in unhandled],
        # Where the traced memory grew most between the two counts, should it grow.
        "growth": [str(stat) for stat in snapshots[-1].compare_to(snapshots[0], "lineno")[:8]]
        if len(snapshots) == 2
        else [],
    }
    print(json.dumps(report, indent=1))  # noqa: T201 - the figures for the closing note
    if target := os.environ.get("SHACKLETON_SOAK_FIGURES"):
        Path(target).write_text(json.dumps(report, indent=1) + "\n")
    assert not wrong, wrong
    assert not unhandled, unhandled
    assert not errors, errors
    assert not deprecations, deprecations
    at20, at100 = figures
    assert at100.tasks <= at20.tasks + 3, figures
    assert at100.threads <= at20.threads + 2, figures
    assert at100.sockets <= at20.sockets + 4, figures
    # Python's own heap (what tracemalloc sees): room history, chat logs, caches.
    assert at100.memory_kib - at20.memory_kib < 3 * 1024, figures
