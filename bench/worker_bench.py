"""Benchmark the external worker against the in-process engine: the cost of the WebSocket.

The same measure as `bench/voice_bench.py` (speech end → first reply audio, real silero,
the openai plugin over HTTP to the zero-latency fake), on turns that call a tool in a
real Home Assistant ("turn on the kitchen light" → intent__HassTurnOn → a reply), and the tool
call alone (HassTurnOn on the light, as the engine makes it, 100 times):

- in-process: Home Assistant and the engine share this process and its loop (the entry's
  own VoiceManager engine, `HassHome`);
- external: Home Assistant runs in another process (harness/ha_process.py) and the engine
  here is a `VoiceWorker`, reaching it over the WebSocket API (`RemoteHome`).

Run: `scripts/bench worker` (about 2 minutes).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from bench.voice_bench import pct, speech_end_to_first_audio
from custom_components.shackleton.home_bridge import HassHome
from custom_components.shackleton.voice.engine import VoiceEngine
from custom_components.shackleton.voice.home import Home
from custom_components.shackleton.voice.loading import import_heavy
from custom_components.shackleton.voice.worker import VoiceWorker, WorkerConfig
from harness.fakes import ChatReply, FakeOpenAI, start_app
from harness.ha_process import arguments, free_port, read_facts, start_home

TURNS = 20
CALLS = 100


async def tool_round_trips(home: Home) -> list[float]:
    """Return the seconds each of CALLS intent__HassTurnOn calls takes, as the engine makes them."""
    seconds = []
    for turn in range(CALLS):
        started = time.perf_counter()
        result = await home.call_tool(
            "kitchen", "intent__HassTurnOn", {"name": "Kitchen light"}, turn=turn
        )
        seconds.append(time.perf_counter() - started)
        assert "Kitchen light" in json.dumps(result), result
    return seconds


def _script(fake: FakeOpenAI) -> None:
    """Have the model call intent__HassTurnOn, then say so, in the next turn."""
    fake.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply(text="The kitchen light is on."),
    ]


async def in_process(fake: FakeOpenAI, workdir: Path) -> tuple[list[float], list[float]]:
    """Return the latencies with the engine inside Home Assistant's process."""
    hass, facts = await start_home(
        workdir / "in_process", free_port(), fake.base_url, placement="home_assistant"
    )
    try:
        entry = hass.config_entries.async_get_entry(facts["entry_id"])
        assert entry is not None
        assert await entry.runtime_data.voice.async_ready()
        engine = entry.runtime_data.voice.engine
        assert isinstance(engine, VoiceEngine), "the in-process engine did not start"
        latency, _ = await speech_end_to_first_audio(engine, fake, TURNS, lambda: _script(fake))
        assert hass.states.get("light.kitchen_light").state == "on"  # type: ignore[union-attr]
        return latency, await tool_round_trips(HassHome(hass, entry))
    finally:
        await hass.async_stop()


async def external(fake: FakeOpenAI, workdir: Path) -> tuple[list[float], list[float]]:
    """Return the latencies with the engine in a worker, Home Assistant in another process."""
    port = free_port()
    home = await asyncio.create_subprocess_exec(
        sys.executable,
        *arguments(workdir / "external", port, fake.base_url),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert home.stdout is not None
        while not (await home.stdout.readline()).startswith(b"READY"):
            pass
        facts = await asyncio.to_thread(read_facts, workdir / "external")
        worker = VoiceWorker(
            WorkerConfig(
                ha_url=f"http://127.0.0.1:{port}",
                token=facts["users"]["admin"]["token"],
                entry_id=facts["entry_id"],
                name="bench",
            )
        )
        await worker.async_start(60)
        assert worker.engine is not None
        try:
            latency, _ = await speech_end_to_first_audio(
                worker.engine, fake, TURNS, lambda: _script(fake)
            )
            calls = await tool_round_trips(worker.home)
        finally:
            await worker.aclose()
        return latency, calls
    finally:
        home.terminate()
        await home.wait()


async def main() -> None:
    """Run both placements and print a table and JSON."""
    fake = FakeOpenAI()
    fake.tts_seconds_per_char = 0.01
    runner, fake.url = await start_app(fake.app())
    await asyncio.to_thread(import_heavy)
    results: dict[str, list[float]] = {}
    calls: dict[str, list[float]] = {}
    try:
        # Made and removed off the loop: in-process, the loop is Home Assistant's.
        tmp = Path(await asyncio.to_thread(tempfile.mkdtemp))
        try:
            print(f"in-process, {TURNS} tool turns...", file=sys.stderr)
            results["in_process"], calls["in_process"] = await in_process(fake, tmp)
            print(f"external worker, {TURNS} tool turns...", file=sys.stderr)
            results["external"], calls["external"] = await external(fake, tmp)
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp)
    finally:
        await runner.cleanup()
    figures: dict[str, Any] = {}
    for name, values in results.items():
        figures[f"{name}_p50_ms"] = round(pct(values, 50) * 1000)
        figures[f"{name}_p95_ms"] = round(pct(values, 95) * 1000)
    inner, outer = results["in_process"], results["external"]
    figures["external_minus_in_process_p50_ms"] = round(
        (statistics.median(outer) - statistics.median(inner)) * 1000
    )
    figures["external_over_in_process_p50_ratio"] = round(
        statistics.median(outer) / statistics.median(inner), 3
    )
    for name, values in calls.items():
        figures[f"{name}_tool_call_p50_ms"] = round(pct(values, 50) * 1000, 2)
        figures[f"{name}_tool_call_p95_ms"] = round(pct(values, 95) * 1000, 2)
    figures["turns_each"] = TURNS
    figures["tool_calls_each"] = CALLS
    print("| figure | value |\n| --- | --- |")
    for key, value in figures.items():
        print(f"| {key} | {value} |")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
