"""Run a real Home Assistant with a Shackleton entry, in this process or in one of its own.

`python -m harness.ha_process --config-dir DIR --port N --openai-url URL [--livekit-url URL]
[--placement home_assistant|external] [--card]` prints `READY <url>` once it serves, and
runs until SIGTERM or SIGINT. On its first start it writes DIR/facts.json: the users'
ids, passwords and tokens (an administrator and a non-admin "tablet") and the entry id.
Started again on the same DIR, it is the same home: a test kills it with SIGKILL and
starts it again, as a crash and a restart would.

The entry's voice pipeline is on the given OpenAI-compatible server; with a LiveKit URL
(the tests' server and its key), its rooms are on that server. `--placement` is where the
voice engine runs (`external`, the default here: workers serve the entry). `--card` adds
the frontend and a dashboard holding the card, one per mode, each in a room of its own.
The home has a template "Kitchen light" exposed to Assist.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
import json
from pathlib import Path
import signal
import socket
import sys
from typing import Any

from homeassistant import bootstrap, runner
from homeassistant.auth.const import GROUP_ID_ADMIN, GROUP_ID_USER
from homeassistant.auth.models import TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN, User
from homeassistant.auth.providers.homeassistant import HassAuthProvider
from homeassistant.config_entries import ConfigEntry, ConfigEntryState, ConfigSubentryData
from homeassistant.core import HomeAssistant

from custom_components.shackleton.const import (
    CONF_ANNOUNCE_NOBODY,
    CONF_CARD_TOKEN_MINUTES,
    CONF_DASHBOARD_ROOMS,
    CONF_LANGUAGE,
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_URL,
    CONF_WORKER,
    DEFAULT_ASSISTANT,
    DEFAULT_OPTIONS,
    DOMAIN,
    NOBODY_QUEUE,
    SUBENTRY_ASSISTANT,
    WORKER_EXTERNAL,
    WORKER_PLACEMENTS,
)
from harness.livekit_server import API_KEY, API_SECRET

REPO = Path(__file__).resolve().parents[1]
FACTS = "facts.json"
# One card per mode, each in a room of its own: each conversation has its own agent session.
CARDS = [
    {"type": "custom:shackleton-card", "room": "kitchen", "mode": "hands_free", "captions": True},
    {"type": "custom:shackleton-card", "room": "hall", "mode": "push_to_talk", "captions": True},
]
USERS = {"admin": ("Ada Admin", GROUP_ID_ADMIN), "tablet": ("Kitchen tablet", GROUP_ID_USER)}

CONFIG = """\
homeassistant:
  name: {name}
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

# The home's device, exposed to Assist: a template light switching an input_boolean.
KITCHEN_LIGHT = """\
input_boolean:
  kitchen_power:
template:
  - light:
      - name: Kitchen light
        state: "{{ is_state('input_boolean.kitchen_power', 'on') }}"
        turn_on:
          action: input_boolean.turn_on
          target:
            entity_id: input_boolean.kitchen_power
        turn_off:
          action: input_boolean.turn_off
          target:
            entity_id: input_boolean.kitchen_power
"""


def free_port() -> int:
    """Return a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pipeline_data(openai_url: str) -> dict[str, str]:
    """Return entry data for a voice pipeline on the fake OpenAI-compatible server."""
    return {
        "voice_mode": "pipeline",
        "stt_provider": "openai",
        "llm_provider": "openai",
        "tts_provider": "openai",
        "openai_api_key": "sk-test",
        "openai_base_url": openai_url,
        "stt_model": "gpt-4o-mini-transcribe",
        "llm_model": "gpt-4.1-mini",
        "tts_model": "gpt-4o-mini-tts",
    }


def arguments(
    config_dir: Path,
    port: int,
    openai_url: str,
    *,
    livekit_url: str | None = None,
    placement: str = WORKER_EXTERNAL,
    card: bool = False,
) -> list[str]:
    """Return the interpreter's arguments that run this module as a home with these settings."""
    return [
        "-m",
        "harness.ha_process",
        "--config-dir",
        str(config_dir),
        "--port",
        str(port),
        "--openai-url",
        openai_url,
        "--placement",
        placement,
        *(("--livekit-url", livekit_url) if livekit_url else ()),
        *(("--card",) if card else ()),
    ]


def read_facts(config_dir: Path) -> dict[str, Any]:
    """Return what the home wrote on its first start: users (with tokens) and the entry id."""
    facts: dict[str, Any] = json.loads((config_dir / FACTS).read_text())
    return facts


def _store(config_dir: Path, key: str, version: int, data: dict[str, Any]) -> None:
    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    body = {"version": version, "minor_version": 1, "key": key, "data": data}
    (storage / key).write_text(json.dumps(body))


def _prepare(config_dir: Path, port: int, *, card: bool, first: bool) -> None:
    """Write the configuration and, on the first start, finished onboarding (and the dashboard)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    # The frontend (and all it sets up) only where a browser looks: the other homes start
    # lighter, as they always have.
    name = "Browser test home" if card else "Worker test home"
    frontend = "frontend:\n" if card else ""
    (config_dir / "configuration.yaml").write_text(
        CONFIG.format(name=name, port=port) + frontend + KITCHEN_LIGHT
    )
    components = config_dir / "custom_components"
    components.mkdir(exist_ok=True)
    if not (components / DOMAIN).exists():
        (components / DOMAIN).symlink_to(REPO / "custom_components" / DOMAIN)
    if not first:
        return
    _store(
        config_dir, "onboarding", 4, {"done": ["user", "core_config", "analytics", "integration"]}
    )
    if card:
        # The light beside the cards: the screenshot shows what the conversation did.
        cards = [*CARDS, {"type": "tile", "entity": "light.kitchen_light"}]
        views = [{"title": "Home", "cards": cards}]
        _store(config_dir, "lovelace", 1, {"config": {"views": views}})


async def _add_user(hass: HomeAssistant, username: str) -> tuple[User, str]:
    name, group = USERS[username]
    provider = next(p for p in hass.auth.auth_providers if isinstance(p, HassAuthProvider))
    await provider.async_initialize()
    await provider.async_add_auth(username, f"{username}-password")
    credentials = await provider.async_get_or_create_credentials({"username": username})
    user = await hass.auth.async_create_user(name, group_ids=[group], local_only=False)
    await hass.auth.async_link_user(user, credentials)
    refresh = await hass.auth.async_create_refresh_token(
        user,
        client_name=f"test ({username})",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(hours=1),
    )
    return user, hass.auth.async_create_access_token(refresh)


def _entry(openai_url: str, livekit_url: str | None, placement: str, *, card: bool) -> ConfigEntry:
    """Return the Shackleton entry: voice on the fake OpenAI, rooms on the LiveKit server."""
    livekit = (
        {}
        if livekit_url is None
        else {
            CONF_LIVEKIT_URL: livekit_url,
            CONF_LIVEKIT_API_KEY: API_KEY,
            CONF_LIVEKIT_API_SECRET: API_SECRET,
        }
    )
    dashboard = (
        {CONF_DASHBOARD_ROOMS: [c["room"] for c in CARDS], CONF_CARD_TOKEN_MINUTES: 5}
        if card
        else {}
    )
    return ConfigEntry(
        version=2,
        minor_version=1,
        domain=DOMAIN,
        title="Shackleton",
        data={**pipeline_data(openai_url), **livekit},
        options={
            **DEFAULT_OPTIONS,
            CONF_WORKER: placement,
            CONF_ANNOUNCE_NOBODY: NOBODY_QUEUE,
            **dashboard,
        },
        source="user",
        unique_id=None,
        discovery_keys={},  # type: ignore[arg-type]
        subentries_data=[
            ConfigSubentryData(
                data={**DEFAULT_ASSISTANT, CONF_LANGUAGE: "en"},
                subentry_type=SUBENTRY_ASSISTANT,
                title="Shackleton",
                unique_id=None,
            )
        ],
    )


async def _first_start(hass: HomeAssistant, config_dir: Path, entry: ConfigEntry) -> None:
    """Add the users and the entry; write the facts."""
    users: dict[str, Any] = {}
    for username in USERS:
        user, token = await _add_user(hass, username)
        users[username] = {
            "id": user.id,
            "password": f"{username}-password",
            "token": token,
            "admin": user.is_admin,
        }
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    facts = {"users": users, "entry_id": entry.entry_id}
    await hass.async_add_executor_job((config_dir / FACTS).write_text, json.dumps(facts))
    await asyncio.sleep(1.5)  # HA saves its stores 1 s after a change: a kill keeps them


async def _set_up(
    hass: HomeAssistant, config_dir: Path, entry: ConfigEntry | None
) -> dict[str, Any]:
    """Add the users and `entry` (on the first start); return the facts once the entry serves."""
    if entry is not None:
        await _first_start(hass, config_dir, entry)
    facts: dict[str, Any] = json.loads(
        await hass.async_add_executor_job((config_dir / FACTS).read_text)
    )
    loaded = hass.config_entries.async_get_entry(facts["entry_id"])
    if loaded is None or loaded.state is not ConfigEntryState.LOADED:
        raise RuntimeError(f"Shackleton did not load: {loaded and loaded.state}")
    # In Home Assistant, its engine has loaded (external workers come when they will).
    if not await loaded.runtime_data.voice.async_ready():
        raise RuntimeError("Shackleton's voice engine is unavailable")
    return facts


async def start_home(
    config_dir: Path,
    port: int,
    openai_url: str,
    *,
    placement: str = WORKER_EXTERNAL,
    livekit_url: str | None = None,
    card: bool = False,
) -> tuple[HomeAssistant, dict[str, Any]]:
    """Start (or start again) the home; return it and its facts (users' tokens, entry id).

    With the engine in Home Assistant, return once it is ready (or raise RuntimeError).
    """
    first = not (config_dir / FACTS).exists()
    await asyncio.to_thread(_prepare, config_dir, port, card=card, first=first)
    hass = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(config_dir=str(config_dir), skip_pip=True)
    )
    if hass is None:
        raise RuntimeError("Home Assistant did not start")
    await hass.async_start()
    entry = _entry(openai_url, livekit_url, placement, card=card) if first else None
    try:
        facts = await _set_up(hass, config_dir, entry)
    except BaseException:
        await hass.async_stop()
        raise
    return hass, facts


async def _run(args: argparse.Namespace) -> int:
    # Before the start: a SIGTERM while it starts stops it cleanly once it has.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        hass, _ = await start_home(
            args.config_dir,
            args.port,
            args.openai_url,
            placement=args.placement,
            livekit_url=args.livekit_url,
            card=args.card,
        )
    except RuntimeError as err:
        sys.stderr.write(f"{err}\n")
        return 1
    try:
        sys.stdout.write(f"READY http://127.0.0.1:{args.port}\n")
        sys.stdout.flush()
        await stop.wait()
        return 0
    finally:
        await hass.async_stop()


def main() -> int:
    """Parse the arguments and run until stopped."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--openai-url", required=True, help="an OpenAI-compatible base URL")
    parser.add_argument("--livekit-url", help="ws://host:port, a server with the tests' key")
    parser.add_argument("--placement", choices=WORKER_PLACEMENTS, default=WORKER_EXTERNAL)
    parser.add_argument("--card", action="store_true", help="the frontend and the cards")
    return asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
