"""Run a real Home Assistant in its own process, with a Shackleton entry served by a worker.

`python -m harness.ha_process --config-dir DIR --port N --openai-url URL [--livekit-url URL]`
prints `READY <url>` once it serves and writes DIR/facts.json (users' tokens, the entry
id) on its first start; with a LiveKit URL (the tests' server and its key), the entry has
that server and its workers take rooms by LiveKit's dispatch. Started again on the same
DIR, it is the same home: the test kills it with SIGKILL and starts it again, as a crash
and a restart would. The home has a template "Kitchen light" exposed to Assist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
import signal
import sys
from typing import Any

from homeassistant import bootstrap, runner
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.shackleton.const import (
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_URL,
    DEFAULT_OPTIONS,
    DOMAIN,
)
from harness.ha_instance import KITCHEN_LIGHT, REPO, _add_user, _store, pipeline_data
from harness.livekit_server import API_KEY, API_SECRET

CONFIG = """\
homeassistant:
  name: Worker test home
  time_zone: Europe/London
  unit_system: metric
  latitude: 51.5
  longitude: -0.12
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
  logs:
    custom_components.shackleton: info
"""


def _entry(openai_url: str, placement: str, livekit_url: str | None) -> ConfigEntry:
    livekit = (
        {}
        if livekit_url is None
        else {
            CONF_LIVEKIT_URL: livekit_url,
            CONF_LIVEKIT_API_KEY: API_KEY,
            CONF_LIVEKIT_API_SECRET: API_SECRET,
        }
    )
    return ConfigEntry(
        version=1,
        minor_version=1,
        domain=DOMAIN,
        title="Shackleton",
        data={**pipeline_data(openai_url), **livekit},
        options={
            **DEFAULT_OPTIONS,
            "language": "en",
            "voice_worker": placement,
            "announce_when_nobody_listens": "queue",
        },
        source="user",
        unique_id=None,
        discovery_keys={},  # type: ignore[arg-type]
        subentries_data=None,
    )


async def start_home(
    config_dir: Path,
    port: int,
    openai_url: str,
    placement: str = "external",
    livekit_url: str | None = None,
) -> tuple[HomeAssistant, dict[str, Any]]:
    """Start (or start again) the home; return it and its facts (tokens, entry id)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "configuration.yaml").write_text(CONFIG.format(port=port) + KITCHEN_LIGHT)
    components = config_dir / "custom_components"
    components.mkdir(exist_ok=True)
    if not (components / DOMAIN).exists():
        (components / DOMAIN).symlink_to(REPO / "custom_components" / DOMAIN)
    facts_file = config_dir / "facts.json"
    first = not facts_file.exists()
    if first:
        _store(config_dir, "onboarding", 4, {"done": ["user", "core_config", "analytics"]})
    hass = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(config_dir=str(config_dir), skip_pip=True)
    )
    if hass is None:
        raise RuntimeError("Home Assistant did not start")
    await hass.async_start()
    if first:
        users = {}
        for username in ("admin", "tablet"):
            user, token = await _add_user(hass, username)
            users[username] = {"id": user.id, "token": token}
        entry = _entry(openai_url, placement, livekit_url)
        await hass.config_entries.async_add(entry)
        await hass.async_block_till_done()
        facts = {"users": users, "entry_id": entry.entry_id}
        await hass.async_add_executor_job(facts_file.write_text, json.dumps(facts))
        await asyncio.sleep(1.5)  # HA saves its stores 1 s after a change: a kill keeps them
    facts = json.loads(await hass.async_add_executor_job(facts_file.read_text))
    entry = hass.config_entries.async_get_entry(facts["entry_id"])
    if entry is None or entry.state is not ConfigEntryState.LOADED:
        await hass.async_stop()
        raise RuntimeError(f"Shackleton did not load: {entry and entry.state}")
    return hass, facts


async def _run(config_dir: Path, port: int, openai_url: str, livekit_url: str | None) -> int:
    try:
        hass, _ = await start_home(config_dir, port, openai_url, livekit_url=livekit_url)
    except RuntimeError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        sys.stdout.write(f"READY http://127.0.0.1:{port}\n")
        sys.stdout.flush()
        await stop.wait()
        return 0
    finally:
        await hass.async_stop()


def main() -> int:
    """Parse the arguments and run until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--openai-url", required=True)
    parser.add_argument("--livekit-url")
    args = parser.parse_args()
    args.config_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(args.config_dir, args.port, args.openai_url, args.livekit_url))


if __name__ == "__main__":
    sys.exit(main())
