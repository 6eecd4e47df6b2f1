"""Config, reauth, reconfigure and options flows: every error, then recovery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.const import DEFAULT_ASSISTANT, DEFAULT_OPTIONS, DOMAIN
from harness.fakes import FakeLiveKit, FakeOpenAI, closed_port_url

from .conftest import entry_data

SECRET = "devsecret-devsecret-devsecret-00"


def _server(fake_livekit: FakeLiveKit, **overrides: str) -> dict[str, str]:
    return {
        "livekit_url": fake_livekit.url.replace("http://", "ws://") + "/",
        "livekit_api_key": "devkey",
        "livekit_api_secret": SECRET,
    } | overrides


def _openai_everywhere(fake_openai: FakeOpenAI) -> dict[str, Any]:
    return {
        "openai_api_key": "sk-test",
        "openai_base_url": fake_openai.base_url,
        "stt_model": "gpt-4o-mini-transcribe",
        "llm_model": "gpt-4.1-mini",
        "tts_model": "gpt-4o-mini-tts",
    }


PIPELINE_OPENAI = {
    "voice_mode": "pipeline",
    "stt_provider": "openai",
    "llm_provider": "openai",
    "tts_provider": "openai",
}


async def _start(hass: HomeAssistant, menu_choice: str) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["livekit", "skip_livekit"]
    return await hass.config_entries.flow.async_configure(
        result["flow_id"], {"next_step_id": menu_choice}
    )


async def test_full_flow_with_server(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> None:
    """A reachable server and a good key create an entry with normalized data."""
    result = await _start(hass, "livekit")
    assert result["step_id"] == "livekit"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server(fake_livekit)
    )
    assert result["step_id"] == "assistant"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], PIPELINE_OPENAI)
    assert result["step_id"] == "credentials"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _openai_everywhere(fake_openai)
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    ws_url = fake_livekit.url.replace("http://", "ws://")
    assert result["title"] == f"Shackleton ({ws_url.removeprefix('ws://')})"
    assert result["result"].unique_id == f"{ws_url}|devkey"
    assert result["data"] == {
        "livekit_url": ws_url,
        "livekit_api_key": "devkey",
        "livekit_api_secret": SECRET,
        **PIPELINE_OPENAI,
        **_openai_everywhere(fake_openai),
    }
    assert result["options"] == DEFAULT_OPTIONS
    # Its first assistant: the default persona, in the home's language, with its agent.
    [assistant] = result["result"].subentries.values()
    assert (assistant.subentry_type, assistant.title) == ("assistant", "Shackleton")
    assert assistant.data == {**DEFAULT_ASSISTANT, "language": "en"}
    assert result["result"].state is ConfigEntryState.LOADED
    assert hass.states.get("conversation.shackleton") is not None


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"livekit_url": "ftp://example.com"}, "invalid_url"),
        ({"livekit_url": "not a url at all"}, "invalid_url"),
        ({"livekit_url": "http://[::1"}, "invalid_url"),
        ({"livekit_url": "ws://exa mple.com"}, "invalid_url"),
        ({"livekit_api_secret": "wrong-secret-wrong-secret-wrong-0"}, "invalid_auth"),
        ({"livekit_api_key": "nokey"}, "invalid_auth"),
        ({"livekit_url": closed_port_url("ws")}, "cannot_connect"),
    ],
)
async def test_server_errors_then_recovery(
    hass: HomeAssistant,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
    change: dict[str, str],
    error: str,
) -> None:
    """Each bad server setting gets its own error; the user can fix it and go on."""
    result = await _start(hass, "livekit")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server(fake_livekit, **change)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    # The secret is never echoed back into the form.
    suggested = {
        str(key): key.description.get("suggested_value")
        for key in result["data_schema"].schema
        if key.description
    }
    assert "livekit_api_secret" not in suggested
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server(fake_livekit)
    )
    assert result["step_id"] == "assistant"


@pytest.mark.parametrize(
    ("fault", "error"),
    [({"fail_status": 500}, "cannot_connect"), ({"fail_status": 404}, "cannot_connect"),
     ({"forbid": True}, "invalid_auth")],
)  # fmt: skip
async def test_server_answers_with_an_error(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fault: dict[str, Any], error: str
) -> None:
    """A server error is not a usable server; a 403 is about the key, not the network."""
    for name, value in fault.items():
        setattr(fake_livekit, name, value)
    result = await _start(hass, "livekit")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server(fake_livekit)
    )
    assert result["errors"] == {"base": error}


async def test_same_server_aborts(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> None:
    """The same URL and key cannot be added twice."""
    MockConfigEntry(
        domain=DOMAIN,
        unique_id=f"{fake_livekit.url.replace('http://', 'ws://')}|devkey",
        data=entry_data(fake_livekit, fake_openai),
    ).add_to_hass(hass)
    result = await _start(hass, "livekit")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server(fake_livekit)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_skip_server_with_local_compatible_and_groq(
    hass: HomeAssistant, fake_openai: FakeOpenAI
) -> None:
    """No LiveKit server, Groq STT, a keyless compatible server for LLM and TTS."""
    fake_openai.api_keys = set()  # the compatible server needs no key...
    result = await _start(hass, "skip_livekit")
    assert result["step_id"] == "assistant"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "voice_mode": "pipeline",
            "stt_provider": "groq",
            "llm_provider": "compatible",
            "tts_provider": "compatible",
        },
    )
    schema_keys = [str(key) for key in result["data_schema"].schema]
    assert schema_keys == [
        "groq_api_key",
        "groq_base_url",
        "compatible_api_key",
        "compatible_base_url",
        "stt_model",
        "llm_model",
        "tts_model",
    ]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "groq_api_key": "gsk-any",
            "groq_base_url": fake_openai.base_url,
            "compatible_base_url": fake_openai.base_url + "/",
            "stt_model": "whisper-large-v3-turbo",
            "llm_model": "qwen3:4b",  # not listed: compatible servers often list only some
            "tts_model": "kokoro",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Shackleton"
    assert result["result"].unique_id is None
    assert "livekit_url" not in result["data"]
    assert "compatible_api_key" not in result["data"]
    assert result["data"]["compatible_base_url"] == fake_openai.base_url
    assert result["data"]["groq_api_key"] == "gsk-any"
    assert result["data"]["groq_base_url"] == fake_openai.base_url
    # ...and no Authorization header was sent where there was no key.
    assert {"path": "/v1/models", "auth": False} in fake_openai.requests


async def test_fully_local_asks_no_keys_and_checks_what_is_in_home(
    hass: HomeAssistant, tmp_path: Path
) -> None:
    """Offline speech and Assist: no key or URL fields; a missing agent or path is an error."""
    result = await _start(hass, "skip_livekit")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "voice_mode": "pipeline",
            "stt_provider": "local",
            "llm_provider": "home_assistant",
            "tts_provider": "local",
        },
    )
    assert [str(key) for key in result["data_schema"].schema] == [
        "stt_model",
        "llm_model",
        "tts_model",
    ]
    defaults = {str(key): key.default() for key in result["data_schema"].schema if key.default}
    assert defaults == {
        "stt_model": "tiny.en",
        "llm_model": "conversation.home_assistant",
        "tts_model": "en_US-joe-medium",
    }
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "stt_model": str(tmp_path / "no-such-model"),
            "llm_model": "conversation.no_such_agent",
            "tts_model": "en_US-joe-medium",
        },
    )
    assert result["errors"] == {
        "stt_model": "model_path_not_found",
        "llm_model": "agent_not_found",
    }
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "stt_model": str(tmp_path),
            "llm_model": "conversation.home_assistant",
            "tts_model": "en_US-joe-medium",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        "voice_mode": "pipeline",
        "stt_provider": "local",
        "llm_provider": "home_assistant",
        "tts_provider": "local",
        "stt_model": str(tmp_path),
        "llm_model": "conversation.home_assistant",
        "tts_model": "en_US-joe-medium",
    }
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_home_engines_that_are_not_there(hass: HomeAssistant) -> None:
    """Speech engines are picked from HA's entities; one that is not there is an error."""
    result = await _start(hass, "skip_livekit")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "voice_mode": "pipeline",
            "stt_provider": "home_assistant",
            "llm_provider": "home_assistant",
            "tts_provider": "home_assistant",
        },
    )
    selectors = {str(key): value for key, value in result["data_schema"].schema.items()}
    assert selectors["stt_model"].config["domain"] == ["stt"]
    assert selectors["tts_model"].config["domain"] == ["tts"]
    gone = {"stt_model": "stt.gone", "llm_model": "conversation.home_assistant"}
    # Whether or not HA's stt and tts components are loaded, an engine that is not
    # there is refused on its field.
    for loaded in (False, True):
        if loaded:
            assert await async_setup_component(hass, "stt", {})
            assert await async_setup_component(hass, "tts", {})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {**gone, "tts_model": "tts.gone"}
        )
        assert result["errors"] == {
            "stt_model": "engine_not_found",
            "tts_model": "engine_not_found",
        }


async def test_realtime_mode(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """Realtime asks for OpenAI and the text LLM's provider, and the realtime model."""
    result = await _start(hass, "skip_livekit")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**PIPELINE_OPENAI, "voice_mode": "realtime"}
    )
    assert [str(key) for key in result["data_schema"].schema] == [
        "openai_api_key",
        "openai_base_url",
        "llm_model",
        "realtime_model",
    ]
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "openai_api_key": "sk-test",
            "openai_base_url": fake_openai.base_url,
            "llm_model": "gpt-4.1-mini",
            "realtime_model": "gpt-realtime",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["realtime_model"] == "gpt-realtime"


@pytest.mark.parametrize(
    ("setup", "change", "errors"),
    [
        ("", {"openai_api_key": "sk-wrong"}, {"openai_api_key": "invalid_api_key"}),
        ("", {"openai_base_url": "nonsense"}, {"openai_base_url": "invalid_base_url"}),
        ("", {"openai_base_url": "http://[::1"}, {"openai_base_url": "invalid_base_url"}),
        ("closed", {}, {"openai_base_url": "provider_cannot_connect"}),
        ("500", {}, {"openai_base_url": "provider_error"}),
        ("html", {}, {"openai_base_url": "provider_error"}),
        ("no_list", {}, {"openai_base_url": "provider_error"}),
        ("", {"llm_model": "gpt-9000"}, {"llm_model": "model_not_found"}),
        ("", {"tts_model": "  "}, {"tts_model": "model_required"}),
    ],
)
async def test_provider_errors_then_recovery(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    setup: str,
    change: dict[str, str],
    errors: dict[str, str],
) -> None:
    """Each provider failure lands on its own field; fixing it creates the entry."""
    good = _openai_everywhere(fake_openai)
    bad = good | change
    if setup == "closed":
        bad["openai_base_url"] = closed_port_url() + "/v1"
    elif setup == "500":
        fake_openai.fail_status = 500
    elif setup == "html":
        fake_openai.not_json = True
    elif setup == "no_list":
        fake_openai.bad_shape = True
    result = await _start(hass, "skip_livekit")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], PIPELINE_OPENAI)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], bad)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    fake_openai.fail_status = None
    fake_openai.not_json = fake_openai.bad_shape = False
    result = await hass.config_entries.flow.async_configure(result["flow_id"], good)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_reauth(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """Reauth checks the new secret, shows failures, then stores and reloads."""
    fake_livekit.keys = {"devkey2": "rotated-secret-rotated-secret-00"}
    fake_openai.api_keys = {"sk-rotated"}
    result = await loaded_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    assert result["description_placeholders"]["title"] == loaded_entry.title

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"livekit_api_key": "devkey", "livekit_api_secret": SECRET}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"livekit_api_key": "devkey2", "livekit_api_secret": "rotated-secret-rotated-secret-00"},
    )
    # The stored OpenAI key was rotated too.
    assert result["errors"] == {"openai_api_key": "invalid_api_key"}
    fake_openai.fail_status = 500
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "livekit_api_key": "devkey2",
            "livekit_api_secret": "rotated-secret-rotated-secret-00",
            "openai_api_key": "sk-rotated",
        },
    )
    # The base URL field is not on this form, so its error shows on the form itself.
    assert result["errors"] == {"base": "provider_error"}
    fake_openai.fail_status = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "livekit_api_key": "devkey2",
            "livekit_api_secret": "rotated-secret-rotated-secret-00",
            "openai_api_key": "sk-rotated",
        },
    )
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert loaded_entry.data["livekit_api_key"] == "devkey2"
    assert loaded_entry.data["openai_api_key"] == "sk-rotated"
    assert loaded_entry.unique_id == f"{fake_livekit.url}|devkey2"
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_reauth_onto_another_entry_aborts(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """Reauth cannot turn an entry into a copy of another one."""
    fake_livekit.keys["other"] = "other-secret-other-secret-other-0"
    MockConfigEntry(domain=DOMAIN, unique_id=f"{fake_livekit.url}|other").add_to_hass(hass)
    result = await loaded_entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"livekit_api_key": "other", "livekit_api_secret": "other-secret-other-secret-other-0"},
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth_without_server(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """An entry without LiveKit reauths only its provider keys; blank keeps them."""
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    assert [str(key) for key in result["data_schema"].schema] == ["openai_api_key"]
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["reason"] == "reauth_successful"
    assert entry.data["openai_api_key"] == "sk-test"
    # The entry reloads with the kept key (and must not be cut off half-way at teardown).
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state is ConfigEntryState.LOADED


async def test_reconfigure_drop_then_add_server(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """Reconfigure removes the server, switches providers, and keeps unchanged secrets."""
    result = await loaded_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["step_id"] == "assistant"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {**PIPELINE_OPENAI, "stt_provider": "groq"}
    )
    # The stored OpenAI key may stay blank; Groq is new, so its key is required.
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "openai_base_url": fake_openai.base_url,
            "groq_api_key": "sk-test",
            "groq_base_url": fake_openai.base_url,
            "stt_model": "whisper-large-v3-turbo",
            "llm_model": "gpt-4.1-mini",
            "tts_model": "gpt-4o-mini-tts",
        },
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert "livekit_url" not in loaded_entry.data
    assert loaded_entry.unique_id is None
    assert loaded_entry.title == "Shackleton"
    assert loaded_entry.data["openai_api_key"] == "sk-test"
    assert loaded_entry.data["stt_provider"] == "groq"

    # And back: a bad secret first, then the right one; the secret is kept blank-able.
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {"livekit_url": fake_livekit.url, "livekit_api_key": "devkey", "livekit_api_secret": "x"},
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _server(fake_livekit)
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], PIPELINE_OPENAI)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {**_openai_everywhere(fake_openai), "openai_base_url": closed_port_url() + "/v1"},
    )
    # An unreachable provider URL: the field says so, and nothing is lost.
    assert result["errors"] == {"openai_base_url": "provider_cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _openai_everywhere(fake_openai)
    )
    await hass.async_block_till_done()
    assert result["reason"] == "reconfigure_successful"
    assert loaded_entry.data["livekit_url"] == fake_livekit.url.replace("http://", "ws://")
    assert loaded_entry.state is ConfigEntryState.LOADED


async def test_reconfigure_keeps_secret_and_guards_duplicates(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
) -> None:
    """A blank secret keeps the stored one; another entry's server aborts."""
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"livekit_url": fake_livekit.url, "livekit_api_key": "devkey"}
    )
    assert result["step_id"] == "assistant"

    MockConfigEntry(domain=DOMAIN, unique_id=f"{fake_livekit.url}|twin").add_to_hass(hass)
    fake_livekit.keys["twin"] = "twin-secret-twin-secret-twin-000"
    result = await loaded_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            "livekit_url": fake_livekit.url,
            "livekit_api_key": "twin",
            "livekit_api_secret": "twin-secret-twin-secret-twin-000",
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_options_flow(hass: HomeAssistant, loaded_entry: MockConfigEntry) -> None:
    """Options are shown in sections, checked, and stored flat; the entry reloads."""
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    assert result["step_id"] == "init"
    path = result["description_placeholders"]["webhook_path"]
    assert path == f"/api/webhook/shackleton_{loaded_entry.entry_id}"
    turn_taking = {
        "vad_activation_threshold": 0.6,
        "min_speech_duration": 0.1,
        "min_silence_duration": 0.4,
        "prefix_padding": 0.3,
        "min_interruption_duration": 0.15,
        "min_endpointing_delay": 2.0,
        "max_endpointing_delay": 1.0,
    }
    user_input = {
        "turn_taking": turn_taking,
        "rooms": {
            "auto_join_prefix": "home-",
            "announce_when_nobody_listens": "queue",
            "announce_queue_minutes": 30.0,
        },
        "dashboard": {
            "dashboard_rooms": [" kitchen", "no spaces"],
            "card_token_minutes": 3.0,
            "livekit_browser_url": "ftp://nope",
        },
        "privacy": {"transcript_retention_days": 0, "transcripts_in_events": True},
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "endpointing_order"}

    user_input["turn_taking"] = turn_taking | {"max_endpointing_delay": 4.0}
    for error, fix in (
        ("invalid_dashboard_rooms", {"dashboard_rooms": [" kitchen", "hall"]}),
        ("invalid_browser_url", {"livekit_browser_url": " wss://lk.example.com/ "}),
    ):
        result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
        assert result["errors"] == {"base": error}
        user_input["dashboard"] = user_input["dashboard"] | fix
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    await hass.async_block_till_done()
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options == {
        "voice_worker": "home_assistant",  # not in the answer: kept
        **turn_taking,
        "max_endpointing_delay": 4.0,
        "auto_join_prefix": "home-",
        "announce_when_nobody_listens": "queue",
        "announce_queue_minutes": 30,
        "dashboard_rooms": ["kitchen", "hall"],
        "card_token_minutes": 3,
        "livekit_browser_url": "wss://lk.example.com",
        "transcript_retention_days": 0,
        "transcripts_in_events": True,
    }
    assert isinstance(loaded_entry.options["transcript_retention_days"], int)
    assert isinstance(loaded_entry.options["announce_queue_minutes"], int)
    assert loaded_entry.state is ConfigEntryState.LOADED

    # Text fields a user clears are left out of the form's answer: they become blank.
    result = await hass.config_entries.options.async_init(loaded_entry.entry_id)
    user_input["rooms"] = {k: v for k, v in user_input["rooms"].items() if k != "auto_join_prefix"}
    user_input["dashboard"] = {"dashboard_rooms": [], "card_token_minutes": 10}
    result = await hass.config_entries.options.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert loaded_entry.options["auto_join_prefix"] == ""
    assert loaded_entry.options["livekit_browser_url"] == ""
    assert loaded_entry.options["dashboard_rooms"] == []


async def test_options_defaults_for_old_entry(
    hass: HomeAssistant, fake_livekit: FakeLiveKit, fake_openai: FakeOpenAI
) -> None:
    """An entry with no options yet shows the defaults."""
    entry = MockConfigEntry(domain=DOMAIN, data=entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    suggested = {
        str(key): key.description.get("suggested_value")
        for key in result["data_schema"].schema
        if key.description
    }
    assert suggested["voice_worker"] == DEFAULT_OPTIONS["voice_worker"]
    assert "instructions" not in suggested  # each assistant has its own
