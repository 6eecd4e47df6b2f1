"""The card in Debian's Chromium against a real Home Assistant: log in, render, edit, connect."""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp
from livekit import api
import pytest

from .ha_instance import free_port

pytestmark = pytest.mark.browser
HERE = Path(__file__).parent
REPO = HERE.parents[1]


class HomeAssistantProcess:
    """A Home Assistant started by `ha_instance` in its own process."""

    def __init__(self, config_dir: Path) -> None:
        """Start it on a free port; `wait_ready` waits for it to serve."""
        self.port = free_port()
        self.config_dir = config_dir
        self.log = config_dir.parent / "ha.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.browser.ha_instance",
             "--config-dir", str(config_dir), "--port", str(self.port)],
            cwd=REPO, stdout=self._log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        """Wait for READY and return what it wrote about its users and entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "READY" in self.log.read_text():
                return dict(json.loads((self.config_dir / "users.json").read_text()))
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"Home Assistant did not start:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """Return the end of its output."""
        return "\n".join(self.log.read_text().splitlines()[-lines:])

    def stop(self) -> int | None:
        """Stop it as systemd would: SIGTERM, then SIGKILL after 30 s."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = None
        self._log_file.close()
        return code


@pytest.fixture
def home(tmp_path: Path, socket_enabled: None) -> Iterator[HomeAssistantProcess]:
    """Run Home Assistant for one test."""
    process = HomeAssistantProcess(tmp_path / "config")
    try:
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"Home Assistant did not stop cleanly ({code}):\n{process.tail()}"


def _run_card(home: HomeAssistantProcess, user: str, password: str, shot: Path) -> dict[str, Any]:
    env = {**os.environ, "HA_URL": home.url, "HA_USER": user, "HA_PASSWORD": password,
           "SCREENSHOT": str(shot)}  # fmt: skip
    node = shutil.which("node")
    assert node is not None, "Node.js is needed"
    done = subprocess.run(
        [node, str(HERE / "card.mjs")],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n--- Home Assistant:\n{home.tail()}"
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def test_card_in_a_real_browser(home: HomeAssistantProcess, tmp_path: Path) -> None:
    """A non-admin logs in, sees the card, edits it, and gets a token for their room only."""
    facts = home.wait_ready()
    tablet = facts["users"]["tablet"]
    assert not tablet["admin"]
    shot = Path(os.environ.get("SHACKLETON_SCREENSHOT", tmp_path / "card.png"))
    result = _run_card(home, "tablet", tablet["password"], shot)
    # The README's timings: `scripts/browser -s` shows them.
    print(f"card.mjs seconds from opening the page: {result.get('seconds')}")  # noqa: T201

    # HA's app before the card (the login page may load the app once more before it).
    order = result["load_order"]
    assert "card" in order
    assert "app" in order[: order.index("card")]
    assert result["rendered"] is True
    assert result["title"] == "Shackleton · kitchen"
    assert result["editor_config"] == {
        "type": "custom:shackleton-card",
        "room": "office",
        "mode": "push_to_talk",
        "captions": True,
    }
    # The token the browser got, checked here with the server's secret.
    assert result["token_status"] == 200
    body = result["token_body"]
    assert body["url"] == facts["livekit_url"]
    verifier = api.TokenVerifier(facts["livekit_api_key"], facts["livekit_api_secret"])
    claims = api.TokenVerifier.verify(verifier, body["token"])
    assert claims.identity == body["identity"] == f"ha-{tablet['id']}"
    assert claims.name == "Kitchen tablet"
    assert claims.video is not None
    assert claims.video.room == body["room"] == "kitchen"
    assert claims.video.room_join
    assert not claims.video.room_admin
    assert not claims.video.room_list
    # Nobody listens on that port: the card says so, and Disconnect stops its retries.
    assert result["error_code"] == "livekit_unreachable"
    assert facts["livekit_url"] in result["error_text"]
    assert result["status_state"] == "error"
    assert result["after_disconnect"] == "idle"
    assert shot.stat().st_size > 10_000

    # The same endpoint, asked directly: a room the options do not allow, and no login.
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {tablet['token']}"}
        url = f"{home.url}/api/shackleton/token"
        async with session.post(url, json={"room": "office"}, headers=headers) as response:
            assert response.status == 403
            assert (await response.json())["code"] == "room_not_allowed"
        async with session.post(url, json={"room": "kitchen"}) as response:
            assert response.status == 401


def test_browser_tools_are_present() -> None:
    """Say plainly what is missing rather than fail obscurely."""
    assert Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists(), (
        "apt-get install chromium"
    )
    assert shutil.which("node"), "Node.js is needed"
    assert (HERE / "node_modules" / "playwright-core").is_dir(), "npm ci in tests/browser"
