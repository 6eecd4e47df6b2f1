"""Boot a real Home Assistant with Shackleton on offline defaults and show what a user sees.

Run with `scripts/demo`. Exits non-zero if Shackleton does not load.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
import shutil
import sys
import tempfile
from typing import Any

from homeassistant import bootstrap, runner
from homeassistant.components.diagnostics import async_redact_data
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.helpers.translation import async_get_translations

from custom_components.shackleton.const import DEFAULT_OPTIONS, DOMAIN, REDACT_KEYS
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
"""

# What a user has after choosing "No LiveKit server yet" and a local OpenAI-compatible
# server (Ollama on its usual port); nothing here reaches the internet.
ENTRY_DATA = {
    "voice_mode": "pipeline",
    "stt_provider": "compatible",
    "llm_provider": "compatible",
    "tts_provider": "compatible",
    "compatible_base_url": "http://127.0.0.1:11434/v1",
    "stt_model": "whisper",
    "llm_model": "qwen3:4b",
    "tts_model": "kokoro",
}


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
        entry = ConfigEntry(
            version=1,
            minor_version=1,
            domain=DOMAIN,
            title="Shackleton",
            data=ENTRY_DATA,
            options={**DEFAULT_OPTIONS, "language": hass.config.language},
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
        engine = await entry.runtime_data.voice.async_wait_ready()
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
        ok = await hass.config_entries.async_unload(entry.entry_id)
        print(f"\nUnloaded cleanly: {ok}")
        ours = [report for report in blocking.reports if DOMAIN in report or "livekit" in report]
        total = len(blocking.reports)
        print(f"Blocking calls on the event loop: {total} ({len(ours)} from Shackleton)")
        for report in blocking.reports:
            print("  " + report.splitlines()[0][:300])
        return 0 if ok and not ours else 1
    finally:
        await hass.async_stop()


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
