"""Run a real Home Assistant, frontend included, with Shackleton and a dashboard holding its card.

`python -m harness.ha_instance --config-dir DIR --port N --livekit-url URL
--livekit-key KEY --livekit-secret SECRET --openai-url URL` prints `READY <url>` once it
serves, writes the test users' credentials and tokens to DIR/users.json, and runs until
SIGTERM or SIGINT. The entry's rooms are on that LiveKit server, its voice pipeline on that
OpenAI-compatible server, and the home has a template "Kitchen light" exposed to Assist.
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
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.shackleton.const import DEFAULT_OPTIONS, DOMAIN

REPO = Path(__file__).resolve().parents[1]
# One card per mode, each in a room of its own: each conversation has its own agent session.
CARDS = [
    {"type": "custom:shackleton-card", "room": "kitchen", "mode": "hands_free", "captions": True},
    {"type": "custom:shackleton-card", "room": "hall", "mode": "push_to_talk", "captions": True},
]
USERS = {"admin": ("Ada Admin", GROUP_ID_ADMIN), "tablet": ("Kitchen tablet", GROUP_ID_USER)}

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


def _store(config_dir: Path, key: str, version: int, data: dict[str, Any]) -> None:
    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    body = {"version": version, "minor_version": 1, "key": key, "data": data}
    (storage / key).write_text(json.dumps(body))


def prepare(config_dir: Path, port: int) -> None:
    """Write the configuration, finished onboarding and the dashboard, before start."""
    (config_dir / "configuration.yaml").write_text(
        f"""\
homeassistant:
  name: Browser test home
  time_zone: Europe/London
  unit_system: metric
  latitude: 51.5
  longitude: -0.12
http:
  server_host: 127.0.0.1
  server_port: {port}
frontend:
{KITCHEN_LIGHT}logger:
  default: warning
"""
    )
    components = config_dir / "custom_components"
    components.mkdir(exist_ok=True)
    link = components / DOMAIN
    if not link.exists():
        link.symlink_to(REPO / "custom_components" / DOMAIN)
    _store(
        config_dir, "onboarding", 4, {"done": ["user", "core_config", "analytics", "integration"]}
    )
    # The light beside the cards: the screenshot shows what the conversation did.
    cards = [*CARDS, {"type": "tile", "entity": "light.kitchen_light"}]
    _store(config_dir, "lovelace", 1, {"config": {"views": [{"title": "Home", "cards": cards}]}})


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
        client_name=f"browser test ({username})",
        token_type=TOKEN_TYPE_LONG_LIVED_ACCESS_TOKEN,
        access_token_expiration=timedelta(hours=1),
    )
    return user, hass.auth.async_create_access_token(refresh)


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


def _entry(args: argparse.Namespace) -> ConfigEntry:
    """Return the Shackleton entry: rooms on the given LiveKit server, voice on the fake OpenAI."""
    return ConfigEntry(
        version=1,
        minor_version=1,
        domain=DOMAIN,
        title="Shackleton",
        data={
            **pipeline_data(args.openai_url),
            "livekit_url": args.livekit_url,
            "livekit_api_key": args.livekit_key,
            "livekit_api_secret": args.livekit_secret,
        },
        options={
            **DEFAULT_OPTIONS,
            "language": "en",
            "dashboard_rooms": [card["room"] for card in CARDS],
            "card_token_minutes": 5,
        },
        source="user",
        unique_id=None,
        discovery_keys={},  # type: ignore[arg-type]
        subentries_data=None,
    )


async def _run(args: argparse.Namespace) -> int:
    config_dir: Path = args.config_dir
    prepare(config_dir, args.port)
    hass = await bootstrap.async_setup_hass(
        runner.RuntimeConfig(config_dir=str(config_dir), skip_pip=True)
    )
    if hass is None:
        print("Home Assistant did not start", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hass.async_start()
    try:
        users: dict[str, Any] = {}
        for username in USERS:
            user, token = await _add_user(hass, username)
            users[username] = {
                "id": user.id,
                "password": f"{username}-password",
                "token": token,
                "admin": user.is_admin,
            }
        entry = _entry(args)
        await hass.config_entries.async_add(entry)
        await hass.async_block_till_done()
        if entry.state is not ConfigEntryState.LOADED:
            print(f"Shackleton did not load: {entry.state}", file=sys.stderr)
            return 1
        if await entry.runtime_data.voice.async_wait_ready() is None:
            print("Shackleton's voice engine is unavailable", file=sys.stderr)
            return 1
        facts = {"users": users, "entry_id": entry.entry_id}
        await hass.async_add_executor_job((config_dir / "users.json").write_text, json.dumps(facts))
        print(f"READY http://127.0.0.1:{args.port}", flush=True)
        await stop.wait()
        return 0
    finally:
        await hass.async_stop()


def main() -> int:
    """Parse the arguments and run until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--livekit-url", required=True, help="ws://host:port")
    parser.add_argument("--livekit-key", required=True)
    parser.add_argument("--livekit-secret", required=True)
    parser.add_argument("--openai-url", required=True, help="an OpenAI-compatible base URL")
    args = parser.parse_args()
    args.config_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
