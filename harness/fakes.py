"""Fake network peers on 127.0.0.1: LiveKit's twirp API and an OpenAI-compatible API."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field, replace
import functools
import io
import json
import re
import socket
import time
from typing import Any
import wave

from aiohttp import web
import jwt
from livekit import api
import numpy as np

from custom_components.shackleton.tools.api import TOKEN_ARG


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
    rtc_attempts: int = 0
    # (identity, room) of each signed attempt to join a room.
    rtc_joins: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        """Return the aiohttp application."""
        app = web.Application()
        app.router.add_post("/twirp/livekit.RoomService/ListRooms", self._list_rooms)
        # The signalling WebSocket: this fake serves no rooms, it refuses every token.
        app.router.add_get("/rtc{tail:.*}", self._rtc)
        return app

    async def _rtc(self, request: web.Request) -> web.Response:
        self.rtc_attempts += 1
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with contextlib.suppress(jwt.PyJWTError, KeyError):
            issuer = jwt.decode(token, options={"verify_signature": False})["iss"]
            claims = api.TokenVerifier(issuer, self.keys[issuer]).verify(token)
            if claims.video is not None:
                self.rtc_joins.append((claims.identity, claims.video.room))
        return web.Response(status=401, text="invalid token")

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


ToolArguments = dict[str, Any] | Callable[[list[dict[str, Any]]], dict[str, Any]]


def _resolve(arguments: ToolArguments, body: dict[str, Any]) -> dict[str, Any]:
    return arguments(body["messages"]) if callable(arguments) else arguments


def with_confirmation_token(arguments: dict[str, Any]) -> ToolArguments:
    """Repeat a call with the token the last "confirmation required" result gave."""

    def confirmed(messages: list[dict[str, Any]]) -> dict[str, Any]:
        results = [m for m in messages if m["role"] == "tool" and TOKEN_ARG in m["content"]]
        if not results:
            raise AssertionError("no confirmation token in the conversation")
        result = json.loads(results[-1]["content"])
        # HA's own agents send a ToolResult as {"data": ..., "error": ...} (HA 2026.10+).
        data = result["data"] if "data" in result and "error" in result else result
        return {**arguments, TOKEN_ARG: data[TOKEN_ARG]}

    return confirmed


# The faults a provider shows at the network boundary (see FakeOpenAI). "refused" is a
# closed port, so no server serves it; the rest are served by FakeOpenAI.
FAULTS: tuple[str, ...] = (
    "refused",  # nothing listens
    "hang",  # accepts, never sends headers
    "stall",  # headers (and the start of the body), then nothing
    "drip",  # the body at one byte a second
    "cut",  # half the body, then the connection drops
    "401",
    "429",  # with Retry-After: FakeOpenAI.retry_after
    "500",
    "503",
    "sse_error",  # an error event in the middle of the stream
    "bad_json",  # a body (or an SSE data line) that is not JSON
    "bad_sse",  # a line that is not SSE, then an event of the wrong shape
    "empty",  # a well-formed answer with nothing in it
    "bad_tool_args",  # a tool call whose arguments are not JSON
)
STATUS_FAULTS = {"401": 401, "429": 429, "500": 500, "503": 503}
# Mark a request's text with "[fault:<name>]" and the chat endpoint answers with the fault.
FAULT_MARK = re.compile(r"\[fault:([a-z0-9_]+)\]")


def fault_path(stage: str, fault: str) -> str:
    """Return the path prefix under which `stage` ("chat", "stt", "tts", "models") fails."""
    return f"/fault/{stage}/{fault}"


@dataclass
class ChatReply:
    """One scripted chat completion: text, tool calls, or a fault (one of FAULTS)."""

    text: str = ""
    # Arguments, or a function of the request's messages that returns them (a model
    # repeating what an earlier tool result told it, such as a confirmation token).
    tool_calls: list[tuple[str, ToolArguments]] = field(default_factory=list)
    fault: str | None = None


@functools.lru_cache(maxsize=64)
def pcm_tone(seconds: float, rate: int = 24000, freq: float = 220.0) -> bytes:
    """Return 16-bit mono PCM of a quiet tone: audible, deterministic, cheap.

    Vectorised and cached: the fake shares the engine's event loop in tests and
    benchmarks, so its own work must not show up as the engine's latency.
    """
    samples = 3000 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)
    return samples.astype("<i2").tobytes()


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


@dataclass
class FakeOpenAI:
    """An OpenAI-compatible API under /v1, with scripted answers and injected faults.

    Faults come three ways: per stage for the whole server (`stt_fault`, `tts_fault`),
    per scripted chat reply (`ChatReply.fault`), or per request: under
    `fault_path(stage, fault)` + "/v1" one stage fails and the others answer (a base URL
    per fault, so many faults run at once), and a chat message carrying "[fault:<name>]"
    is answered with that fault. A fault named in `healed` is served normally again.
    """

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
    # Chat: replies are taken in order; when none are left, `default_reply` answers.
    chat_script: list[ChatReply] = field(default_factory=list)
    default_reply: str = "Okay."
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    # The `usage` of each streamed answer, sent only when the request asked for it
    # (`stream_options.include_usage`), as OpenAI does.
    chat_usage: list[dict[str, int]] = field(default_factory=list)
    # Speech to text: transcripts in order, then `default_transcript`.
    transcripts: list[str] = field(default_factory=list)
    default_transcript: str = ""
    stt_fault: str | None = None
    stt_audio_seconds: list[float] = field(default_factory=list)
    # Text to speech: seconds of audio per character spoken.
    tts_seconds_per_char: float = 0.03
    tts_fault: str | None = None
    tts_inputs: list[str] = field(default_factory=list)
    # The voice each speech request asked for.
    tts_voices: list[str | None] = field(default_factory=list)
    # Extra latency per request, per endpoint ("chat", "stt", "tts").
    latency: dict[str, float] = field(default_factory=dict)
    # The Retry-After header of a 429, in seconds.
    retry_after: str = "1"
    # Faults served normally again (the provider recovered).
    healed: set[str] = field(default_factory=set)
    # Each faulted request: (stage, fault), in order.
    faulted: list[tuple[str, str]] = field(default_factory=list)
    # "hang" faults wait on this; teardown sets it so no handler outlives the test.
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        """Return the OpenAI-style base URL."""
        return f"{self.url}/v1"

    def fault_url(self, stage: str, fault: str) -> str:
        """Return a base URL under which `stage` fails with `fault` (and the rest answer)."""
        if fault == "refused":
            return f"{closed_port_url()}/v1"
        return f"{self.url}{fault_path(stage, fault)}/v1"

    def app(self) -> web.Application:
        """Return the aiohttp application."""
        app = web.Application()
        for prefix in ("", "/fault/{stage}/{fault}"):
            app.router.add_get(f"{prefix}/v1/models", self._models)
            app.router.add_post(f"{prefix}/v1/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/v1/audio/transcriptions", self._transcriptions)
            app.router.add_post(f"{prefix}/v1/audio/speech", self._speech)
        return app

    def _fault(self, request: web.Request, stage: str, fallback: str | None) -> str | None:
        """Return the fault this request is served with, and note it."""
        fault = fallback
        if request.match_info.get("stage") == stage:
            fault = request.match_info["fault"]
        if fault is None or fault in self.healed:
            return None
        self.faulted.append((stage, fault))
        return fault

    def _authorized(self, request: web.Request) -> bool:
        if not self.api_keys:
            return True
        return request.headers.get("Authorization", "").removeprefix("Bearer ") in self.api_keys

    async def _fail_early(self, fault: str | None) -> web.Response | None:
        """Answer a status fault, or hang before the headers; None to go on."""
        if fault == "hang":
            await self.released.wait()
            return web.Response(status=504)
        if (status := STATUS_FAULTS.get(fault or "")) is None:
            return None
        headers = {"Retry-After": self.retry_after} if status == 429 else {}
        body = {"error": {"message": f"injected {status}", "type": "injected", "code": None}}
        return web.json_response(body, status=status, headers=headers)

    async def _send(
        self,
        request: web.Request,
        chunks: list[bytes],
        fault: str | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        """Send a body in chunks, stalling, dripping or cutting it as the fault says."""
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        if fault == "stall":
            if len(chunks) > 1:
                await response.write(chunks[0])
            await self.released.wait()
            return response
        if fault == "drip":
            for byte in b"".join(chunks):
                if self.released.is_set():
                    return response
                await response.write(bytes([byte]))
                await asyncio.sleep(1)
        elif fault == "cut":
            body = b"".join(chunks[: max(1, len(chunks) // 2)])
            await response.write(body if len(chunks) > 1 else body[: len(body) // 2])
            # Drop the connection mid-body, like a crashed server or a lost network.
            assert request.transport is not None
            request.transport.close()
            return response
        else:
            for chunk in chunks:
                await response.write(chunk)
        await response.write_eof()
        return response

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.requests.append({"path": request.path, "auth": "Authorization" in request.headers})
        fault = self._fault(request, "models", None)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return web.json_response({"error": {"message": "injected"}}, status=self.fail_status)
        if (early := await self._fail_early(fault)) is not None:
            return early
        if not self._authorized(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if self.not_json:
            return web.Response(text="<html>not an API</html>", content_type="text/html")
        if self.bad_shape:
            return web.json_response({"object": "list"})
        listing = {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
        body = json.dumps(listing).encode()
        if fault in ("bad_json", "bad_sse"):
            body = b'{"object": "list", "data": [{"id": '
        elif fault == "empty":
            body = b""
        json_type = {"Content-Type": "application/json"}
        return await self._send(request, [body[:20], body[20:]], fault, json_type)

    async def _gate(self, request: web.Request, endpoint: str) -> web.Response | None:
        """Apply latency and auth; return an error response, or None to go on."""
        if wait := self.latency.get(endpoint):
            await asyncio.sleep(wait)
        if not self._authorized(request):
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.chat_requests.append(body)
        if (refused := await self._gate(request, "chat")) is not None:
            return refused
        reply = self.chat_script.pop(0) if self.chat_script else ChatReply(self.default_reply)
        # A marked message is answered with its fault (not the answers after its tools).
        last = body["messages"][-1] if body["messages"] else {}
        marked = FAULT_MARK.search(str(last.get("content"))) if last.get("role") == "user" else None
        fault = self._fault(request, "chat", marked.group(1) if marked else reply.fault)
        if (early := await self._fail_early(fault)) is not None:
            return early
        if not body.get("stream"):
            return await self._complete(request, body, reply, fault)
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _sse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }
            )

        events = [chunk({"role": "assistant", "content": ""})]
        words = reply.text.split(" ") if reply.text and fault != "empty" else []
        calls = list(reply.tool_calls)
        if fault == "bad_tool_args":
            calls = [("intent__HassTurnOn", {})]
        events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        # Stream faults strike half-way through the words (or before any tool call).
        middle = 1 + len(words) // 2
        if fault == "sse_error":
            error = {"message": "injected", "type": "server_error", "code": None}
            events.insert(middle, _sse({"error": error}))
        elif fault == "bad_json":
            events.insert(middle, b"data: {not json\n\n")
        elif fault == "bad_sse":
            events.insert(middle, b'this is not an SSE line\ndata: {"choices": "none"}\n\n')
        for index, (name, arguments) in enumerate(calls):
            raw = json.dumps(_resolve(arguments, body))
            call = {
                "index": index,
                "id": f"call_{len(self.chat_requests)}_{index}",
                "type": "function",
                "function": {
                    "name": name,
                    # Broken: cut inside a string, as a truncated model output would be.
                    "arguments": '{"name": "Kitch' if fault == "bad_tool_args" else raw,
                },
            }
            events.append(chunk({"tool_calls": [call]}))
        events.append(chunk({}, "tool_calls" if calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            # Figures that follow the request (about 4 characters a token), not constants.
            prompt = max(1, len(json.dumps(body["messages"])) // 4)
            completion = max(1, len(words) + 8 * len(calls))
            usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                     "total_tokens": prompt + completion}  # fmt: skip
            self.chat_usage.append(usage)
            final = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                     "model": body.get("model", "fake"), "choices": [], "usage": usage}  # fmt: skip
            events.append(_sse(final))
        events.append(b"data: [DONE]\n\n")
        return await self._send(request, events, fault, {"Content-Type": "text/event-stream"})

    async def _complete(
        self, request: web.Request, body: dict[str, Any], reply: ChatReply, fault: str | None
    ) -> web.StreamResponse:
        """Answer a request that asked for no stream: one JSON completion, text only."""
        text = "" if fault == "empty" else reply.text
        # As in a stream's usage: figures that follow the request, not constants.
        prompt = max(1, len(json.dumps(body["messages"])) // 4)
        words = max(1, len(text.split()))
        usage = {"prompt_tokens": prompt, "completion_tokens": words,
                 "total_tokens": prompt + words}  # fmt: skip
        self.chat_usage.append(usage)
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        raw = json.dumps(completion).encode()
        if fault in ("bad_json", "bad_sse", "sse_error"):
            raw = raw[: len(raw) // 2]  # a body that is not JSON
        json_type = {"Content-Type": "application/json"}
        return await self._send(request, [raw[:20], raw[20:]], fault, json_type)

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if (refused := await self._gate(request, "stt")) is not None:
            return refused
        fault = self._fault(request, "stt", self.stt_fault)
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        with wave.open(io.BytesIO(upload.file.read())) as wav:
            self.stt_audio_seconds.append(wav.getnframes() / wav.getframerate())
        if (early := await self._fail_early(fault)) is not None:
            return early
        text = self.transcripts.pop(0) if self.transcripts else self.default_transcript
        body = json.dumps({"text": "" if fault == "empty" else text}).encode()
        if fault in ("bad_json", "bad_sse", "sse_error"):
            body = b"{not json"
        json_type = {"Content-Type": "application/json"}
        return await self._send(request, [body[:8], body[8:]], fault, json_type)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if (refused := await self._gate(request, "tts")) is not None:
            return refused
        fault = self._fault(request, "tts", self.tts_fault)
        self.tts_inputs.append(body["input"])
        self.tts_voices.append(body.get("voice"))
        if (early := await self._fail_early(fault)) is not None:
            return early
        audio = (
            b""
            if fault == "empty"
            else pcm_tone(max(0.2, len(body["input"]) * self.tts_seconds_per_char))
        )
        sse = body.get("stream_format") == "sse"
        step = 4800  # 100 ms at 24 kHz, 16-bit
        chunks = [audio[start : start + step] for start in range(0, len(audio), step)]
        if sse:
            chunks = [
                _sse({"type": "speech.audio.delta", "audio": base64.b64encode(c).decode()})
                for c in chunks
            ]
            chunks.append(
                _sse(
                    {"type": "speech.audio.done", "usage": {"input_tokens": 5, "output_tokens": 9}}
                )
            )
        headers = {
            "Content-Type": "text/event-stream" if sse else "audio/pcm",
            "x-request-id": f"req_tts_{len(self.tts_inputs)}",
        }
        return await self._send(request, chunks, fault, headers)


@dataclass
class RealtimeTurn:
    """What the fake realtime model does with one user turn: speak, or call a tool first."""

    reply: str = "Okay."
    # Called first; `reply` is spoken once the client sends the result and asks again.
    tool_call: tuple[str, dict[str, Any]] | None = None
    # A hung model: the turn is transcribed, and no response ever comes.
    silent: bool = False


@dataclass
class FakeRealtime:
    """OpenAI's realtime speech-to-speech WebSocket at /v1/realtime, with a minimal server VAD.

    Appended audio (PCM16 at 24 kHz) louder than `speech_rms`, then `silence_seconds` of
    quieter audio, is one user turn: it is committed, "transcribed" as the next of
    `transcripts`, and answered as the next of `turns`, in the GA event names and shapes
    the plugin parses. Ids are counters, so runs are deterministic.
    """

    api_keys: set[str] = field(default_factory=lambda: {"sk-test"})
    transcripts: list[str] = field(default_factory=list)
    turns: list[RealtimeTurn] = field(default_factory=list)
    reply_seconds: float = 0.5
    speech_rms: float = 500.0
    silence_seconds: float = 0.5
    url: str = ""
    # What happened: the model of each connection, refused handshakes, client events
    # (in order), server events sent, seconds of audio received, the merged session config.
    models: list[str] = field(default_factory=list)
    rejected: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    audio_seconds: float = 0.0
    session: dict[str, Any] = field(default_factory=dict)
    # One of FAULTS: statuses and "hang" strike the handshake (every connection); the
    # rest strike each response. Cleared, the model answers again.
    fault: str | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base_url(self) -> str:
        """Return the OpenAI-style base URL the plugin turns into ws://.../v1/realtime."""
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        """Return the aiohttp application."""
        app = web.Application()
        app.router.add_get("/v1/realtime", self._connect)
        return app

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        if self.fault == "hang":
            await self.released.wait()
            return web.Response(status=504)
        if (status := STATUS_FAULTS.get(self.fault or "")) is not None:
            self.rejected += 1
            headers = {"Retry-After": "1"} if status == 429 else {}
            body = {"error": {"message": f"injected {status}", "type": "injected"}}
            return web.json_response(body, status=status, headers=headers)
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if key not in self.api_keys:
            # Refused before the upgrade, as OpenAI does: the handshake fails with 401.
            self.rejected += 1
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        self.models.append(request.query.get("model", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conversation = _RealtimeConversation(self, ws)
        await conversation.send("session.created", session={"type": "realtime", **self.session})
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                await conversation.handle(json.loads(message.data))
        return ws


class _RealtimeConversation:
    """One connection's state: its items, its VAD, and a tool call awaiting its result."""

    def __init__(self, fake: FakeRealtime, ws: web.WebSocketResponse) -> None:
        self.fake = fake
        self.ws = ws
        self.items: list[str] = []
        self.counter = 0
        self.position_ms = 0.0
        self.speech_item: str | None = None
        self.speech_start_ms = 0.0
        self.silence_ms = 0.0
        self.after_tool: RealtimeTurn | None = None
        self.broke_arguments = False
        # Seconds of audio heard since the last response: what its usage bills as input.
        self.unbilled_seconds = 0.0

    def new_id(self, kind: str) -> str:
        self.counter += 1
        return f"{kind}_{self.counter:04d}"

    async def send(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "event_id": self.new_id("event"), **fields}
        self.fake.sent.append(event)
        await self.ws.send_json(event)

    async def add_item(self, item: dict[str, Any]) -> None:
        previous = self.items[-1] if self.items else None
        self.items.append(item["id"])
        await self.send("conversation.item.added", previous_item_id=previous, item=item)

    async def handle(self, event: dict[str, Any]) -> None:
        """Answer one client event."""
        self.fake.received.append(event)
        kind = event["type"]
        if kind == "session.update":
            self.fake.session.update(event["session"])
            await self.send("session.updated", session={"type": "realtime", **self.fake.session})
        elif kind == "input_audio_buffer.append":
            await self.listen(np.frombuffer(base64.b64decode(event["audio"]), "<i2"))
        elif kind == "conversation.item.create":
            await self.add_item({"object": "realtime.item", **event["item"]})
        elif kind == "response.create":
            await self.respond(event.get("response", {}).get("metadata"))

    async def listen(self, pcm: np.ndarray) -> None:
        """Server VAD: loud audio starts speech; enough quiet afterwards ends the turn."""
        chunk_ms = len(pcm) / 24
        self.fake.audio_seconds += chunk_ms / 1000
        self.unbilled_seconds += chunk_ms / 1000
        self.position_ms += chunk_ms
        rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if pcm.size else 0.0
        loud = rms >= self.fake.speech_rms
        if loud:
            self.silence_ms = 0.0
            if self.speech_item is None:
                self.speech_item = self.new_id("item")
                self.speech_start_ms = self.position_ms - chunk_ms
                await self.send(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=int(self.speech_start_ms),
                    item_id=self.speech_item,
                )
        elif self.speech_item is not None:
            self.silence_ms += chunk_ms
            if self.silence_ms >= self.fake.silence_seconds * 1000:
                await self.user_turn(self.speech_item)

    async def user_turn(self, item_id: str) -> None:
        """Commit the speech as a user item with its transcript, then answer it."""
        self.speech_item = None
        self.broke_arguments = False
        end_ms = int(self.position_ms - self.silence_ms)
        await self.send("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item_id)
        previous = self.items[-1] if self.items else None
        await self.send("input_audio_buffer.committed", item_id=item_id, previous_item_id=previous)
        await self.add_item(
            {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}],
            }
        )
        text = self.fake.transcripts.pop(0) if self.fake.transcripts else ""
        seconds = (end_ms - self.speech_start_ms) / 1000
        await self.send(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": seconds},
        )
        await self.respond(None)

    async def respond(self, metadata: dict[str, Any] | None) -> None:
        """Run one response: the tool call of the next turn, or speech."""
        turn, self.after_tool = self.after_tool, None
        if turn is None:
            turn = self.fake.turns.pop(0) if self.fake.turns else RealtimeTurn()
            if turn.silent:
                return
            if turn.tool_call is not None:
                self.after_tool = turn
        fault = self.fake.fault
        if fault == "sse_error":
            error = {"type": "server_error", "message": "injected", "code": None}
            await self.send("error", error=error)
            return
        if fault in ("bad_json", "bad_sse"):
            await self.ws.send_str("{not json" if fault == "bad_json" else '{"type": 5}')
            return
        response_id = self.new_id("resp")
        response = {
            "id": response_id,
            "object": "realtime.response",
            "metadata": metadata,
            "output_modalities": ["audio"],
            "status": "in_progress",
            "output": [],
        }
        await self.send("response.created", response=response)
        where = {"response_id": response_id, "output_index": 0}
        if fault == "empty":
            done = response | {"status": "completed", "output": [], "usage": self.usage(False)}
            await self.send("response.done", response=done)
            return
        if fault == "bad_tool_args" and not self.broke_arguments and turn.tool_call is None:
            # Once per user turn: the answer after the tool's error is spoken.
            self.broke_arguments = True
            self.after_tool = turn
            turn = replace(turn, tool_call=("intent__HassTurnOn", {}))
        if self.after_tool is not None:
            assert turn.tool_call is not None
            item = await self.call_tool(where, *turn.tool_call, broken=fault == "bad_tool_args")
        else:
            item = await self.speak(where, turn.reply, fault)
            if item is None:
                return
        usage = self.usage(self.after_tool is None)  # a tool call says nothing
        done = response | {"status": "completed", "output": [item], "usage": usage}
        await self.send("response.done", response=done)

    def usage(self, spoken: bool) -> dict[str, Any]:
        """Return a response's usage in OpenAI's shape: audio billed as OpenAI does it.

        Input audio is 10 tokens a second of what was heard since the last response,
        output audio 20 tokens a second of the reply.
        """
        heard, self.unbilled_seconds = round(self.unbilled_seconds * 10), 0.0
        said = round(self.fake.reply_seconds * 20) if spoken else 0
        text_in, text_out = 12 + 3 * len(self.items), 8
        return {
            "input_tokens": heard + text_in,
            "output_tokens": said + text_out,
            "total_tokens": heard + text_in + said + text_out,
            "input_token_details": {
                "audio_tokens": heard,
                "text_tokens": text_in,
                "cached_tokens": 0,
            },
            "output_token_details": {"audio_tokens": said, "text_tokens": text_out},
        }

    async def call_tool(
        self, where: dict[str, Any], name: str, arguments: Any, *, broken: bool = False
    ) -> dict[str, Any]:
        item_id, call_id = self.new_id("item"), self.new_id("call")
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "name": name,
            "call_id": call_id,
            "arguments": "",
            "status": "in_progress",
        }
        await self.send("response.output_item.added", item=item, **where)
        await self.add_item(item)
        raw = '{"name": "Kitch' if broken else json.dumps(arguments)
        item |= {"arguments": raw, "status": "completed"}
        await self.send(
            "response.function_call_arguments.done",
            item_id=item_id,
            call_id=call_id,
            name=name,
            arguments=item["arguments"],
            **where,
        )
        await self.send("response.output_item.done", item=item, **where)
        return item

    async def speak(
        self, where: dict[str, Any], text: str, fault: str | None = None
    ) -> dict[str, Any] | None:
        """Say `text`; None when the fault ("stall", "cut") stopped it half-way."""
        item_id = self.new_id("item")
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        await self.send("response.output_item.added", item=item, **where)
        await self.add_item(item)
        part = {"item_id": item_id, "content_index": 0, **where}
        await self.send("response.content_part.added", part={"type": "audio"}, **part)
        for i, word in enumerate(text.split(" ")):
            delta = word if i == 0 else f" {word}"
            await self.send("response.output_audio_transcript.delta", delta=delta, **part)
        audio = pcm_tone(self.fake.reply_seconds)
        for start in range(0, len(audio), 4800):  # 100 ms chunks
            delta = base64.b64encode(audio[start : start + 4800]).decode()
            await self.send("response.output_audio.delta", delta=delta, **part)
            if start >= len(audio) // 2 and fault == "stall":
                await self.fake.released.wait()
                return None
            if start >= len(audio) // 2 and fault == "cut":
                await self.ws.close()  # the connection drops mid-answer
                return None
        await self.send("response.output_audio.done", **part)
        await self.send("response.output_audio_transcript.done", transcript=text, **part)
        done_part = {"type": "audio", "transcript": text}
        await self.send("response.content_part.done", part=done_part, **part)
        item |= {"status": "completed", "content": [{"type": "output_audio", "transcript": text}]}
        await self.send("response.output_item.done", item=item, **where)
        return item


@dataclass
class FakeOllama:
    """Ollama's chat API (NDJSON streams), for HA's own Ollama conversation agent."""

    chat_script: list[ChatReply] = field(default_factory=list)
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        """Return the aiohttp application."""
        app = web.Application()
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/chat", self._chat)
        return app

    async def _tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": []})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.chat_requests.append(body)
        reply = self.chat_script.pop(0) if self.chat_script else ChatReply("Okay.")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)

        async def send(message: dict[str, Any], done: bool = False) -> None:
            line = {
                "model": body["model"],
                "created_at": "2026-11-22T00:00:00Z",
                "message": {"role": "assistant", "content": "", **message},
                "done": done,
            }
            await response.write(json.dumps(line).encode() + b"\n")

        for word in reply.text.split(" ") if reply.text else []:
            await send({"content": word + " "})
        if reply.tool_calls:
            calls = [
                {"function": {"name": name, "arguments": _resolve(arguments, body)}}
                for name, arguments in reply.tool_calls
            ]
            await send({"tool_calls": calls})
        await send({}, done=True)
        await response.write_eof()
        return response
