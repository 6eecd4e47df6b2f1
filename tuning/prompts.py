"""Run a suite of scripted requests through Shackleton's real agent, in text mode.

Each case is an utterance and what should happen: the tool calls (with the arguments
that matter) or a refusal. The agent is the voice engine's own (`VoiceEngine`, its
instructions, its tools and their JSON schemas, LiveKit's `AgentSession.run`), talking
to the language model over the OpenAI API. The home is a rehearsal: `RehearsalHome`
offers the tools a real Home Assistant gave (a snapshot in `notebooks/data/tools.json`),
checks each call against their schemas and the suite's entities, and records it; nothing
in a real home is touched.

Without an API key the model is `OfflineLLM`, a deterministic stand-in served over the
same API on 127.0.0.1. It has two "models":

* `assist-sentences` matches the request with Home Assistant's own sentence templates
  (hassil and home-assistant-intents, what Assist does without an LLM) and calls the
  tool of the matched intent with its slots;
* `keywords` calls the tool whose name's words appear in the request, on the entity
  whose name does: a naive baseline.

Neither reads the instructions; comparing instructions needs a real model.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
from pathlib import Path
import re
import time
from typing import Any
import uuid

from aiohttp import web
import yaml

from custom_components.shackleton.voice.home import (
    HomeContext,
    RoomTools,
    ToolCallError,
    ToolSpec,
    TurnReport,
    Usage,
)

DATA = Path(__file__).parent.parent / "notebooks" / "data"
OFFLINE_MODELS = ("assist-sentences", "keywords")


@dataclass(frozen=True, slots=True)
class Entity:
    """Something in the rehearsal home."""

    name: str
    domain: str
    area: str = ""


@dataclass(frozen=True, slots=True)
class Case:
    """A request and what should come of it (no calls expected means a refusal)."""

    say: str
    expect: tuple[tuple[dict[str, Any], ...], ...]  # alternatives, each a list of calls
    refuse: bool = False


@dataclass(frozen=True, slots=True)
class Suite:
    """The rehearsal home and the cases."""

    entities: tuple[Entity, ...]
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One side of the comparison: a model and the instructions it gets."""

    label: str
    model: str
    instructions: str = ""


class SuiteError(ValueError):
    """The suite file is not valid; the message says where."""


def load_suite(path: Path) -> Suite:
    """Read a suite (YAML): `home.entities` and `cases` (see notebooks/prompt_suite.yaml)."""
    raw = yaml.safe_load(path.read_text())
    try:
        entities = tuple(Entity(**item) for item in raw["home"]["entities"])
        cases = []
        for number, item in enumerate(raw["cases"], 1):
            if item.get("expect", "refusal") == "refusal" and "expect_any" not in item:
                cases.append(Case(item["say"], (), refuse=True))
                continue
            alternatives = item["expect_any"] if "expect_any" in item else [item["expect"]]
            for calls in alternatives:
                if not isinstance(calls, list) or not all(
                    isinstance(call, dict) and "tool" in call for call in calls
                ):
                    raise SuiteError(
                        f"case {number}: expect is 'refusal' or a list of {{tool, args}}"
                    )
            cases.append(Case(item["say"], tuple(tuple(calls) for calls in alternatives)))
    except (KeyError, TypeError) as err:
        raise SuiteError(f"{path.name}: missing or wrong field ({err})") from err
    return Suite(entities, tuple(cases))


def load_tools(path: Path = DATA / "tools.json") -> list[ToolSpec]:
    """Return the tools of the snapshot taken from a real Home Assistant."""
    return [ToolSpec(**spec) for spec in json.loads(path.read_text())["tools"]]


def load_guide(path: Path = DATA / "tools.json") -> str:
    """Return the snapshot's guide to the tools (the LLM API's prompt)."""
    return str(json.loads(path.read_text())["guide"])


def guide_for(guide: str, entities: tuple[Entity, ...]) -> str:
    """Return the guide with its static context listing the suite's home, not the snapshot's.

    Home Assistant lists the exposed entities under "Static Context:" as YAML items.
    """
    items = "".join(
        f"- names: {e.name}\n  domain: {e.domain}\n" + (f"  areas: {e.area}\n" if e.area else "")
        for e in entities
    )
    return re.sub(r"(Static Context:[^\n]*\n)(?:[- ] .*\n)*", lambda m: m.group(1) + items, guide)


@dataclass(slots=True)
class RehearsalHome:
    """A `Home` whose tools check and record calls instead of acting."""

    entities: tuple[Entity, ...]
    specs: list[ToolSpec]
    guide: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def context(self, room: str) -> HomeContext:
        """Return a fixed context, so every run sees the same instructions."""
        from datetime import UTC, datetime

        return HomeContext("Rehearsal home", "en", "UTC", datetime(2026, 5, 4, 9, 30, tzinfo=UTC))

    async def room_tools(self, room: str) -> RoomTools:
        """Return the snapshot's tools and guide, as Home Assistant gives them."""
        return RoomTools(self.specs, self.guide if self.specs else "")

    async def call_tool(
        self, room: str, name: str, arguments: dict[str, Any], *, turn: int = 0
    ) -> Any:
        """Check a call against the tool's schema and the home, record it, report success."""
        self.calls.append((name, arguments))
        spec = next((s for s in self.specs if s.name == name), None)
        if spec is None:
            raise ToolCallError(f"no tool named {name}")
        properties = spec.parameters.get("properties", {})
        unknown = sorted(set(arguments) - set(properties))
        missing = sorted(set(spec.parameters.get("required", [])) - set(arguments))
        if unknown or missing:
            raise ToolCallError(f"unknown arguments {unknown}, missing {missing}")
        if name == "homeassistant__GetLiveContext":
            lines = [f"- {e.name} ({e.domain}, {e.area or 'no area'})" for e in self.entities]
            return {"success": True, "result": "Live context:\n" + "\n".join(lines)}
        names = {e.name.casefold() for e in self.entities}
        areas = {e.area.casefold() for e in self.entities if e.area}
        if "name" in arguments and str(arguments["name"]).casefold() not in names:
            raise ToolCallError(f"no device or entity named {arguments['name']}")
        if "area" in arguments and str(arguments["area"]).casefold() not in areas:
            raise ToolCallError(f"no area named {arguments['area']}")
        return {"success": True, "speech": "Done."}

    async def converse(
        self, room: str, text: str, agent_id: str, *, turn: int = 0
    ) -> tuple[str, list[str]]:
        """Not offered: the rehearsal has no conversation agent."""
        raise ToolCallError("no conversation agent in a rehearsal")

    async def transcribe(self, engine: str, pcm: bytes, rate: int, language: str) -> str:
        """Not offered: the suite is text."""
        raise ToolCallError("no speech in a rehearsal")

    async def synthesize(self, engine: str, text: str, language: str) -> tuple[str, bytes]:
        """Not offered: the suite is text."""
        raise ToolCallError("no speech in a rehearsal")

    def report_state(self, room: str, state: str) -> None:
        """Nothing to show."""

    def report_turn(self, report: TurnReport) -> None:
        """Nothing to show."""

    def report_error(self, room: str, source: str, message: str, *, recoverable: bool) -> None:
        """Keep faults for the results."""
        self.errors.append(f"{source}: {message}")

    def report_usage(self, usage: Usage) -> None:
        """Nothing to count."""


# The offline models ---------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.casefold()))


def _keywords(text: str, tools: list[dict[str, Any]], entities: tuple[Entity, ...]) -> Any:
    said = _words(text)
    entity = next((e for e in entities if _words(e.name) <= said), None)
    for tool in tools:
        name = tool["function"]["name"]
        intent = name.rpartition("__")[2].removeprefix("Hass")  # intent__HassTurnOn: TurnOn
        words = {w.casefold() for w in re.findall(r"[A-Z][a-z]+", intent)}
        properties = tool["function"].get("parameters", {}).get("properties", {})
        if words and words <= said and entity is not None and "name" in properties:
            return name, {"name": entity.name}
    return None


class _Sentences:
    """Home Assistant's English sentence templates, with the suite's names and areas."""

    def __init__(self, entities: tuple[Entity, ...]) -> None:
        from hassil.intents import Intents, SlotList, TextSlotList
        from home_assistant_intents import get_intents

        intents = get_intents("en")
        if intents is None:
            raise RuntimeError("home-assistant-intents has no English sentences")
        self.intents = Intents.from_dict(intents)
        self.lists: dict[str, SlotList] = {
            "name": TextSlotList.from_tuples(
                [(e.name, e.name, {"domain": e.domain}) for e in entities]
            ),
            "area": TextSlotList.from_tuples(
                [(area, area) for area in sorted({e.area for e in entities if e.area})]
            ),
            "floor": TextSlotList.from_tuples([]),
        }

    def match(self, text: str, tools: list[dict[str, Any]]) -> Any:
        from hassil.errors import HassilError
        from hassil.recognize import recognize_all

        # HA names its tools `<integration>__<intent>` (HA 2026.8+): match on the intent.
        offered = {tool["function"]["name"].rpartition("__")[2]: tool["function"] for tool in tools}
        try:
            results = list(recognize_all(text, self.intents, slot_lists=self.lists))
        except HassilError:  # a template needs a list this home lacks: no match
            return None
        for result in results:
            tool = offered.get(result.intent.name)
            if tool is None:
                continue
            properties = tool.get("parameters", {}).get("properties", {})
            arguments: dict[str, Any] = {}
            for slot, entity in result.entities.items():
                if slot not in properties:
                    continue
                value = entity.value
                if properties[slot].get("type") == "array" and not isinstance(value, list):
                    value = [value]
                arguments[slot] = value
            return tool["name"], arguments
        return None


class OfflineLLM:
    """A deterministic language model behind the OpenAI chat API (see the module)."""

    def __init__(self, entities: tuple[Entity, ...]) -> None:
        """Know the suite's entities (a real model would learn them from the tools)."""
        self.entities = entities
        self._sentences: _Sentences | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> str:
        """Listen on 127.0.0.1 and return the base URL."""
        self._sentences = await asyncio.get_running_loop().run_in_executor(
            None, _Sentences, self.entities
        )
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    async def aclose(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    def answer(
        self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> Any:
        """Return ("tool", name, arguments) or ("text", reply) for the conversation."""
        last = messages[-1] if messages else {}
        if last.get("role") == "tool":
            return ("text", "Done." if '"success": true' in str(last.get("content")) else
                    "Sorry, that didn't work.")  # fmt: skip
        content = last.get("content")
        text = content if isinstance(content, str) else " ".join(
            part.get("text", "") for part in content or [] if isinstance(part, dict)
        )  # fmt: skip
        if model == "keywords":
            call = _keywords(text, tools, self.entities)
        elif model == "assist-sentences" and self._sentences is not None:
            call = self._sentences.match(text, tools)
        else:
            return ("text", f"The offline model {model!r} does not exist.")
        if call is None:
            return ("text", "Sorry, I can't help with that.")
        return ("tool", *call)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        answer = self.answer(
            body.get("model", ""), body.get("messages", []), body.get("tools") or []
        )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created, model = int(time.time()), body.get("model", "")

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {"id": "offline", "object": "chat.completion.chunk", "created": created,
                     "model": model, "choices": choices, **extra}  # fmt: skip
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        if answer[0] == "tool":
            function = {"name": answer[1], "arguments": json.dumps(answer[2])}
            call = {"index": 0, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function",
                    "function": function}  # fmt: skip
            delta: dict[str, Any] = {"role": "assistant", "tool_calls": [call]}
            finish, reply = "tool_calls", json.dumps(answer[2])
        else:
            delta, finish, reply = {"role": "assistant", "content": answer[1]}, "stop", answer[1]
        await send([{"index": 0, "delta": delta, "finish_reason": None}])
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
        # Estimated at 4 characters a token: the offline model has no tokenizer.
        prompt = len(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools") or []))
        usage = {"prompt_tokens": prompt // 4, "completion_tokens": max(1, len(reply) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


# Running and scoring ----------------------------------------------------------------


@dataclass(slots=True)
class CaseResult:
    """What one candidate did with one case."""

    candidate: str
    say: str
    expected: str
    calls: list[tuple[str, dict[str, Any]]]
    reply: str
    correct: bool
    refused: bool
    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Why the provider gave no answer (a fault), or "" when it answered.
    error: str = ""

    def row(self) -> dict[str, Any]:
        """Return the result as a table row."""
        called = "; ".join(
            f"{name} {json.dumps(args, sort_keys=True)}" for name, args in self.calls
        )
        return {
            "candidate": self.candidate,
            "say": self.say,
            "expected": self.expected,
            "called": called or "(nothing)",
            "reply": self.reply or self.error,
            "correct": "yes" if self.correct else ("NO" if not self.error else "error"),
            "seconds": round(self.seconds, 2),
            "tokens": self.prompt_tokens + self.completion_tokens,
        }


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return isinstance(actual, list) and sorted(map(str, expected)) == sorted(map(str, actual))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.casefold() == actual.casefold()
    return bool(expected == actual)


def judge(case: Case, calls: list[tuple[str, dict[str, Any]]]) -> bool:
    """Return whether the calls are what the case expects.

    Every expected call must be made with the expected arguments (others may be given
    too); homeassistant__GetLiveContext (looking around) is allowed anywhere. A refusal is no call.
    """
    acting = [(name, args) for name, args in calls if name != "homeassistant__GetLiveContext"]
    if case.refuse:
        return not acting
    return any(_matches(expected, acting) for expected in case.expect)


def _matches(
    expected: tuple[dict[str, Any], ...], acting: list[tuple[str, dict[str, Any]]]
) -> bool:
    if len(acting) != len(expected):
        return False
    left = list(acting)
    for want in expected:
        found = next(
            (
                call
                for call in left
                if call[0] == want["tool"]
                and all(_same(v, call[1].get(k)) for k, v in (want.get("args") or {}).items())
            ),
            None,
        )
        if found is None:
            return False
        left.remove(found)
    return True


def describe(case: Case) -> str:
    """Return what a case expects, for tables."""
    if case.refuse:
        return "refusal"
    return " or ".join(
        "; ".join(f"{c['tool']} {json.dumps(c.get('args') or {}, sort_keys=True)}" for c in calls)
        for calls in case.expect
    )


async def run_suite(
    suite: Suite,
    candidates: list[Candidate],
    *,
    base_url: str,
    api_key: str = "offline",
    kind: str = "openai",
    specs: list[ToolSpec] | None = None,
    guide: str | None = None,
) -> list[CaseResult]:
    """Run every case with every candidate, each case in a fresh session."""
    from livekit.agents import ChatMessageEvent, FunctionCallEvent, llm
    from livekit.plugins import silero

    from custom_components.shackleton.voice.engine import VoiceEngine
    from custom_components.shackleton.voice.settings import ProviderSettings, VoiceSettings

    vad = silero.VAD.load()
    specs = specs if specs is not None else load_tools()
    guide = load_guide() if guide is None else guide
    results: list[CaseResult] = []
    for candidate in candidates:
        home = RehearsalHome(suite.entities, specs, guide_for(guide, suite.entities))
        provider = ProviderSettings(kind, candidate.model, base_url, api_key)  # type: ignore[arg-type]
        # Text only: speech-to-text and text-to-speech are built but never called.
        unused = ProviderSettings("compatible", "unused", base_url, api_key)
        settings = VoiceSettings(
            mode="pipeline",
            llm=provider,
            stt=unused,
            tts=unused,
            instructions=candidate.instructions,
        )
        engine = await VoiceEngine.async_create(home, settings, vad=vad)
        try:
            model = engine.models.llm
            if not isinstance(model, llm.LLM):
                raise TypeError("the suite needs a text model, not a realtime one")
            for number, case in enumerate(suite.cases):
                home.calls.clear()
                room = await engine.async_start_session(f"case-{number}")
                if room.session is None:
                    raise RuntimeError("the session did not start")
                usage = {"prompt": 0, "completion": 0}

                def count(metrics: Any, usage: dict[str, int] = usage) -> None:
                    usage["prompt"] += metrics.prompt_tokens
                    usage["completion"] += metrics.completion_tokens

                # The model reports each request's usage (the provider's own count).
                model.on("metrics_collected", count)
                started = time.perf_counter()
                events, errors = await _run_case(
                    room.session, case.say, 2 * settings.limits.turn_deadline
                )
                seconds = time.perf_counter() - started
                replies = [
                    event.item.text_content or ""
                    for event in events
                    if isinstance(event, ChatMessageEvent) and event.item.role == "assistant"
                ]
                calls = [
                    (event.item.name, _arguments(event.item.arguments))
                    for event in events
                    if isinstance(event, FunctionCallEvent)
                ]
                model.off("metrics_collected", count)
                if not replies and not calls and not errors:
                    errors.append("the model answered with nothing")
                results.append(
                    CaseResult(
                        candidate.label,
                        case.say,
                        describe(case),
                        calls,
                        " ".join(replies),
                        judge(case, calls),
                        not calls,
                        seconds,
                        usage["prompt"],
                        usage["completion"],
                        "; ".join(dict.fromkeys(errors)),
                    )  # fmt: skip
                )
        finally:
            # A session takes ~2 s to close (LiveKit drains it): close them all at once.
            await asyncio.gather(
                *(engine.async_end_session(room) for room in list(engine.sessions))
            )
            await engine.aclose()
    return results


async def _run_case(session: Any, say: str, bound: float) -> tuple[list[Any], list[str]]:
    """Return a case's events and its provider's errors.

    A failing candidate costs the case, never the suite: the case is bounded like a turn
    (with its retry), and what failed is its result.
    """
    errors: list[str] = []

    def failed(event: Any) -> None:
        if not getattr(event.error, "recoverable", True):
            errors.append(str(getattr(event.error, "error", event.error)))

    session.on("error", failed)
    events: list[Any] = []
    try:
        async with asyncio.timeout(bound):
            run: Any = await session.run(user_input=say)
        events = run.events
    except Exception as err:  # noqa: BLE001 - any fault of the candidate's provider
        errors.append(f"{type(err).__name__}: {err}" if str(err) else repr(err))
    finally:
        session.off("error", failed)
    return events, errors


def _arguments(raw: str | None) -> dict[str, Any]:
    """Return a tool call's arguments; what is not a JSON object is shown as it came."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"unreadable_arguments": raw}


def summarise(results: list[CaseResult]) -> list[dict[str, Any]]:
    """Return one row per candidate: accuracy, refusals, latency and tokens."""
    import numpy as np

    rows = []
    for label in dict.fromkeys(r.candidate for r in results):
        mine = [r for r in results if r.candidate == label]
        acting = [r for r in mine if r.expected != "refusal"]
        refusing = [r for r in mine if r.expected == "refusal"]
        seconds = [r.seconds for r in mine]
        rows.append({
            "candidate": label,
            "tool-call accuracy": f"{sum(r.correct for r in acting)}/{len(acting)}",
            "refusals right": f"{sum(r.correct for r in refusing)}/{len(refusing)}",
            "all right": f"{sum(r.correct for r in mine)}/{len(mine)}",
            "provider errors": sum(bool(r.error) for r in mine),
            "latency p50 (s)": round(float(np.quantile(seconds, 0.5)), 3),
            "latency p95 (s)": round(float(np.quantile(seconds, 0.95)), 3),
            "tokens per case": round(
                sum(r.prompt_tokens + r.completion_tokens for r in mine) / len(mine)
            ),
        })  # fmt: skip
    return rows
