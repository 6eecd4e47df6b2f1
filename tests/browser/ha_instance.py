"""Run a real Home Assistant, frontend included, with Shackleton and a dashboard holding its card.

`python -m tests.browser.ha_instance --config-dir DIR --port N` prints `READY <url>` once
it serves, writes the test users' credentials and tokens to DIR/users.json, and runs
until SIGTERM or SIGINT. No LiveKit server runs here: the entry's server URL points at a
closed port, as a browser would find it when the server is down.
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

REPO = Path(__file__).resolve().parents[2]
ROOM = "kitchen"
CARD = {"type": "custom:shackleton-card", "room": ROOM, "mode": "hands_free", "captions": True}
LIVEKIT_KEY = "browserkey"
LIVEKIT_SECRET = "browser-secret-browser-secret-0001"
USERS = {"admin": ("Ada Admin", GROUP_ID_ADMIN), "tablet": ("Kitchen tablet", GROUP_ID_USER)}


def free_port() -> int:
    """Return a port nothing listens on (also used as the dead LiveKit server)."""
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
logger:
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
    _store(config_dir, "lovelace", 1, {"config": {"views": [{"title": "Home", "cards": [CARD]}]}})


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


async def _run(config_dir: Path, port: int) -> int:
    prepare(config_dir, port)
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
        livekit_url = f"ws://127.0.0.1:{free_port()}"
        entry = ConfigEntry(
            version=1,
            minor_version=1,
            domain=DOMAIN,
            title="Shackleton",
            data={
                "voice_mode": "pipeline",
                "stt_provider": "openai",
                "llm_provider": "openai",
                "tts_provider": "openai",
                "openai_api_key": "sk-browser-test",
                # Nothing answers there; no turn is taken in this test.
                "openai_base_url": f"http://127.0.0.1:{free_port()}/v1",
                "stt_model": "gpt-4o-mini-transcribe",
                "llm_model": "gpt-4.1-mini",
                "tts_model": "gpt-4o-mini-tts",
                "livekit_url": livekit_url,
                "livekit_api_key": LIVEKIT_KEY,
                "livekit_api_secret": LIVEKIT_SECRET,
            },
            options={
                **DEFAULT_OPTIONS,
                "language": "en",
                "dashboard_rooms": [ROOM],
                "card_token_minutes": 5,
            },
            source="user",
            unique_id=None,
            discovery_keys={},  # type: ignore[arg-type]
            subentries_data=None,
        )
        await hass.config_entries.async_add(entry)
        await hass.async_block_till_done()
        if entry.state is not ConfigEntryState.LOADED:
            print(f"Shackleton did not load: {entry.state}", file=sys.stderr)
            return 1
        if await entry.runtime_data.voice.async_wait_ready() is None:
            print("Shackleton's voice engine is unavailable", file=sys.stderr)
            return 1
        facts = {
            "users": users,
            "entry_id": entry.entry_id,
            "livekit_url": livekit_url,
            "livekit_api_key": LIVEKIT_KEY,
            "livekit_api_secret": LIVEKIT_SECRET,
        }
        await hass.async_add_executor_job((config_dir / "users.json").write_text, json.dumps(facts))
        print(f"READY http://127.0.0.1:{port}", flush=True)
        await stop.wait()
        return 0
    finally:
        await hass.async_stop()


def main() -> int:
    """Parse the arguments and run until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    args.config_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(args.config_dir, args.port))


if __name__ == "__main__":
    sys.exit(main())
