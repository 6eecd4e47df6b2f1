"""Checks that stand in for hassfest: translations, actions, icons, manifest and HACS."""

from __future__ import annotations

import ast
import json
from pathlib import Path
import re
from typing import Any

from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as ha_version
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import yaml

from custom_components.shackleton.config_flow import OPTION_SECTIONS
from custom_components.shackleton.const import (
    DOMAIN,
    PIPELINE_STAGES,
    STAGE_REALTIME,
    api_key_key,
    base_url_key,
    model_key,
)
from custom_components.shackleton.providers import PROVIDERS

PACKAGE = Path(__file__).parent.parent / "custom_components" / DOMAIN
STRINGS: dict[str, Any] = json.loads((PACKAGE / "translations" / "en.json").read_text())
SOURCES = {str(path): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}


def _string_kwargs(name: str) -> set[str]:
    """Return every string literal passed as keyword `name` anywhere in the package."""
    found = set()
    for tree in SOURCES.values():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.keyword)
                and node.arg == name
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found.add(node.value.value)
    return found


def _error_reasons() -> set[str]:
    """Return the flow error keys the code can produce."""
    found = set()
    for tree in SOURCES.values():
        for node in ast.walk(tree):
            # errors["field"] = "reason"
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found.add(node.value.value)
            # class attribute `reason = "..."` on LiveKitError subclasses
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "reason"
                and isinstance(node.value, ast.Constant)
            ):
                found.add(node.value.value)
            # ProviderError("reason")
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "ProviderError"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


def test_error_reasons_translated() -> None:
    """Every error a flow can show has text."""
    reasons = _error_reasons()
    assert reasons >= {"cannot_connect", "invalid_auth", "invalid_url", "invalid_api_key"}
    # The options flow's errors live under `options`, the other flows' under `config`.
    missing = reasons - STRINGS["config"]["error"].keys() - STRINGS["options"]["error"].keys()
    assert not missing


def test_abort_reasons_translated() -> None:
    """Every abort reason has text, including HA's own reauth/reconfigure ones."""
    reasons = _string_kwargs("reason") | {"reauth_successful", "reconfigure_successful"}
    assert not reasons - STRINGS["config"]["abort"].keys()


def test_steps_translated() -> None:
    """Every step id has a title."""
    steps = _string_kwargs("step_id")
    config_steps = STRINGS["config"]["step"]
    for step in steps:
        strings = config_steps.get(step) or STRINGS["options"]["step"].get(step)
        assert strings is not None, step
        assert strings.get("title"), step


def test_translation_keys_exist() -> None:
    """Every translation_key in code resolves to an entity, exception, issue or selector."""
    keys = _string_kwargs("translation_key")
    known = {
        *(key for platform in STRINGS["entity"].values() for key in platform),
        *STRINGS["exceptions"],
        *STRINGS["issues"],
        *STRINGS["selector"],
    }
    assert not keys - known
    # Module constants used as keys (issue ids, option keys) are checked by name.
    assert {"no_livekit_server", "tool_groups", "confirm_domains", "voice_mode"} <= known


def _field_strings(step: dict[str, Any]) -> tuple[set[str], set[str]]:
    return set(step.get("data", {})), set(step.get("data_description", {}))


def test_every_field_has_label_and_description() -> None:
    """Each config field carries a label and a data_description."""
    for name, step in STRINGS["config"]["step"].items():
        labels, descriptions = _field_strings(step)
        assert labels == descriptions, name
    credentials = set(STRINGS["config"]["step"]["credentials"]["data"])
    remote = [name for name, spec in PROVIDERS.items() if spec.remote]
    generated = {api_key_key(p) for p in remote} | {base_url_key(p) for p in remote}
    generated |= {model_key(stage) for stage in (*PIPELINE_STAGES, STAGE_REALTIME)}
    assert generated == credentials
    options = STRINGS["options"]["step"]["init"]
    assert _field_strings(options)[0] == _field_strings(options)[1]
    for section_name, fields in OPTION_SECTIONS.items():
        section = options["sections"][section_name]
        assert set(section["data"]) == set(fields) == set(section["data_description"])


def test_entity_states_and_icons() -> None:
    """Enum states have names, and icons.json names only translated entities."""
    from custom_components.shackleton.const import ASSISTANT_STATES

    states = STRINGS["entity"]["sensor"]["assistant_state"]["state"]
    assert set(states) == set(ASSISTANT_STATES)
    icons = json.loads((PACKAGE / "icons.json").read_text())["entity"]
    for platform, entities in icons.items():
        assert set(entities) <= set(STRINGS["entity"][platform])


async def test_services_yaml_matches_actions(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """services.yaml describes exactly the registered actions, each translated."""
    path = PACKAGE / "services.yaml"
    described = set((yaml.safe_load(path.read_text()) or {}) if path.exists() else {})
    registered = set(hass.services.async_services_for_domain(DOMAIN))
    assert described == registered
    assert registered <= set(STRINGS.get("services", {}))


MANIFEST = json.loads((PACKAGE / "manifest.json").read_text())


def test_manifest() -> None:
    """The manifest has every key hassfest and HACS need, with valid values."""
    required = {
        "domain", "name", "codeowners", "config_flow", "dependencies", "documentation",
        "integration_type", "iot_class", "issue_tracker", "requirements", "version",
    }  # fmt: skip
    assert required <= MANIFEST.keys()
    assert MANIFEST["domain"] == DOMAIN
    assert MANIFEST["integration_type"] == "service"
    assert MANIFEST["config_flow"] is True
    assert MANIFEST["iot_class"] in {
        "assumed_state", "calculated", "cloud_polling", "cloud_push",
        "local_polling", "local_push",
    }  # fmt: skip
    assert AwesomeVersion(MANIFEST["version"]).valid
    assert all(re.fullmatch(r"@[\w-]+", owner) for owner in MANIFEST["codeowners"])
    assert MANIFEST["documentation"].startswith("https://")
    # Only exact pins, and nothing that lacks wheels on musl (HA OS / Container).
    for requirement in MANIFEST["requirements"]:
        name, _, version = requirement.partition("==")
        assert version, requirement
        assert name not in {"livekit", "livekit-agents", "onnxruntime", "av"}
    assert list(MANIFEST) == ["domain", "name", *sorted(set(MANIFEST) - {"domain", "name"})]


def test_hacs() -> None:
    """hacs.json names the integration and a minimum HA version we test against."""
    hacs = json.loads((PACKAGE.parent.parent / "hacs.json").read_text())
    assert hacs["name"] == MANIFEST["name"]
    minimum = AwesomeVersion(hacs["homeassistant"])
    assert minimum.valid
    assert minimum <= AwesomeVersion(ha_version)


@pytest.mark.parametrize("key", sorted(STRINGS["config"]["error"]))
def test_error_text_is_a_sentence(key: str) -> None:
    """Error texts tell the user something whole, not a code."""
    text = STRINGS["config"]["error"][key]
    assert text[0].isupper()
    assert text.endswith(".")
