"""Boot a real Home Assistant with Shackleton on offline defaults and show what a user sees.

Run with `scripts/demo`. Fully offline: faster-whisper tiny.en listens, Home Assistant's
own Assist agent acts, piper speaks. Exits non-zero if Shackleton does not load, if any
turn of the script fails, or if Shackleton blocks the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
import json
import logging
from pathlib import Path
import shutil
import sys
import tempfile
from typing import Any

from homeassistant import bootstrap, runner
from homeassistant.components.diagnostics import async_redact_data
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, EventStateChangedData, HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util

from custom_components.shackleton.const import DEFAULT_OPTIONS, DOMAIN, EVENT_TURN, REDACT_KEYS
from custom_components.shackleton.diagnostics import async_get_config_entry_diagnostics

REPO = Path(__file__).resolve().parent.parent

CONFIGURATION = """\
homeassistant:
  name: Demo Home
  time_zone: Europe/London
  unit_system: metric
  latitude: 51.5
  longitude: -0.12
logger:
  default: error
  logs:
    # Home Assistant's camera helper looks for libturbojpeg, which this demo never needs.
    homeassistant.components.camera.img_util: critical
    # The blocking-call detector: the demo collects its reports.
    homeassistant.util.loop: warning
input_boolean:
  kitchen_power:
  porch_power:
template:
  - light:
      - name: Kitchen light
        state: "{{ is_state('input_boolean.kitchen_power', 'on') }}"
        turn_on: {action: input_boolean.turn_on, target: {entity_id: input_boolean.kitchen_power}}
        turn_off: {action: input_boolean.turn_off, target: {entity_id: input_boolean.kitchen_power}}
      - name: Porch light
        state: "{{ is_state('input_boolean.porch_power', 'on') }}"
        turn_on: {action: input_boolean.turn_on, target: {entity_id: input_boolean.porch_power}}
        turn_off: {action: input_boolean.turn_off, target: {entity_id: input_boolean.porch_power}}
"""

# What a user has after choosing "No LiveKit server yet", offline speech ("On this Home
# Assistant") and Assist as the language model: no account, no model server, no network.
ENTRY_DATA = {
    "voice_mode": "pipeline",
    "stt_provider": "local",
    "stt_model": "tiny.en",
    "llm_provider": "home_assistant",
    "llm_model": "conversation.home_assistant",
    "tts_provider": "local",
    "tts_model": "en_US-joe-medium",
}
# The script: what is said into the kitchen, and what must change in the home.
SCRIPT: list[tuple[str, str, Callable[[HomeAssistant], bool]]] = [
    ("Turn on the kitchen light.", "HassTurnOn", lambda h: _state(h, KITCHEN) == "on"),
    ("Turn on the porch light.", "HassTurnOn", lambda h: _state(h, PORCH) == "on"),
    ("Turn off the kitchen light.", "HassTurnOff", lambda h: _state(h, KITCHEN) == "off"),
    ("Set a timer for two minutes.", "HassStartTimer", lambda h: True),
    ("Put eggs on my shopping list.", "HassListAddItem", lambda h: _state(h, SHOPPING) == "1"),
    ("What's on the calendar tomorrow?", "calendar_list_events", lambda h: True),
    ("Remind me to call mom at 5 pm.", "reminder_set", lambda h: _reminders(h) == ["call mom"]),
]
KITCHEN, PORCH, SHOPPING = "light.kitchen_light", "light.porch_light", "todo.shopping_list"
FAMILY = "calendar.family"
ANNOUNCEMENT = "Dinner is ready."
WAV_DIR = REPO / "demo" / "output"


def _reminders(hass: HomeAssistant) -> list[str]:
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    return [reminder.text for reminder in entry.runtime_data.reminders.reminders.values()]


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return state.state if state else None


class _BlockingCalls(logging.Handler):
    """Collects Home Assistant's blocking-call reports."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "blocking call" in record.getMessage():
            self.reports.append(record.getMessage())


def _print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(left) for left, _ in rows)
    for left, right in rows:
        print(f"  {left.ljust(width)}  {right}")


async def _run(config_dir: Path) -> int:
    (config_dir / "configuration.yaml").write_text(CONFIGURATION)
    (config_dir / "custom_components").mkdir()
    (config_dir / "custom_components" / DOMAIN).symlink_to(REPO / "custom_components" / DOMAIN)

    hass: HomeAssistant | None = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(config_dir=str(config_dir), skip_pip=True)
    )
    if hass is None:
        print("Home Assistant did not start", file=sys.stderr)
        return 1
    blocking = _BlockingCalls()
    logging.getLogger("homeassistant.util.loop").addHandler(blocking)
    await hass.async_start()
    try:
        todo = {"todo_list_name": "Shopping list", "storage_key": "shopping"}
        await _add_entry(hass, "local_todo", "Shopping list", todo)
        async_expose_entity(hass, "conversation", SHOPPING, True)
        family = {"calendar_name": "Family", "storage_key": "family"}
        await _add_entry(hass, "local_calendar", "Family", family)
        async_expose_entity(hass, "conversation", FAMILY, True)
        tomorrow = dt_util.now().date() + timedelta(days=1)
        await hass.services.async_call(
            "calendar",
            "create_event",
            {
                "entity_id": FAMILY,
                "summary": "Dentist",
                "start_date_time": f"{tomorrow} 10:00:00",
                "end_date_time": f"{tomorrow} 11:00:00",
            },
            blocking=True,
        )
        entry = ConfigEntry(
            version=1,
            minor_version=1,
            domain=DOMAIN,
            title="Shackleton",
            data=ENTRY_DATA,
            # The demo prints what was said: transcripts in events are on here.
            options={
                **DEFAULT_OPTIONS,
                "language": hass.config.language,
                "transcripts_in_events": True,
            },
            source="user",
            unique_id=None,
            discovery_keys={},
            subentries_data=None,
        )
        await hass.config_entries.async_add(entry)
        await hass.async_block_till_done()
        print(
            f"Home Assistant {hass.config.as_dict()['version']} is up: {hass.config.location_name}"
        )
        print(f"Shackleton entry: {entry.state.value}")
        if entry.state is not ConfigEntryState.LOADED:
            return 1
        engine = await entry.runtime_data.voice.async_ready()
        runtime = entry.runtime_data.runtime
        print(f"Voice engine: {'ready' if engine else 'unavailable'}", end="")
        if engine:
            details = runtime.voice_details
            loop_ms = details["plugin_import_seconds"] * 1000
            print(
                f" (voice packages imported in {details['import_seconds']:.1f} s in the executor;"
                f" {loop_ms:.0f} ms of plugin registration on the loop)"
            )
        else:
            print(f" ({runtime.voice_error})")

        await _show(hass, entry)
        spoken = engine is not None and await _converse(hass, entry)
        ok = await hass.config_entries.async_unload(entry.entry_id)
        print(f"\nUnloaded cleanly: {ok}")
        ours = [report for report in blocking.reports if DOMAIN in report or "livekit" in report]
        total = len(blocking.reports)
        print(f"Blocking calls on the event loop: {total} ({len(ours)} from Shackleton)")
        for report in blocking.reports:
            print("  " + report.splitlines()[0][:300])
        return 0 if ok and spoken and not ours else 1
    finally:
        await hass.async_stop()


async def _add_entry(hass: HomeAssistant, domain: str, title: str, data: dict[str, Any]) -> None:
    entry = ConfigEntry(
        version=1, minor_version=1, domain=domain, title=title, data=data, options={},
        source="user", unique_id=None, discovery_keys={}, subentries_data=None,
    )  # fmt: skip
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()


async def _converse(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Speak the script into a kitchen session; print what happened; True if all passed."""
    from custom_components.shackleton.voice.local_audio import (
        LocalAudioInput,
        LocalAudioOutput,
    )
    from custom_components.shackleton.voice.local_models import PiperTTS

    loop = asyncio.get_running_loop()
    turns: list[dict[str, Any]] = []
    changes: list[str] = []
    arrived = asyncio.Condition()

    async def on_turn(event: Event[dict[str, Any]]) -> None:
        async with arrived:
            turns.append(dict(event.data))
            arrived.notify_all()

    hass.bus.async_listen(EVENT_TURN, on_turn)

    def changed(event: Event[EventStateChangedData]) -> None:
        old, new = event.data["old_state"], event.data["new_state"]
        if new is not None and event.data["entity_id"].split(".")[0] in ("light", "todo"):
            changes.append(f"{new.entity_id}: {old.state if old else '-'} -> {new.state}")

    hass.bus.async_listen(EVENT_STATE_CHANGED, changed)
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await entry.runtime_data.voice.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    voice = PiperTTS()  # the user's voice: piper again, so the run is deterministic
    await loop.run_in_executor(None, WAV_DIR.mkdir, 0o755, True, True)
    passed = 0
    print("\nTalking to Shackleton in the kitchen (piper speaks, tiny.en listens, Assist acts;")
    print("calendar and reminder sentences are Shackleton's own, for Assist)")
    for number, (text, intent, check) in enumerate(SCRIPT, 1):
        pcm, rate = await loop.run_in_executor(None, voice.synthesize_pcm, text)
        changes.clear()
        await mic.play_pcm(pcm, rate)
        # The turn ends when its answer is in the chat; its reply is then the last
        # segment the speaker played (LiveKit may pause and resume it as two).
        async with arrived:
            await asyncio.wait_for(arrived.wait_for(lambda n=number: len(turns) >= n), 30)
        turn = turns[number - 1]
        last = max(1, len(speaker.segments))
        segment = await asyncio.wait_for(speaker.wait_for_segment(last), 30)
        ok = turn["error"] is None and intent in turn["tools"] and check(hass)
        passed += ok
        wav = WAV_DIR / f"{number:02d}_reply.wav"
        await loop.run_in_executor(None, segment.write_wav, wav)
        _print_turn(f"{number}. you said      {text}", turn, changes, wav, ok=ok)
    print(f"\nAnnouncement: {ANNOUNCEMENT}")
    before = len(speaker.segments)
    # What an automation does: the action, with a chime first, into every active room.
    response = await hass.services.async_call(
        DOMAIN,
        "announce",
        {"message": ANNOUNCEMENT, "chime": True},
        blocking=True,
        return_response=True,
    )
    print(f"   shackleton.announce -> {json.dumps(response)}")
    await asyncio.wait_for(speaker.wait_for_segment(before + 1), 30)  # the chime
    announced = await asyncio.wait_for(speaker.wait_for_segment(before + 2), 30)
    wav = WAV_DIR / "announcement.wav"
    await loop.run_in_executor(None, announced.write_wav, wav)
    print(f"   said in the kitchen: {announced.duration:.1f} s of audio ({wav.relative_to(REPO)})")
    mic.close()
    _print_latency(turns)
    print(f"\nTurns passed: {passed}/{len(SCRIPT)}")
    return passed == len(SCRIPT) and announced.duration > 0.5


def _print_turn(
    said: str, turn: dict[str, Any], changes: list[str], wav: Path, *, ok: bool
) -> None:
    print(f"\n{said}")
    print(f"   it heard      {turn['user_text']}")
    print(f"   intents/tools {', '.join(turn['tools']) or '-'}")
    print(f"   home changes  {'; '.join(changes) or '-'}")
    print(f"   it replied    {turn['agent_text']}  ({wav.relative_to(REPO)})")
    print(f"   speech end -> first audio {turn['end_to_end_ms']} ms   {'OK' if ok else 'FAILED'}")


def _print_latency(turns: list[dict[str, Any]]) -> None:
    stages = [
        ("end of speech -> turn committed", "end_of_utterance_delay_ms"),
        ("speech-to-text", "transcription_delay_ms"),
        ("Assist (first text)", "llm_ttft_ms"),
        ("text-to-speech (first audio)", "tts_ttfb_ms"),
        ("speech end -> first audio", "end_to_end_ms"),
    ]
    print("\nLatency over the script (ms)")
    rows = [("stage", "p50    p95")]
    for label, key in stages:
        values = sorted(turn[key] for turn in turns if turn.get(key) is not None)
        if values:
            p50 = values[len(values) // 2]
            p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
            rows.append((label, f"{p50:<6} {p95}"))
    _print_table(rows)


async def _main() -> int:
    config_dir = Path(tempfile.mkdtemp(prefix="shackleton-demo-"))
    try:
        return await _run(config_dir)
    finally:
        # Off the loop thread: Home Assistant's blocking-call guard stays armed on it.
        await asyncio.to_thread(shutil.rmtree, config_dir)


async def _show(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Print the entities, repairs and diagnostics, and use the switch."""
    print("\nEntities")
    registry = er.async_get(hass)
    rows = []
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        state = hass.states.get(entity.entity_id)
        rows.append((entity.entity_id, state.state if state else "-"))
    _print_table(sorted(rows))

    print("\nRepairs")
    texts = await async_get_translations(hass, "en", "issues", [DOMAIN])
    for issue in ir.async_get(hass).issues.values():
        if issue.domain != DOMAIN:
            continue
        prefix = f"component.{DOMAIN}.issues.{issue.translation_key}"
        title = texts[f"{prefix}.title"].format(**(issue.translation_placeholders or {}))
        print(f"  [{issue.severity.value}] {title}")
        print("    " + texts[f"{prefix}.description"].split("\n")[0])

    print("\nDiagnostics (redacted)")
    diagnostics: dict[str, Any] = await async_get_config_entry_diagnostics(hass, entry)
    print(json.dumps(async_redact_data(diagnostics["runtime"], REDACT_KEYS), indent=2))

    print("\nTurning the voice assistant off and on through the switch")
    switch = "switch.shackleton_voice_assistant"
    for service in ("turn_off", "turn_on"):
        await hass.services.async_call("switch", service, {"entity_id": switch}, blocking=True)
        print(f"  {service}: {switch} is {hass.states.get(switch).state}")  # type: ignore[union-attr]


def main() -> int:
    """Run the demo in a throwaway configuration directory."""
    return asyncio.run(_main())


if __name__ == "__main__":
    sys.exit(main())
