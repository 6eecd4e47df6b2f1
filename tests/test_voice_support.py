"""Getting the voice packages, and what happens when they cannot be had."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import requires, version
import json
from pathlib import Path
import subprocess
import sys

from homeassistant.const import STATE_UNAVAILABLE, __version__ as ha_version
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.requirements import pip_kwargs
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.const import DOMAIN
from custom_components.shackleton.voice_config import settings_from_entry
from custom_components.shackleton.voice_support import (
    LOCAL_REQUIREMENTS,
    TEXT_REQUIREMENTS,
    VOICE_REQUIREMENTS,
    VoiceSupportLoader,
    async_get_loader,
)
from harness.fakes import FakeLiveKit, FakeOpenAI

from .conftest import entry_data, first_assistant

REPO = Path(__file__).parent.parent


# The minimum lane's HA (2026.10) has no voice set: its tests run the worker's packages.
needs_voice_set = pytest.mark.skipif(
    VOICE_REQUIREMENTS is None, reason=f"no voice set installs beside HA {ha_version}"
)


@pytest.mark.parametrize(
    ("name", "installed"),
    [
        pytest.param("voice", VOICE_REQUIREMENTS, marks=needs_voice_set),
        ("local", LOCAL_REQUIREMENTS),
    ],
)
def test_requirements_match_the_pinned_set(name: str, installed: Sequence[str] | None) -> None:
    """The runtime installs use exactly the pins of requirements/voice.txt and local.txt.

    voice.txt is the newest release's set (HA 2026.11, the tested one): the set this
    HA's version picks from voice_sets.py.
    """
    lines = (REPO / "requirements" / f"{name}.txt").read_text().splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert installed is not None
    assert pins == list(installed)


async def _load_without_livekit(
    hass: HomeAssistant, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> MockConfigEntry:
    """Set up an entry in a Home Assistant where livekit-agents cannot be imported."""
    # A None entry in sys.modules is how Python spells "cannot be imported".
    monkeypatch.setitem(sys.modules, "livekit.agents", None)
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=entry_data(None, fake_openai))
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    return entry


async def test_missing_packages_leave_text_working(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    issue_registry: ir.IssueRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without livekit-agents the entry loads, voice is unavailable, a repair says why."""
    entry = await _load_without_livekit(hass, fake_openai, monkeypatch)

    assert entry.state.value == "loaded"
    assert hass.states.get("sensor.shackleton_assistant_state").state == STATE_UNAVAILABLE
    assert hass.states.get("switch.shackleton_voice_assistant").state == "on"
    issue = issue_registry.async_get_issue(DOMAIN, f"voice_unavailable_{entry.entry_id}")
    assert issue is not None
    assert "livekit.agents" in issue.translation_placeholders["error"]
    runtime = entry.runtime_data.runtime
    assert runtime.voice_available is False
    # Where HA has no voice set, nothing is installed and the repair says so.
    assert runtime.voice_error == ("import_failed" if VOICE_REQUIREMENTS else "no_voice_set")
    manager = entry.runtime_data.voice
    assert manager is not None
    with pytest.raises(RuntimeError):
        await manager.async_start_local_session("kitchen")
    assert await manager.async_leave_room("kitchen") is False

    assert await hass.config_entries.async_remove(entry.entry_id)
    assert issue_registry.async_get_issue(DOMAIN, f"voice_unavailable_{entry.entry_id}") is None


async def test_a_release_without_a_voice_set_points_to_the_worker(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    issue_registry: ir.IssueRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Where no voice set installs beside HA, nothing is installed; a repair names the worker."""
    monkeypatch.setattr("custom_components.shackleton.voice_support.VOICE_REQUIREMENTS", None)
    installs: list[list[str]] = []

    async def install(hass: HomeAssistant, name: str, requirements: list[str]) -> None:
        installs.append(requirements)

    monkeypatch.setattr(
        "custom_components.shackleton.voice_support.async_process_requirements", install
    )
    hass.config.skip_pip = False  # it would install if it had a set
    # Not the manifest's requirement: pip would change this very venv.
    hass.config.skip_pip_packages = ["livekit-api"]
    entry = await _load_without_livekit(hass, fake_openai, monkeypatch)

    assert entry.state.value == "loaded"
    assert entry.runtime_data.runtime.voice_error == "no_voice_set"
    assert installs == []
    issue = issue_registry.async_get_issue(DOMAIN, f"voice_unavailable_{entry.entry_id}")
    assert issue is not None
    assert ha_version in issue.translation_placeholders["error"]
    assert "external worker" in issue.translation_placeholders["error"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_start_session_without_voice(
    hass: HomeAssistant,
    fake_livekit: FakeLiveKit,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Asking for a room while voice is unavailable gets a translated error."""
    monkeypatch.setitem(sys.modules, "livekit.agents", None)
    entry = MockConfigEntry(
        domain=DOMAIN, title="Shackleton", data=entry_data(fake_livekit, fake_openai)
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "start_session", {"room": "den"}, blocking=True)
    assert err.value.translation_key == "voice_unavailable"


async def test_install_failure_is_reported(
    hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When HA's requirements mechanism cannot install, the reason names the packages."""
    monkeypatch.setitem(sys.modules, "livekit.agents", None)
    hass.config.skip_pip = False
    # A name no index serves: pip really runs, and really fails.
    monkeypatch.setattr(
        "custom_components.shackleton.voice_support.VOICE_REQUIREMENTS",
        ["shackleton-no-such-package-for-tests==0.0.0"],
    )
    support = await VoiceSupportLoader(hass).async_load()
    assert support.available is False
    assert support.reason == "install_failed"
    assert "shackleton-no-such-package-for-tests" in (support.detail or "")


async def test_local_speech_that_cannot_be_installed_is_reported(
    hass: HomeAssistant,
    fake_openai: FakeOpenAI,
    issue_registry: ir.IssueRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry on offline speech whose packages cannot be had: voice off, a repair says so."""
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    hass.config.skip_pip = False
    # Not the manifest's requirement: pip would change this very venv.
    hass.config.skip_pip_packages = ["livekit-api"]
    monkeypatch.setattr(
        "custom_components.shackleton.voice_support.LOCAL_REQUIREMENTS",
        ["shackleton-no-such-local-package==0.0.0"],
    )
    data = entry_data(None, fake_openai) | {"stt_provider": "local", "stt_model": "tiny.en"}
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.runtime_data.runtime.voice_error == "install_failed"
    issue = issue_registry.async_get_issue(DOMAIN, f"voice_unavailable_{entry.entry_id}")
    assert issue is not None
    assert "shackleton-no-such-local-package" in issue.translation_placeholders["error"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_voice_engine_that_fails_to_start_is_a_repair(
    hass: HomeAssistant, fake_openai: FakeOpenAI, issue_registry: ir.IssueRegistry
) -> None:
    """A piper voice path that is not there (a deleted file): a repair, HA carries on."""
    data = entry_data(None, fake_openai) | {
        "tts_provider": "local",
        "tts_model": "/nonexistent/voice.onnx",
    }
    entry = MockConfigEntry(domain=DOMAIN, title="Shackleton", data=data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done(wait_background_tasks=True)
    assert entry.state.value == "loaded"
    assert entry.runtime_data.runtime.voice_error == "start_failed"
    issue = issue_registry.async_get_issue(DOMAIN, f"voice_start_failed_{entry.entry_id}")
    assert issue is not None
    assert "voice.onnx" in issue.translation_placeholders["error"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_plugin_import_failure(hass: HomeAssistant, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin that cannot be imported makes voice unavailable, not HA unhappy."""
    monkeypatch.setitem(sys.modules, "livekit.plugins.groq", None)
    support = await VoiceSupportLoader(hass).async_load()
    assert support.available is False
    assert support.reason == "import_failed"


async def test_loader_is_shared_and_cached(hass: HomeAssistant) -> None:
    """Every entry uses one loader, which loads once."""
    loader = async_get_loader(hass)
    assert async_get_loader(hass) is loader
    first = await loader.async_load()
    assert first.available
    assert await loader.async_load() is first


async def test_settings_for_realtime(hass: HomeAssistant, fake_openai: FakeOpenAI) -> None:
    """Realtime mode uses OpenAI's realtime model and no STT/TTS."""
    data = entry_data(None, fake_openai) | {
        "voice_mode": "realtime",
        "realtime_model": "gpt-realtime",
    }
    entry = MockConfigEntry(
        domain=DOMAIN, data=data, version=2, subentries_data=[first_assistant(language="de")]
    )
    settings = settings_from_entry(entry, "en")  # type: ignore[arg-type]
    assert settings.mode == "realtime"
    assert settings.stt is None
    assert settings.tts is None
    assert settings.realtime is not None
    assert settings.realtime.model == "gpt-realtime"
    assert settings.realtime.base_url == fake_openai.base_url
    assert settings.language == "de"
    # The key never shows in a repr, hence never in a log line.
    assert "sk-test" not in repr(settings)


def test_first_turn_imports_nothing_on_the_loop() -> None:
    """A fresh process, loaded like HA, serves a first turn with no import on the loop.

    The openai client once imported `openai.resources` there on the first request (0.47 s).
    """
    result = subprocess.run(
        [sys.executable, "-m", "tests.loop_imports_probe"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def _home_assistant_pins() -> dict[str, str]:
    """Return the versions HA's package_constraints.txt pins, by canonical name."""
    constraints = Path(pip_kwargs()["constraints"]).read_text().splitlines()
    pins = {}
    for line in constraints:
        if "==" in line and not line.lstrip().startswith("#"):
            requirement = Requirement(line.split("#")[0].strip())
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier)[2:]
    return pins


@needs_voice_set
def test_text_requirement_follows_home_assistants_pin() -> None:
    """The text agent asks for the OpenAI SDK unpinned: HA's constraints pick the version.

    HA installs an integration's requirements under its package_constraints.txt, so an
    unpinned name installs exactly HA's pin (openai 3.26.0 on 2026.11), the version the
    tests run; a pin of our own could only ever clash with it.
    """
    pins = _home_assistant_pins()
    for line in TEXT_REQUIREMENTS:
        requirement = Requirement(line)
        assert not requirement.specifier, f"{line}: HA's constraints choose the version"
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned by HA {ha_version}"
        assert version(name) == pins[name]


@needs_voice_set
def test_voice_set_installs_beside_home_assistant() -> None:
    """The voice set is what runs here, and HA's pins satisfy what its plugins require.

    The test environment installs requirements/voice.txt under HA's constraints, as HA
    does at runtime: its openai (which the OpenAI plugin needs) must be HA's.
    """
    for line in VOICE_REQUIREMENTS:
        requirement = Requirement(line)
        assert requirement.specifier.contains(version(requirement.name)), line
    pins = _home_assistant_pins()
    for line in requires("livekit-plugins-openai") or []:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name in pins and requirement.marker is None:
            assert requirement.specifier.contains(pins[name]), (line, pins[name])
