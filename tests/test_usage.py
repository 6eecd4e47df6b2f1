"""Costs in sight: the usage sensors count what the providers themselves said they billed.

Every figure asserted here comes from the fake servers' own `usage` payloads (or the
audio and text they received), never from a constant: the chat completion's final
chunk, the realtime `response.done`, the seconds of audio sent to transcription and
the text sent to speech.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import conversation, persistent_notification
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Context, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from livekit.agents.metrics import LLMMetrics
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.shackleton.config_flow import OPTION_SECTIONS
from custom_components.shackleton.const import (
    CONF_PRICE_LLM_INPUT,
    CONF_PRICE_LLM_OUTPUT,
    CONF_PRICE_REALTIME_AUDIO_INPUT,
    CONF_PRICE_REALTIME_AUDIO_OUTPUT,
    CONF_PRICE_STT_MINUTE,
    CONF_PRICE_TTS_CHARACTERS,
    CONF_VOICE_MODE,
    CONF_WORKER,
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_TURN,
    WORKER_EXTERNAL,
)
from custom_components.shackleton.usage import COUNTERS, Counter
from custom_components.shackleton.voice import protocol
from custom_components.shackleton.voice.ha_link import HomeLink, LinkConfig, RemoteHome
from custom_components.shackleton.voice.home import Usage
from custom_components.shackleton.voice.local_audio import (
    LocalAudioInput,
    LocalAudioOutput,
    read_wav,
)
from harness.fakes import (
    ChatReply,
    FakeLiveKit,
    FakeOpenAI,
    FakeRealtime,
    RealtimeTurn,
    start_app,
)

from .conftest import LIGHT, Room, entry_data, first_assistant, wait_for
from .readme_examples import readme_example
from .test_worker_api import Worker
from .test_worker_process import Home as HomeProcess, start_local_worker

AUDIO = Path(__file__).parent / "fixtures" / "audio"
ENTRY_ID = "01JSHACKLETONUSAGE00000000"
PRICES = {
    CONF_PRICE_LLM_INPUT: 0.4,
    CONF_PRICE_LLM_OUTPUT: 1.6,
    CONF_PRICE_STT_MINUTE: 0.003,
    CONF_PRICE_TTS_CHARACTERS: 15.0,
}
# The seconds of audio LiveKit says it sent to transcription against what the fake
# server measured in the WAV it received: the same frames, so within a few milliseconds.
STT_TOLERANCE = 0.01


def _entry(
    data: dict[str, Any], *, title: str = "Shackleton", options: dict[str, Any] | None = None
) -> MockConfigEntry:
    """Return an entry (its first assistant in English) with `options` over the defaults."""
    return MockConfigEntry(
        domain=DOMAIN,
        title=title,
        data=data,
        options={**DEFAULT_OPTIONS, **(options or {})},
        entry_id=ENTRY_ID,
        version=2,
        minor_version=1,
        subentries_data=[first_assistant()],
    )


@pytest.fixture
def mock_config_entry(mock_config_entry: MockConfigEntry) -> MockConfigEntry:
    """Return the conftest's pipeline entry, with prices for every stage it uses."""
    return _entry(dict(mock_config_entry.data), title=mock_config_entry.title, options=PRICES)


def _entity_id(hass: HomeAssistant, key: str, entry_id: str = ENTRY_ID) -> str:
    entity_id = er.async_get(hass).async_get_entity_id("sensor", DOMAIN, f"{entry_id}_{key}")
    assert entity_id is not None, key
    return entity_id


def _value(hass: HomeAssistant, key: str, entry_id: str = ENTRY_ID) -> float:
    state = hass.states.get(_entity_id(hass, key, entry_id))
    assert state is not None, key
    return float(state.state)


def _chat_figures(fake: FakeOpenAI) -> dict[str, float]:
    """Return the language model's tokens as the fake server billed them."""
    return {
        "openai_llm_input_tokens_month": sum(u["prompt_tokens"] for u in fake.chat_usage),
        "openai_llm_output_tokens_month": sum(u["completion_tokens"] for u in fake.chat_usage),
    }


async def _settle(
    hass: HomeAssistant, expected: dict[str, float], entry_id: str = ENTRY_ID
) -> None:
    """Wait (bounded) for LiveKit's metrics to land, then compare exactly."""
    # On a timeout, the assertion below says what differs.
    with contextlib.suppress(TimeoutError):
        await wait_for(
            lambda: all(_value(hass, k, entry_id) == pytest.approx(v) for k, v in expected.items()),
            5,
        )
    assert {k: _value(hass, k, entry_id) for k in expected} == pytest.approx(expected)


async def _ask(hass: HomeAssistant, entry: MockConfigEntry, text: str) -> str:
    [agent] = entry.runtime_data.agents.values()
    result = await conversation.async_converse(
        hass, text=text, conversation_id=None, context=Context(), agent_id=agent.entity_id
    )
    return str(result.response.speech["plain"]["speech"])


async def test_voice_and_text_usage_match_what_the_provider_billed(
    hass: HomeAssistant,
    room: Room,
    fake_openai: FakeOpenAI,
    loaded_entry: MockConfigEntry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A spoken turn with a tool call, then a typed question: every counter, and the cost."""
    turns = async_capture_events(hass, EVENT_TURN)
    fake_openai.transcripts = ["Turn on the kitchen light."]
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply("The kitchen light is on."),
    ]
    await room.say("turn_on_kitchen_light")
    await room.reply()
    await wait_for(lambda: turns)
    assert hass.states.get(LIGHT).state == "on"
    assert fake_openai.tts_inputs == ["The kitchen light is on."]
    assert len(fake_openai.chat_usage) == 2  # LiveKit asks for usage on every request

    expected = _chat_figures(fake_openai) | {
        "openai_tts_characters_month": len("The kitchen light is on."),
    }
    await _settle(hass, expected)
    heard = sum(fake_openai.stt_audio_seconds)
    assert heard > 1.0  # the utterance (1.27 s), not silence
    assert _value(hass, "openai_stt_seconds_month") == pytest.approx(heard, abs=STT_TOLERANCE)

    # The text agent asks for its usage too (`stream_options`), on the same counters.
    assert await _ask(hass, loaded_entry, "What time is it?") == "Okay."
    assert fake_openai.chat_requests[-1]["stream_options"] == {"include_usage": True}
    assert len(fake_openai.chat_usage) == 3
    await _settle(hass, _chat_figures(fake_openai))

    counts = {key: _value(hass, f"openai_{key}_month") for key in _PER_UNIT}
    cost = sum(counts[key] / per * PRICES[option] for key, (option, per) in _PER_UNIT.items())
    assert cost > 0
    assert _value(hass, "estimated_cost_month") == pytest.approx(cost, abs=1e-6)
    assert _value(hass, "estimated_cost_day") == pytest.approx(cost, abs=1e-6)
    month = hass.states.get(_entity_id(hass, "estimated_cost_month"))
    assert month.attributes["unit_of_measurement"] == hass.config.currency
    assert month.attributes["state_class"] == "total"
    assert month.attributes["device_class"] == "monetary"
    start = dt_util.start_of_local_day(dt_util.now().replace(day=1))
    assert dt_util.parse_datetime(month.attributes["last_reset"]) == start

    # The day's counters are there, disabled: the month's statistics have the days.
    registry = er.async_get(hass)
    day = registry.async_get(_entity_id(hass, "openai_llm_input_tokens_day"))
    assert day is not None
    assert day.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    tokens = hass.states.get(_entity_id(hass, "openai_llm_input_tokens_month"))
    assert tokens.attributes["unit_of_measurement"] == "tokens"
    assert tokens.name == "Shackleton (127.0.0.1) OpenAI language model input tokens this month"
    # Counted from the models' metrics: not the session's deprecated event.
    assert "metrics_collected is deprecated" not in caplog.text
    # A pipeline entry has no realtime counters.
    assert (
        registry.async_get_entity_id(
            "sensor", DOMAIN, f"{ENTRY_ID}_openai_realtime_audio_input_tokens_month"
        )
        is None
    )


# Counter -> (its price option, the units the price is for).
_PER_UNIT = {
    "llm_input_tokens": (CONF_PRICE_LLM_INPUT, 1e6),
    "llm_output_tokens": (CONF_PRICE_LLM_OUTPUT, 1e6),
    "stt_seconds": (CONF_PRICE_STT_MINUTE, 60),
    "tts_characters": (CONF_PRICE_TTS_CHARACTERS, 1e6),
}


@pytest.fixture
async def fake_realtime(socket_enabled: None) -> AsyncIterator[FakeRealtime]:
    """Serve a fake OpenAI realtime API on 127.0.0.1."""
    server = FakeRealtime()
    runner, server.url = await start_app(server.app())
    yield server
    server.released.set()
    await runner.cleanup()


async def test_realtime_audio_tokens_match_response_usage(
    hass: HomeAssistant, kitchen_light: None, fake_realtime: FakeRealtime
) -> None:
    """A realtime turn with a tool call: audio tokens in and out as `response.done` billed."""
    entry = _entry(
        {
            CONF_VOICE_MODE: "realtime",
            "llm_provider": "openai",
            "openai_api_key": "sk-test",
            "openai_base_url": fake_realtime.base_url,
            "llm_model": "gpt-4.1-mini",
            "realtime_model": "gpt-realtime",
        },
        options={CONF_PRICE_REALTIME_AUDIO_INPUT: 32.0, CONF_PRICE_REALTIME_AUDIO_OUTPUT: 64.0},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    fake_realtime.transcripts = ["Turn on the kitchen light."]
    fake_realtime.turns = [
        RealtimeTurn("It is on.", tool_call=("intent__HassTurnOn", {"name": "Kitchen light"}))
    ]
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await entry.runtime_data.voice.async_start_local_session(
        "kitchen", audio_input=mic, audio_output=speaker
    )
    try:
        pcm, rate = read_wav(AUDIO / "turn_on_kitchen_light.wav")
        await mic.play_pcm(pcm, rate)
        await asyncio.wait_for(speaker.wait_for_segment(), 15)
        assert hass.states.get(LIGHT).state == "on"
        done = [e["response"]["usage"] for e in fake_realtime.sent if e["type"] == "response.done"]
        assert len(done) == 2  # the tool call, then the spoken answer
        heard = sum(u["input_token_details"]["audio_tokens"] for u in done)
        said = sum(u["output_token_details"]["audio_tokens"] for u in done)
        assert heard > 10
        assert said > 0
        expected = {
            "openai_realtime_audio_input_tokens_month": heard,
            "openai_realtime_audio_output_tokens_month": said,
        }
        await _settle(hass, expected)
        cost = heard / 1e6 * 32.0 + said / 1e6 * 64.0
        assert _value(hass, "estimated_cost_month") == pytest.approx(cost, abs=1e-6)
        # Realtime has no separate STT or TTS to count.
        assert (
            er.async_get(hass).async_get_entity_id(
                "sensor", DOMAIN, f"{ENTRY_ID}_openai_stt_seconds_month"
            )
            is None
        )
    finally:
        mic.close()
        assert await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def worker_entry(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> MockConfigEntry:
    """Set up a priced pipeline entry whose voice runs in an external worker."""
    entry = _entry(
        entry_data(fake_livekit, fake_openai),
        title="Shackleton (worker)",
        options={CONF_WORKER: WORKER_EXTERNAL, **PRICES},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return entry


async def test_worker_usage_reports_count_and_bad_ones_are_refused(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, worker_entry: MockConfigEntry
) -> None:
    """What a worker reports counts as the in-HA engine's; a broken report counts nothing."""
    worker = Worker(await hass_ws_client(hass), ENTRY_ID)
    assert (await worker.connect())["success"]
    assert (await worker.event())["type"] == "settings"
    usage = protocol.usage_fields(Usage(llm_input_tokens=1200, stt_seconds=2.5, tts_characters=40))
    # A newer worker's extra field is dropped, not refused.
    sent = await worker.ask("report", room="", kind="usage", usage=usage | {"video_frames": 3})
    assert sent["success"], sent
    await hass.async_block_till_done()
    figures = {
        "openai_llm_input_tokens_month": 1200,
        "openai_llm_output_tokens_month": 0,
        "openai_stt_seconds_month": 2.5,
        "openai_tts_characters_month": 40,
    }
    assert {key: _value(hass, key) for key in figures} == figures
    for bad in ({"llm_input_tokens": -5}, {"stt_seconds": "2"}, {"tts_characters": True}):
        refused = await worker.ask("report", room="", kind="usage", usage=bad)
        assert refused["error"]["code"] == "invalid_format", bad
    refused = await worker.ask("report", room="", kind="usage")
    assert refused["error"]["code"] == "invalid_format"
    await hass.async_block_till_done()
    assert {key: _value(hass, key) for key in figures} == figures


async def test_external_worker_process_usage_reaches_the_sensors(
    fake_openai: FakeOpenAI, tmp_path: Path, socket_enabled: None
) -> None:
    """The worker process (python -m ...voice) counts its turn; HA's sensors show it."""
    fake_openai.transcripts = ["Turn on the kitchen light."]
    fake_openai.chat_script = [
        ChatReply(tool_calls=[("intent__HassTurnOn", {"name": "Kitchen light"})]),
        ChatReply(text="The kitchen light is on."),
    ]
    home = HomeProcess(tmp_path / "ha", fake_openai.base_url)
    facts = await home.start()
    admin = facts["users"]["admin"]["token"]
    worker = await start_local_worker(home, admin, facts["entry_id"])
    try:
        await worker.send({"play": str(AUDIO / "turn_on_kitchen_light.wav")})
        await worker.event("spoke")
        expected = {
            "language_model_input_tokens": sum(u["prompt_tokens"] for u in fake_openai.chat_usage),
            "language_model_output_tokens": sum(
                u["completion_tokens"] for u in fake_openai.chat_usage
            ),
            "text_to_speech_characters": sum(len(text) for text in fake_openai.tts_inputs),
        }
        assert expected["language_model_input_tokens"] > 0

        async def counted() -> dict[str, float]:
            return {
                name: float(
                    (
                        await home.call(
                            admin, "GET", f"/api/states/sensor.shackleton_openai_{name}_this_month"
                        )
                    )["state"]
                )
                for name in expected
            }

        # Reports go over the WebSocket as they come: wait (bounded) for the last.
        for _ in range(50):
            if await counted() == expected:
                break
            await asyncio.sleep(0.1)
        assert await counted() == expected
    finally:
        await worker.send({"quit": True})
        code = await worker.stop()
        assert home.process is not None
        await home.process.stop()
    assert code == 0, "".join(worker.stderr[-40:])


async def _load(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    if entry.state is ConfigEntryState.NOT_LOADED:
        assert await hass.config_entries.async_setup(entry.entry_id)
    else:
        assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=dt_util.get_default_time_zone())  # type: ignore[misc]


async def test_day_and_month_restart_at_local_midnight(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
    fake_livekit: FakeLiveKit,
) -> None:
    """The day's totals restart at midnight and the month's go on; on the 1st, both do."""
    freezer.move_to(_local(2026, 12, 6, 23, 59, 50))
    entry = _entry(entry_data(None, fake_openai), options=PRICES)
    entry.add_to_hass(hass)
    await _load(hass, entry)
    registry = er.async_get(hass)
    for key in ("openai_llm_input_tokens_day", "estimated_cost_day"):
        registry.async_update_entity(_entity_id(hass, key), disabled_by=None)
    await _load(hass, entry)  # an enabled entity is added by a reload

    await _ask(hass, entry, "What time is it?")
    first = fake_openai.chat_usage[0]["prompt_tokens"]
    await _settle(
        hass, {"openai_llm_input_tokens_day": first, "openai_llm_input_tokens_month": first}
    )
    day = hass.states.get(_entity_id(hass, "openai_llm_input_tokens_day"))
    assert dt_util.parse_datetime(day.attributes["last_reset"]) == _local(2026, 12, 6)

    freezer.move_to(_local(2026, 12, 7, 0, 0, 0))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _value(hass, "openai_llm_input_tokens_day") == 0
    assert _value(hass, "estimated_cost_day") == 0
    assert _value(hass, "openai_llm_input_tokens_month") == first
    day = hass.states.get(_entity_id(hass, "openai_llm_input_tokens_day"))
    month = hass.states.get(_entity_id(hass, "openai_llm_input_tokens_month"))
    assert dt_util.parse_datetime(day.attributes["last_reset"]) == _local(2026, 12, 7)
    assert dt_util.parse_datetime(month.attributes["last_reset"]) == _local(2026, 12, 1)

    await _ask(hass, entry, "And now?")
    second = fake_openai.chat_usage[1]["prompt_tokens"]
    await _settle(
        hass,
        {"openai_llm_input_tokens_day": second, "openai_llm_input_tokens_month": first + second},
    )

    freezer.move_to(_local(2027, 1, 1, 0, 0, 0))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert _value(hass, "openai_llm_input_tokens_day") == 0
    assert _value(hass, "openai_llm_input_tokens_month") == 0
    month = hass.states.get(_entity_id(hass, "openai_llm_input_tokens_month"))
    assert dt_util.parse_datetime(month.attributes["last_reset"]) == _local(2027, 1, 1)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_totals_survive_a_restart_within_their_period(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    freezer: FrozenDateTimeFactory,
    hass_storage: dict[str, Any],
) -> None:
    """Saved totals come back on the same day; a day later only the month's do."""
    freezer.move_to(_local(2026, 12, 6, 12, 0, 0))
    entry = _entry(entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    await _load(hass, entry)
    await _ask(hass, entry, "What time is it?")
    tokens = fake_openai.chat_usage[0]["prompt_tokens"]
    await _settle(hass, {"openai_llm_input_tokens_month": tokens})
    assert await hass.config_entries.async_unload(entry.entry_id)
    # Unloading saved them (not only at HA's final write).
    saved = hass_storage[f"{DOMAIN}.{ENTRY_ID}.usage"]["data"]
    assert saved["periods"] == {"day": "2026-12-06", "month": "2026-12"}
    assert saved["counts"]["day"]["openai/llm_input_tokens"] == tokens

    await _load(hass, entry)  # the same day: both totals back
    month = hass.states.get(_entity_id(hass, "openai_llm_input_tokens_month"))
    assert month.state == str(tokens)  # still a whole number
    assert entry.runtime_data.usage.count(_counter("llm_input_tokens"), "day") == tokens
    assert await hass.config_entries.async_unload(entry.entry_id)

    freezer.move_to(_local(2026, 12, 7, 8, 0, 0))
    await _load(hass, entry)  # the next day: the month's only
    assert _value(hass, "openai_llm_input_tokens_month") == tokens
    assert entry.runtime_data.usage.count(_counter("llm_input_tokens"), "day") == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


def _counter(key: str) -> Counter:
    return next(counter for counter in COUNTERS if counter.key == key)


async def test_unreadable_saved_totals_start_afresh(
    hass: HomeAssistant, fake_openai: FakeOpenAI, hass_storage: dict[str, Any]
) -> None:
    """Totals saved in a shape we did not write load as nothing (kept aside), not a crash."""
    hass_storage[f"{DOMAIN}.{ENTRY_ID}.usage"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{ENTRY_ID}.usage",
        "data": {"periods": {"day": "yesterday", "month": "2026-12"}, "counts": {}},
    }
    entry = _entry(entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    await _load(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert _value(hass, "openai_llm_input_tokens_month") == 0
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_prices_in_the_options_flow(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """Bad prices get a translated error; good ones add the cost sensors; cleared, none."""
    entry = _entry(entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    await _load(hass, entry)
    registry = er.async_get(hass)
    cost_key = f"{ENTRY_ID}_estimated_cost_month"
    assert registry.async_get_entity_id("sensor", DOMAIN, cost_key) is None  # no prices yet
    await _ask(hass, entry, "What time is it?")
    tokens = fake_openai.chat_usage[0]

    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["description_placeholders"]["currency"] == hass.config.currency
    answer = _options_answer(entry) | {
        "costs": {CONF_PRICE_LLM_INPUT: -1.0, CONF_PRICE_LLM_OUTPUT: 2.0}
    }
    for bad in (-1.0, float("nan"), 10_001.0):
        answer["costs"][CONF_PRICE_LLM_INPUT] = bad
        result = await hass.config_entries.options.async_configure(result["flow_id"], answer)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {"base": "invalid_price"}, bad
    answer["costs"][CONF_PRICE_LLM_INPUT] = 0.5
    result = await hass.config_entries.options.async_configure(result["flow_id"], answer)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.options[CONF_PRICE_LLM_INPUT] == 0.5
    assert CONF_PRICE_STT_MINUTE not in entry.options  # left empty: no price
    cost = tokens["prompt_tokens"] / 1e6 * 0.5 + tokens["completion_tokens"] / 1e6 * 2.0
    assert _value(hass, "estimated_cost_month") == pytest.approx(cost, abs=1e-6)

    # The form shows the prices; clearing them all removes the cost sensors.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    answer = _options_answer(entry) | {"costs": {}}
    result = await hass.config_entries.options.async_configure(result["flow_id"], answer)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done(wait_background_tasks=True)
    assert CONF_PRICE_LLM_INPUT not in entry.options
    assert registry.async_get_entity_id("sensor", DOMAIN, cost_key) is None
    assert _value(hass, "openai_llm_input_tokens_month") == tokens["prompt_tokens"]
    assert await hass.config_entries.async_unload(entry.entry_id)


def _options_answer(entry: MockConfigEntry) -> dict[str, Any]:
    """Return the options form's answer that changes nothing (its sections filled in)."""
    options = entry.options
    answer: dict[str, Any] = {"voice_worker": options["voice_worker"]}
    for name, selectors in OPTION_SECTIONS.items():
        answer[name] = {key: options[key] for key in selectors}
    return answer


async def test_readme_budget_automation(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """The README's automation notifies once the day's estimated cost passes its limit."""
    # A steep price, so that one question passes the example's limit of 1.
    entry = _entry(entry_data(None, fake_openai), options={CONF_PRICE_LLM_INPUT: 10_000.0})
    entry.add_to_hass(hass)
    await _load(hass, entry)
    assert await async_setup_component(hass, "persistent_notification", {})
    assert await async_setup_component(
        hass, "automation", {"automation": [readme_example("usage-budget")]}
    )
    await hass.async_block_till_done()
    assert "sensor.shackleton_estimated_cost_today" in hass.states.async_entity_ids("sensor")
    notifications = persistent_notification._async_get_or_create_notifications(hass)
    assert not notifications
    await _ask(hass, entry, "What time is it?")
    await hass.async_block_till_done()
    assert fake_openai.chat_usage[0]["prompt_tokens"] / 1e6 * 10_000 > 1
    [shown] = notifications.values()
    assert shown["title"] == "Voice assistant budget"
    assert hass.config.currency in shown["message"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_broken_usage_is_logged_and_skipped(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """Metrics LiveKit could not have meant, or counts that are no counts, never count or raise."""
    engine = loaded_entry.runtime_data.voice.engine
    assert engine is not None
    llm_model = engine.models.llm

    def metrics(prompt: Any, completion: Any) -> LLMMetrics:
        # model_construct: what a plugin with a bug could hand LiveKit, unvalidated.
        return LLMMetrics.model_construct(prompt_tokens=prompt, completion_tokens=completion)

    llm_model.emit("metrics_collected", metrics("many", 3))  # type: ignore[union-attr]
    assert "Usage metrics not counted" in caplog.text
    llm_model.emit("metrics_collected", metrics(-40, 3))  # type: ignore[union-attr]
    assert "usage llm_input_tokens=-40 not counted" in caplog.text
    await hass.async_block_till_done()
    # The negative count was skipped; the same report's good one was not.
    assert _value(hass, "openai_llm_input_tokens_month") == 0
    assert _value(hass, "openai_llm_output_tokens_month") == 3
    llm_model.emit("metrics_collected", metrics(120, 4))  # type: ignore[union-attr]
    await hass.async_block_till_done()
    assert _value(hass, "openai_llm_input_tokens_month") == 120
    assert _value(hass, "openai_llm_output_tokens_month") == 7
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)


async def test_worker_adds_up_usage_while_home_assistant_is_away() -> None:
    """Reports wait while HA is away (a bounded queue): usage adds up in one of them."""
    link = HomeLink(
        LinkConfig(url="http://127.0.0.1:9", token="t", entry_id=ENTRY_ID),
        on_event=lambda event: None,
        on_connection=lambda connected: None,
    )
    home = RemoteHome(link)
    home.report_usage(Usage(llm_input_tokens=5, stt_seconds=1.5))
    home.report_usage(Usage(llm_input_tokens=7, tts_characters=3))
    home.report_state("kitchen", "speaking")
    home.report_usage(Usage(llm_output_tokens=2))
    waiting = list(link._waiting)
    assert [report["kind"] for report in waiting] == ["usage", "state", "usage"]
    assert protocol.usage_report(waiting[0]["usage"]) == Usage(
        llm_input_tokens=12, stt_seconds=1.5, tts_characters=3
    )
    assert protocol.usage_report(waiting[2]["usage"]) == Usage(llm_output_tokens=2)
    await link.aclose()


async def test_two_rooms_count_each_request_once(
    hass: HomeAssistant, room: Room, fake_openai: FakeOpenAI, loaded_entry: MockConfigEntry
) -> None:
    """Rooms share the models: a request made for one room is counted once, not per room.

    Each AgentSession listens to the shared models, so a session's own usage would
    count the kitchen's request in the hall's session as well.
    """
    mic, speaker = LocalAudioInput(), LocalAudioOutput()
    await loaded_entry.runtime_data.voice.async_start_local_session(
        "hall", audio_input=mic, audio_output=speaker
    )
    fake_openai.transcripts = ["What time is it?"]
    fake_openai.chat_script = [ChatReply("It is noon.")]
    await room.say("whats_the_time")
    await room.reply()
    assert len(fake_openai.chat_usage) == 1
    expected = _chat_figures(fake_openai) | {"openai_tts_characters_month": len("It is noon.")}
    await _settle(hass, expected)
    await asyncio.sleep(0.5)  # nothing more comes in late
    assert {key: _value(hass, key) for key in expected} == expected
    assert not speaker.segments  # the hall heard nothing
    mic.close()
