"""Checks that stand in for hassfest: translations, actions, icons, manifest and HACS."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path
import re
from typing import Any

from awesomeversion import AwesomeVersion
from homeassistant.components.brands.const import ALLOWED_IMAGES
from homeassistant.const import Platform, __version__ as ha_version
from homeassistant.core import HomeAssistant
from homeassistant.helpers.selector import SelectSelector
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import yaml

from custom_components.shackleton.assistant_flow import ASSISTANT_FIELDS
from custom_components.shackleton.config_flow import OPTION_SECTIONS
from custom_components.shackleton.const import (
    CONF_CONFIRM_DOMAINS,
    CONFIRM_DEVICE_CLASSES,
    CONFIRMABLE_TARGETS,
    DEFAULT_ASSISTANT,
    DOMAIN,
    PIPELINE_STAGES,
    STAGE_REALTIME,
    api_key_key,
    base_url_key,
    migrate_confirm_domains,
    model_key,
    needs_confirmation,
)
from custom_components.shackleton.provider_catalog import PROVIDERS

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


def _abort_reasons() -> set[str]:
    """Return every literal `reason` given to a flow's abort (`async_abort`, ...)."""
    found = set()
    for tree in SOURCES.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if "abort" not in name:
                continue
            for keyword in node.keywords:
                if keyword.arg == "reason" and isinstance(keyword.value, ast.Constant):
                    found.add(keyword.value.value)
    return found


def test_abort_reasons_translated() -> None:
    """Every abort reason has text, including HA's own reauth/reconfigure ones."""
    reasons = _abort_reasons() | {"reauth_successful", "reconfigure_successful"}
    assert "already_configured" in reasons
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
    for name, step in STRINGS["config_subentries"]["assistant"]["step"].items():
        assert set(step["data"]) == set(ASSISTANT_FIELDS) == set(step["data_description"]), name


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


# hassfest's rule for translation keys (script/hassfest/translations.py, RE_TRANSLATION_KEY):
# [a-z0-9-_], no leading, trailing or doubled `_`/`-`. hassfest applies it to selector
# options, entity keys and states, service fields...; every key of ours must pass it.
RE_TRANSLATION_KEY = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")


def _key_paths(strings: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return the path of every key in a translation file, nested ones included."""
    paths = []
    for key, value in strings.items():
        paths.append((*path, key))
        if isinstance(value, dict):
            paths.extend(_key_paths(value, (*path, key)))
    return paths


def test_translation_keys_are_valid() -> None:
    """Every key in en.json is a valid translation key (no dots, capitals or spaces)."""
    paths = _key_paths(STRINGS)
    bad = [" > ".join(path) for path in paths if not RE_TRANSLATION_KEY.match(path[-1])]
    assert not bad


def _translated_selectors() -> list[tuple[str, SelectSelector]]:
    return [
        (key, selector)
        for fields in (*OPTION_SECTIONS.values(), ASSISTANT_FIELDS)
        for key, selector in fields.items()
        if isinstance(selector, SelectSelector) and selector.config.get("translation_key")
    ]


def test_select_options_are_translation_keys() -> None:
    """A translated SelectSelector's option values are its translation keys: valid, with text."""
    selectors = _translated_selectors()
    assert CONF_CONFIRM_DOMAINS in {key for key, _ in selectors}
    for key, selector in selectors:
        options = [
            option if isinstance(option, str) else option["value"]
            for option in selector.config["options"]
        ]
        texts = STRINGS["selector"][selector.config["translation_key"]]["options"]
        assert set(options) == set(texts), key
        assert all(RE_TRANSLATION_KEY.match(option) for option in options), key


def test_confirm_domains() -> None:
    """Confirm-domain values: domains or device-class keys; the old dotted ones migrate."""
    assert set(CONFIRM_DEVICE_CLASSES) <= set(CONFIRMABLE_TARGETS)
    defaults = DEFAULT_ASSISTANT[CONF_CONFIRM_DOMAINS]
    assert isinstance(defaults, list)
    assert set(defaults) <= set(CONFIRMABLE_TARGETS)
    for target in set(CONFIRMABLE_TARGETS) - set(CONFIRM_DEVICE_CLASSES):
        assert target in {platform.value for platform in Platform}, target
    old = ["lock", "cover.garage", "cover.door", "cover.gate", "cover_garage", "cover.shutter"]
    assert migrate_confirm_domains(old) == [
        "lock", "cover_garage", "cover_door", "cover_gate", "cover.shutter",
    ]  # fmt: skip
    assert migrate_confirm_domains(migrate_confirm_domains(old)) == migrate_confirm_domains(old)
    confirm = {"lock", "cover_garage", "cover.shutter"}
    assert needs_confirmation(confirm, "lock", None)
    assert needs_confirmation(confirm, "cover", "garage")
    assert needs_confirmation(confirm, "cover", "shutter")
    assert not needs_confirmation(confirm, "cover", "door")
    assert not needs_confirmation(confirm, "cover", None)
    assert not needs_confirmation(confirm, "light", None)


# hassfest's ALLOWED_USED_COMPONENTS (script/hassfest/dependencies.py): integrations any
# integration may import without listing them, besides the entity platforms.
HASSFEST_ALLOWED_COMPONENTS = frozenset(
    {
        "alert", "automation", "conversation", "default_config", "device_automation",
        "frontend", "group", "homeassistant", "input_boolean", "input_button",
        "input_datetime", "input_number", "input_select", "input_text", "media_source",
        "onboarding", "panel_custom", "persistent_notification", "person", "script",
        "shopping_list", "sun", "system_health", "system_log", "timer", "webhook",
        "websocket_api", "zone", "mjpeg", "stream",
    }
)  # fmt: skip


def _component_imports(node: ast.AST) -> set[str]:
    """Return the `homeassistant.components.X` a tree imports, as hassfest's ImportCollector.

    Imports inside functions count; `if TYPE_CHECKING:` blocks do not.
    """
    if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
        return set()
    found: set[str] = set()
    if isinstance(node, ast.ImportFrom) and node.module:
        names = [alias.name for alias in node.names]
        # hassfest's one exception: http's async_sign_path.
        if node.module.startswith("homeassistant.components.") and (node.module, names) != (
            "homeassistant.components.http.auth",
            ["async_sign_path"],
        ):
            found.add(node.module.split(".")[2])
        elif node.module == "homeassistant.components":
            found.update(names)
    elif isinstance(node, ast.Import):
        found.update(
            alias.name.split(".")[2]
            for alias in node.names
            if alias.name.startswith("homeassistant.components.")
        )
    for child in ast.iter_child_nodes(node):
        found |= _component_imports(child)
    return found


def _imported_components() -> dict[str, set[str]]:
    """Return component -> the package files importing it."""
    users: dict[str, set[str]] = {}
    for path, tree in SOURCES.items():
        for component in _component_imports(tree):
            users.setdefault(component, set()).add(Path(path).relative_to(PACKAGE).as_posix())
    return users


def test_imported_components_are_dependencies() -> None:
    """Every HA integration the package imports is in the manifest, as hassfest requires."""
    imported = _imported_components()
    # Anchors: a top-level import, and one inside a function (card.py's frontend).
    assert {"websocket_api", "frontend"} <= imported.keys()
    listed = {*MANIFEST["dependencies"], *MANIFEST.get("after_dependencies", [])}
    allowed = HASSFEST_ALLOWED_COMPONENTS | {platform.value for platform in Platform} | listed
    missing = {
        component: sorted(files)
        for component, files in imported.items()
        if component not in allowed
        and component != DOMAIN
        # hassfest lets an integration import X when it has an X platform of its own.
        and not (PACKAGE / f"{component}.py").is_file()
        and not (PACKAGE / component).is_dir()
    }
    assert not missing


def test_dependencies_exist_once() -> None:
    """Each listed dependency is an HA integration, in one list only."""
    dependencies = MANIFEST["dependencies"]
    after = MANIFEST.get("after_dependencies", [])
    assert not set(dependencies) & set(after)
    for domain in (*dependencies, *after):
        assert importlib.util.find_spec(f"homeassistant.components.{domain}"), domain
    assert dependencies == sorted(dependencies)
    assert after == sorted(after)


BRAND = PACKAGE / "brand"


def _png_header(path: Path) -> tuple[int, int, bool]:
    """Return width, height and whether a PNG has alpha, failing if the file is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path.name
    assert data[12:16] == b"IHDR", path.name
    # Colour type 4 (grey + alpha), 6 (RGBA), or a palette (3) with a tRNS chunk.
    alpha = data[25] in {4, 6} or (data[25] == 3 and b"tRNS" in data)
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), alpha


def test_brand_images() -> None:
    """HA 2026.3+ serves brand/ images: icon and logo at the brands repository's sizes."""
    assert BRAND.is_dir()
    names = {path.name for path in BRAND.iterdir()}
    assert {"icon.png", "logo.png"} <= names
    assert names <= ALLOWED_IMAGES  # what HA's brands integration serves
    for name in names:
        width, height, alpha = _png_header(BRAND / name)
        assert alpha, name  # a transparent background
        hidpi = "@2x" in name
        if "icon" in name:
            assert (width, height) == ((512, 512) if hidpi else (256, 256)), name
        else:
            low, high = (256, 512) if hidpi else (128, 256)
            assert low <= min(width, height) <= high, name
            assert width >= height, name  # landscape preferred
