"""Fake network peers on 127.0.0.1: LiveKit's twirp API and an OpenAI-compatible API."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import socket
from typing import Any

from aiohttp import web
import jwt
from livekit import api


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    """Serve `app` on a free loopback port; return the runner and its base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def closed_port_url(scheme: str = "http") -> str:
    """Return a loopback URL on a port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"{scheme}://127.0.0.1:{port}"


@dataclass
class FakeLiveKit:
    """LiveKit's RoomService over twirp, verifying real access tokens."""

    keys: dict[str, str] = field(
        default_factory=lambda: {"devkey": "devsecret-devsecret-devsecret-00"}
    )
    rooms: list[str] = field(default_factory=list)
    fail_status: int | None = None
    # A valid key whose grants the server does not accept (LiveKit answers 403).
    forbid: bool = False
    requests: int = 0
    url: str = ""

    def app(self) -> web.Application:
        """Return the aiohttp application."""
        app = web.Application()
        app.router.add_post("/twirp/livekit.RoomService/ListRooms", self._list_rooms)
        return app

    @staticmethod
    def _error(status: int, code: str, msg: str) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    async def _list_rooms(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.fail_status is not None:
            return self._error(self.fail_status, "internal", "injected fault")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        try:
            issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
            claims = api.TokenVerifier(issuer, self.keys[issuer]).verify(token)
        except (jwt.PyJWTError, KeyError):
            return self._error(401, "unauthenticated", "invalid token")
        if self.forbid or not claims.video or not claims.video.room_list:
            return self._error(403, "permission_denied", "no room_list grant")
        api.ListRoomsRequest.FromString(await request.read())
        body = api.ListRoomsResponse(rooms=[api.Room(name=name) for name in self.rooms])
        return web.Response(body=body.SerializeToString(), content_type="application/protobuf")


@dataclass
class FakeOpenAI:
    """An OpenAI-compatible API under /v1, with per-request faults."""

    api_keys: set[str] = field(default_factory=lambda: {"sk-test"})
    models: list[str] = field(
        default_factory=lambda: [
            "gpt-4o-mini-transcribe",
            "gpt-4.1-mini",
            "gpt-4o-mini-tts",
            "gpt-realtime",
            "whisper-large-v3-turbo",
            "llama-3.3-70b-versatile",
        ]
    )
    fail_status: int | None = None
    not_json: bool = False
    bad_shape: bool = False
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    @property
    def base_url(self) -> str:
        """Return the OpenAI-style base URL."""
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        """Return the aiohttp application."""
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        return app

    def _authorized(self, request: web.Request) -> bool:
        if not self.api_keys:
            return True
        return request.headers.get("Authorization", "").removeprefix("Bearer ") in self.api_keys

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append({"path": request.path, "auth": "Authorization" in request.headers})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return web.json_response({"error": {"message": "injected"}}, status=self.fail_status)
        if not self._authorized(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if self.not_json:
            return web.Response(text="<html>not an API</html>", content_type="text/html")
        if self.bad_shape:
            return web.json_response({"object": "list"})
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
        )
