"""Fixtures for Shackleton's tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
import importlib
import logging
from pathlib import Path
import signal
import time
from typing import Any

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import STATE_OFF, __version__ as ha_version
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import frame, llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.shackleton.const import (
    CONF_LANGUAGE,
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_URL,
    CONF_VOICE_MODE,
    DEFAULT_ASSISTANT,
    DEFAULT_OPTIONS,
    DOMAIN,
    SUBENTRY_ASSISTANT,
)
from custom_components.shackleton.home_bridge import make_llm_context
from custom_components.shackleton.voice.engine import RoomSession
from custom_components.shackleton.voice.loading import HEAVY_MODULES, PLUGIN_MODULES
from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    Segment,
    read_wav,
)
from harness.fakes import FakeLiveKit, FakeOllama, FakeOpenAI, start_app
from harness.livekit_server import API_KEY, API_SECRET, LiveKitProcess

LIGHT = "light.kitchen_light"
# The release the snapshots (tests/snapshots, notebooks/data/tools.json) were recorded on:
# the newest lane. HA's own serialisation and tool set differ in the minimum lane.
RECORDED_ON = "2026.11.0"
on_recorded_release = pytest.mark.skipif(
    ha_version != RECORDED_ON, reason=f"recorded on HA {RECORDED_ON}; this is {ha_version}"
)
AUDIO = Path(__file__).parent / "fixtures" / "audio"

# Import the voice stack once, before any hass exists. Each test's hass interrupts its
# executor threads when it stops, and an import cut off half-way leaves the openai
# package broken for every later test. (A real HA imports once and keeps running.)
for _module in (*HEAVY_MODULES, *PLUGIN_MODULES):
    importlib.import_module(_module)


def deprecation_reports(records: list[logging.LogRecord]) -> list[str]:
    """Return HA's reports of a deprecated API used by Shackleton, among `records`.

    HA does not warn through Python's warnings for most of its API: its frame helper
    (`report_usage`) and deprecation helpers log a line naming the integration.
    """
    found = []
    for record in records:
        message = record.getMessage()
        if record.name.startswith("homeassistant.") and (
            ("Detected that custom integration 'shackleton'" in message)
            or ("deprecated" in message and " from shackleton." in message)
        ):
            found.append(message)
    return found


@pytest.fixture(autouse=True)
def no_deprecated_api(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail a test in which Shackleton uses an API that Home Assistant reports as deprecated."""
    # HA logs each report once per process: forget earlier tests' so each test sees its own.
    frame._REPORTED_INTEGRATIONS.clear()
    yield
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    reports = deprecation_reports(records)
    assert not reports, "Shackleton used a deprecated Home Assistant API:\n" + "\n".join(reports)


class TerminatedError(RuntimeError):
    """The test process got a SIGTERM (see `sigterm_fails_the_test`)."""


@pytest.fixture(autouse=True, scope="session")
def sigterm_fails_the_test() -> Iterator[None]:
    """Turn the first SIGTERM into the running test's failure, not the end of the run.

    LiveKit's native library ends its own process with a SIGTERM when it panics
    (`livekit/rtc/_ffi_client.py`, after printing "FFI Panic: ..." to stderr). Killed,
    the run says nothing of which test or why; failed, the test shows its captured
    stderr. A second SIGTERM ends the run as usual.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise TerminatedError(
            "SIGTERM: LiveKit's native library sends it when it panics "
            "(see 'FFI Panic' in the captured stderr)"
        )

    signal.signal(signal.SIGTERM, handler)
    yield
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load the integration from custom_components."""


@pytest.fixture(autouse=True)
async def closed_async_generators(hass: HomeAssistant) -> AsyncIterator[None]:
    """Let the loop finish closing the async generators a test dropped (within 2 s).

    openai's stream breaks out of its SSE generators at `[DONE]` (`AsyncStream.__stream__`
    in `openai/_streaming.py`) and leaves them to the loop's finalizer, whose `aclose`
    tasks each drop the next generator in the chain. A test that ends right after a
    streamed reply would otherwise leave them to HA's own check for lingering tasks.
    """
    yield
    for _ in range(200):
        # A dropped generator's task is made one loop iteration after it is dropped.
        for _ in range(3):
            await asyncio.sleep(0)
        closing = [
            task
            for task in asyncio.all_tasks()
            if not task.done() and type(task.get_coro()).__name__ == "async_generator_athrow"
        ]
        if not closing:
            break
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
async def core_integration(hass: HomeAssistant) -> None:
    """Set up HA's core integration, as every real instance has (exposure lives there)."""
    assert await async_setup_component(hass, "homeassistant", {})


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Serialize HA objects (registry entries, states) without volatile ids and times."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
async def fake_livekit(socket_enabled: None) -> AsyncIterator[FakeLiveKit]:
    """Serve a fake LiveKit twirp API on 127.0.0.1."""
    server = FakeLiveKit()
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


@pytest.fixture(scope="session")
def livekit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitProcess]:
    """Start one real LiveKit server for the session (tests give their rooms own names)."""
    server = LiveKitProcess(tmp_path_factory.mktemp("livekit"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def livekit(livekit_server: LiveKitProcess, socket_enabled: None) -> LiveKitProcess:
    """Return the session's LiveKit server, running (started again if a test stopped it)."""
    if livekit_server.process is None or livekit_server.process.poll() is not None:
        livekit_server.start()
    return livekit_server


def livekit_data(server: LiveKitProcess, fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return entry data for a pipeline on the fake OpenAI server and the real LiveKit one."""
    return entry_data(None, fake_openai) | {
        CONF_LIVEKIT_URL: server.url,
        CONF_LIVEKIT_API_KEY: API_KEY,
        CONF_LIVEKIT_API_SECRET: API_SECRET,
    }


@pytest.fixture
async def fake_openai(socket_enabled: None) -> AsyncIterator[FakeOpenAI]:
    """Serve a fake OpenAI-compatible API on 127.0.0.1."""
    server = FakeOpenAI()
    runner, server.url = await start_app(server.app())
    yield server
    server.released.set()
    await runner.cleanup()


@pytest.fixture
async def fake_ollama(socket_enabled: None) -> AsyncIterator[FakeOllama]:
    """Serve a fake Ollama chat API on 127.0.0.1."""
    server = FakeOllama()
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


def entry_data(fake_livekit: FakeLiveKit | None, fake_openai: FakeOpenAI) -> dict[str, Any]:
    """Return entry data for a pipeline on OpenAI, with or without a LiveKit server."""
    data: dict[str, Any] = {
        CONF_VOICE_MODE: "pipeline",
        "stt_provider": "openai",
        "llm_provider": "openai",
        "tts_provider": "openai",
        "openai_api_key": "sk-test",
        "openai_base_url": fake_openai.base_url,
        "stt_model": "gpt-4o-mini-transcribe",
        "llm_model": "gpt-4.1-mini",
        "tts_model": "gpt-4o-mini-tts",
    }
    if fake_livekit is not None:
        key, secret = next(iter(fake_livekit.keys.items()))
        data |= {
            CONF_LIVEKIT_URL: fake_livekit.url,
            CONF_LIVEKIT_API_KEY: key,
            CONF_LIVEKIT_API_SECRET: secret,
        }
    return data


@pytest.fixture
def mock_config_entry(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> MockConfigEntry:
    """Return a (not yet added) entry pointed at the fake servers."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Shackleton (127.0.0.1)",
        unique_id=f"{fake_livekit.url}|devkey",
        data=entry_data(fake_livekit, fake_openai),
        options=DEFAULT_OPTIONS,
        entry_id="01JSHACKLETON0000000000000",
        version=2,
        minor_version=1,
        subentries_data=[first_assistant()],
    )


# The entry's first assistant: named like the entry, as migrated entries' are.
ASSISTANT_ID = "01JSHACKLETONASSISTANT0000"


def first_assistant(**changes: Any) -> ConfigSubentryData:
    """Return the test entry's first assistant (the defaults, in English)."""
    return ConfigSubentryData(
        data={**DEFAULT_ASSISTANT, CONF_LANGUAGE: "en", **changes},
        subentry_id=ASSISTANT_ID,
        subentry_type=SUBENTRY_ASSISTANT,
        title="Shackleton (127.0.0.1)",
        unique_id=None,
    )


def update_assistant(hass: HomeAssistant, entry: MockConfigEntry, **changes: Any) -> None:
    """Change the entry's first assistant as its flow would (the entry then reloads)."""
    subentry = entry.subentries[ASSISTANT_ID]
    hass.config_entries.async_update_subentry(entry, subentry, data={**subentry.data, **changes})


@pytest.fixture
async def loaded_entry(hass: HomeAssistant, mock_config_entry: MockConfigEntry) -> MockConfigEntry:
    """Add the entry and set it up."""
    mock_config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(mock_config_entry.entry_id)
    # The voice engine loads in the background.
    await hass.async_block_till_done(wait_background_tasks=True)
    return mock_config_entry


async def add_template(hass: HomeAssistant, domain: str, name: str, **options: Any) -> None:
    """Add a template entity as a user does in the UI (a template helper config entry)."""
    entry = MockConfigEntry(
        domain="template", title=name, options={"template_type": domain, "name": name, **options}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def switched(boolean: str) -> dict[str, Any]:
    """Return a template light's state and actions, backed by `input_boolean.<boolean>`."""
    target = {"entity_id": f"input_boolean.{boolean}"}
    return {
        "state": f"{{{{ is_state('input_boolean.{boolean}', 'on') }}}}",
        "turn_on": [{"action": "input_boolean.turn_on", "target": target}],
        "turn_off": [{"action": "input_boolean.turn_off", "target": target}],
    }


async def setup_front_door(hass: HomeAssistant) -> None:
    """Set up a template lock "Front door" on input_boolean.door_locked (set up already)."""
    target = {"entity_id": "input_boolean.door_locked"}
    await add_template(
        hass,
        "lock",
        "Front door",
        state="{{ is_state('input_boolean.door_locked', 'on') }}",
        lock=[{"action": "input_boolean.turn_on", "target": target}],
        unlock=[{"action": "input_boolean.turn_off", "target": target}],
    )


async def wait_for(predicate: Any, seconds: float = 10.0) -> None:
    """Wait until `predicate()` is true: LiveKit finishes turns on tasks HA does not track."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


async def call_tool(
    hass: HomeAssistant, entry: MockConfigEntry, tool: str, user: str | None = None, **args: Any
) -> Any:
    """Call one of the entry's Shackleton API tools as a conversation agent would."""
    llm_context = make_llm_context(hass, "en", None, Context(user_id=user))
    api = await llm.async_get_api(hass, f"shackleton-{entry.entry_id}", llm_context)
    result = await api.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=args))
    assert isinstance(result, llm.ToolResult)
    return result.data


@pytest.fixture
async def kitchen_light(hass: HomeAssistant) -> None:
    """Set up a real template light, backed by an input_boolean, exposed to Assist.

    input_boolean is set up once per hass: the front door's bolt is declared here too.
    """
    booleans = {"kitchen_power": {}, "door_locked": {"initial": True}}
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": booleans})
    await add_template(hass, "light", "Kitchen light", **switched("kitchen_power"))
    await hass.async_block_till_done()
    assert hass.states.get(LIGHT).state == STATE_OFF


@dataclass
class Room:
    """A room with a local microphone and speaker, served by the entry's engine."""

    mic: LocalAudioInput
    speaker: LocalAudioOutput
    session: RoomSession

    async def say(self, name: str) -> float:
        """Speak a fixture utterance; return the monotonic time its audio ended."""
        pcm, rate = read_wav(AUDIO / f"{name}.wav")
        return await self.mic.play_pcm(pcm, rate)

    async def reply(self, number: int = 1, wait: float = 20) -> Segment:
        """Wait for the assistant's `number`th spoken segment to finish."""
        return await asyncio.wait_for(self.speaker.wait_for_segment(number), wait)


@pytest.fixture
async def room(
    hass: HomeAssistant, kitchen_light: None, loaded_entry: MockConfigEntry
) -> AsyncIterator[Room]:
    """Start a kitchen session on local audio; unload the entry afterwards."""
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    manager = loaded_entry.runtime_data.voice
    assert manager is not None
    session = await manager.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    yield Room(mic, speaker, session)
    mic.close()
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await hass.async_block_till_done()
