"""Shackleton's LLM API: the home's tools, with spoken confirmations and an audit trail.

Registered with Home Assistant (`llm.async_register_api`), so the voice agent and any
HA conversation agent whose user picks "Shackleton" get the same tools (Shackleton's own
ones, prefixed, also join HA's Assist API: see ../llm.py). Devices are
HA's own Assist tools (intents over the entities exposed to Assist); every tool is
wrapped so that:
- actions on sensitive entities (the assistant's confirmation domains) need a spoken yes:
  the first call answers "confirmation required" with a short-lived token, and only a
  call with that token, in a later user turn, within 30 s, runs;
- every call fires `shackleton_tool_call` (tool, arguments, outcome, duration, room,
  user), with argument values redacted unless the options allow transcripts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import secrets
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent, llm
from homeassistant.util.json import JsonObjectType
import probatio

from ..assistants import Assistant, default_assistant, room_assistant
from ..compat import context_agent_id
from ..const import (
    CONF_TRANSCRIPTS_IN_EVENTS,
    DEFAULT_OPTIONS,
    DOMAIN,
    EVENT_TOOL_CALL,
    REDACTED,
    needs_confirmation,
)
from ..models import ShackletonConfigEntry
from .calendars import calendar_tools
from .cameras import camera_tools
from .notes import note_tools
from .reminders import reminder_tools

CONFIRMATION_TTL = 30.0
# Assist's tools are named `<integration>__<name>` (HA 2026.8+).
ASSIST_CALENDAR_TOOL = "calendar__get_events"
# Our own tools as Assist offers them (../llm.py): the prefix HA asks of a tools platform.
ASSIST_PREFIX = f"{DOMAIN}__"
TOKEN_ARG = "confirmation_token"  # noqa: S105 - an argument name
# Timer intents name timers, not entities: nothing for the guard to match.
TIMER_INTENTS = frozenset(
    {
        intent.INTENT_START_TIMER,
        intent.INTENT_CANCEL_TIMER,
        intent.INTENT_CANCEL_ALL_TIMERS,
        intent.INTENT_INCREASE_TIMER,
        intent.INTENT_DECREASE_TIMER,
        intent.INTENT_PAUSE_TIMER,
        intent.INTENT_UNPAUSE_TIMER,
        intent.INTENT_TIMER_STATUS,
    }
)


def _base_name(tool: llm.Tool) -> str:
    """Return a tool's name without Assist's `<integration>__` prefix."""
    return tool.name.rpartition("__")[2]


def is_timer_tool(tool: llm.Tool) -> bool:
    """Return whether `tool` is one of Assist's timer intents."""
    return tool.integration == "intent" and _base_name(tool) in TIMER_INTENTS


def needs_no_confirmation(tool: llm.Tool) -> bool:
    """Return whether a tool never needs a spoken yes: it only reads, or names no entity."""
    return tool.annotations.read_only or is_timer_tool(tool)


API_PROMPT = (
    "Some actions (locks, alarms, garage doors...) need the user's spoken yes. When a "
    "tool answers confirmation_required, ask the user to confirm in plain words and stop. "
    "Only if their next message says yes, call the same tool again with the same "
    f"arguments and {TOKEN_ARG}. Never invent a token."
)


def _as_result(result: llm.ToolResult | JsonObjectType) -> llm.ToolResult:
    """Return a wrapped tool's result as a ToolResult (HA's type allows a bare dict still)."""
    return result if isinstance(result, llm.ToolResult) else llm.ToolResult(data=result)


class ConfirmationError(HomeAssistantError):
    """A confirming call the guard refuses; the message tells the model why."""


@dataclass(frozen=True, slots=True)
class _Pending:
    tool: str
    arguments: dict[str, Any]
    context_id: str | None
    issued: float


class Confirmations:
    """Tokens issued for sensitive actions: short-lived, single-use, bound to the call."""

    def __init__(self, ttl: float = CONFIRMATION_TTL) -> None:
        """Make an empty store; tokens live `ttl` seconds."""
        self._ttl = ttl
        self._pending: dict[str, _Pending] = {}

    def issue(self, tool: str, arguments: dict[str, Any], context_id: str | None) -> str:
        """Return a token for this exact call, asked in the turn `context_id`."""
        self._prune()
        token = secrets.token_urlsafe(6)
        self._pending[token] = _Pending(tool, arguments, context_id, time.monotonic())
        return token

    def redeem(
        self, token: str, tool: str, arguments: dict[str, Any], context_id: str | None
    ) -> None:
        """Consume `token` for this call, or raise ConfirmationError saying why not."""
        self._prune()
        pending = self._pending.get(token)
        if pending is None:
            raise ConfirmationError(
                "That confirmation token is unknown or expired. Ask the user again."
            )
        if pending.tool != tool or pending.arguments != arguments:
            raise ConfirmationError(
                "That confirmation token was given for a different action. Ask the user "
                "to confirm this one."
            )
        if context_id is not None and pending.context_id == context_id:
            raise ConfirmationError(
                "The user has not answered yet. Ask them to confirm and wait for their reply."
            )
        del self._pending[token]

    def _prune(self) -> None:
        now = time.monotonic()
        for token in [t for t, p in self._pending.items() if now - p.issued > self._ttl]:
            del self._pending[token]


class GuardedTool(llm.Tool):
    """One tool, with the confirmation guard and the audit event around it."""

    def __init__(
        self, api: ShackletonAPI, inner: llm.Tool, room: str | None, *, prefix: str = ""
    ) -> None:
        """Wrap `inner`; `room` is the voice room calling, if any; `prefix` goes before its name."""
        self._api = api
        self._inner = inner
        self._room = room
        # Tokens and the audit name the tool as the model called it.
        self.name = prefix + inner.name
        self.title = inner.title
        self.description = inner.description
        self.parameters = inner.parameters
        self.integration = inner.integration or DOMAIN
        self._guarded = not needs_no_confirmation(inner)
        # The tool's own: HA's device intents, the ones a spoken yes guards, are marked
        # destructive by HA (its default), ours by tool_base.
        self.annotations = inner.annotations
        if self._guarded:
            self.parameters = inner.parameters.extend({probatio.Optional(TOKEN_ARG): str})

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Check, run, and audit the call."""
        arguments = dict(tool_input.tool_args)
        token = arguments.pop(TOKEN_ARG, None)
        started = time.monotonic()
        outcome = "ok"
        try:
            try:
                # HA does not check a model's arguments before the call: do it here, so
                # they are an error the model can read, not an exception deep inside.
                self._inner.parameters(arguments)
            except probatio.Invalid as err:
                raise HomeAssistantError(f"Invalid arguments for {self.name}: {err}") from err
            result = await self._guarded_call(
                hass, replace(tool_input, tool_args=arguments), llm_context, token
            )
        except Exception as err:
            # Error texts can quote what was said (names, areas): shown only when allowed.
            detail = str(err) if self._api.transcripts_allowed() else type(err).__name__
            outcome = f"error: {detail}" if isinstance(err, HomeAssistantError) else "error"
            raise
        else:
            if result.error:
                outcome = "error"
            elif result.data.get("confirmation_required"):
                outcome = "confirmation_required"
            return result
        finally:
            self._api.audit(self.name, arguments, outcome, started, llm_context, self._room)

    async def _guarded_call(
        self,
        hass: HomeAssistant,
        tool_input: llm.ToolInput,
        llm_context: llm.LLMContext,
        token: str | None,
    ) -> llm.ToolResult:
        arguments = tool_input.tool_args
        sensitive = self._api.sensitive(arguments) if self._guarded else []
        if not sensitive:
            return _as_result(await self._inner.async_call(hass, tool_input, llm_context))
        context_id = llm_context.context.id if llm_context.context else None
        confirmations = self._api.confirmations
        if not isinstance(token, str):
            issued = confirmations.issue(self.name, arguments, context_id)
            return llm.ToolResult(
                data={
                    "confirmation_required": True,
                    TOKEN_ARG: issued,
                    "targets": list[Any](sensitive),
                    "expires_in_seconds": int(CONFIRMATION_TTL),
                    "instructions": API_PROMPT,
                }
            )
        confirmations.redeem(token, self.name, arguments, context_id)
        return _as_result(await self._inner.async_call(hass, tool_input, llm_context))


@dataclass(slots=True, kw_only=True)
class ShackletonAPI(llm.API):
    """The API of one Shackleton entry."""

    entry: ShackletonConfigEntry
    confirmations: Confirmations
    # Whose tool groups and confirmation domains apply; None: found per call.
    assistant: Assistant | None = None

    @classmethod
    def for_entry(cls, hass: HomeAssistant, entry: ShackletonConfigEntry) -> ShackletonAPI:
        """Return the API of `entry` (register it with `llm.async_register_api`)."""
        return cls(
            hass=hass,
            id=f"{DOMAIN}-{entry.entry_id}",
            name=f"Shackleton ({entry.title})",
            entry=entry,
            confirmations=Confirmations(),
        )

    def for_assistant(self, assistant: Assistant) -> ShackletonAPI:
        """Return this API bound to one assistant (confirmations stay shared)."""
        return replace(self, assistant=assistant)

    def _option(self, key: str) -> Any:
        return self.entry.options.get(key, DEFAULT_OPTIONS[key])

    @property
    def _assistant(self) -> Assistant:
        return self.assistant or default_assistant(self.entry)

    def _caller(self, llm_context: llm.LLMContext) -> Assistant:
        """Return the assistant behind another agent's turn: a room's, else the first.

        Shackleton's own agents and rooms bind theirs (`for_assistant`); another agent
        using this API speaks for a room when its device is a room's (a satellite).
        """
        rooms = self.entry.runtime_data.rooms
        if llm_context.device_id and (room := rooms.room_of_device_id(llm_context.device_id)):
            return room_assistant(self.entry, room)
        return default_assistant(self.entry)

    def transcripts_allowed(self) -> bool:
        """Return whether events may show what people said."""
        return bool(self._option(CONF_TRANSCRIPTS_IN_EVENTS))

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return the tools for a conversation agent's turn."""
        bound = self if self.assistant else self.for_assistant(self._caller(llm_context))
        return await bound.async_get_room_instance(llm_context, None)

    async def async_get_room_instance(
        self, llm_context: llm.LLMContext, room: str | None
    ) -> llm.APIInstance:
        """Return the tools for a turn in a voice room (or a conversation when None)."""
        groups = self._assistant.tool_groups
        tools: list[llm.Tool] = []
        prompt = API_PROMPT
        # Assist's serializer turns HA selectors in tool schemas into JSON schema.
        assist = await llm.async_get_api(self.hass, llm.LLM_API_ASSIST, llm_context)
        if "devices" in groups:
            # Assist's read-only calendar tool gives way to the calendar group's own, and
            # Assist's copies of our tools (`shackleton__note_save`...) to the ones below.
            tools.extend(
                tool
                for tool in assist.tools
                if tool.name != ASSIST_CALENDAR_TOOL
                and not tool.name.startswith(ASSIST_PREFIX)
                and ("timers" in groups or not is_timer_tool(tool))
            )
            prompt = f"{assist.api_prompt}\n{API_PROMPT}"
        tools.extend(self.own_tools(room))
        return llm.APIInstance(
            api=self,
            api_prompt=prompt,
            llm_context=llm_context,
            tools=[GuardedTool(self, tool, room) for tool in tools],
            custom_serializer=assist.custom_serializer,
        )

    def own_tools(self, room: str | None) -> list[llm.Tool]:
        """Return Shackleton's own tools (unguarded) in the groups the assistant has."""
        groups = self._assistant.tool_groups
        tools: list[llm.Tool] = []
        if "calendars" in groups:
            tools.extend(calendar_tools(self.hass))
        if "notes" in groups:
            tools.extend(note_tools(self.entry.runtime_data.notes))
        if "timers" in groups:
            tools.extend(reminder_tools(self.entry.runtime_data.reminders, room))
        if "cameras" in groups:
            tools.extend(camera_tools(self.hass, self.entry))
        return tools

    def assist_tools(self) -> list[llm.Tool]:
        """Return Shackleton's own tools as Assist offers them: prefixed, and guarded."""
        # No room: another agent's turn is text, so reminders become notifications.
        return [
            GuardedTool(self, tool, None, prefix=ASSIST_PREFIX) for tool in self.own_tools(None)
        ]

    def sensitive(self, arguments: dict[str, Any]) -> list[str]:
        """Return the names of the sensitive entities a device call would reach."""
        confirm = self._assistant.confirm_domains
        if not confirm:
            return []
        domains = arguments.get("domain")
        device_classes = arguments.get("device_class")
        name = arguments.get("name")
        constraints = intent.MatchTargetsConstraints(
            # Assist's intents read the name "all" as no name at all: so must the guard.
            name=None if name == "all" else name,
            area_name=arguments.get("area"),
            floor_name=arguments.get("floor"),
            domains=[domains] if isinstance(domains, str) else domains,
            device_classes=[device_classes] if isinstance(device_classes, str) else device_classes,
            assistant="conversation",
            allow_duplicate_names=True,
        )
        if not constraints.has_constraints:
            return []
        result = intent.async_match_targets(self.hass, constraints)
        return [
            str(state.name)
            for state in result.states
            if needs_confirmation(confirm, state.domain, state.attributes.get("device_class"))
        ]

    def audit(
        self,
        tool: str,
        arguments: dict[str, Any],
        outcome: str,
        started: float,
        llm_context: llm.LLMContext,
        room: str | None,
    ) -> None:
        """Fire `shackleton_tool_call`."""
        shown = (
            arguments
            if self._option(CONF_TRANSCRIPTS_IN_EVENTS)
            else dict.fromkeys(arguments, REDACTED)
        )
        self.hass.bus.async_fire(
            EVENT_TOOL_CALL,
            {
                "entry_id": self.entry.entry_id,
                "tool": tool,
                "arguments": shown,
                "outcome": outcome,
                "duration_ms": round((time.monotonic() - started) * 1000),
                "room": room,
                "user_id": llm_context.context.user_id if llm_context.context else None,
                "agent_id": context_agent_id(llm_context),
            },
            context=llm_context.context,
        )


def tool_schemas(api: llm.APIInstance) -> list[dict[str, Any]]:
    """Return an API instance's tools as JSON-schema function descriptions."""
    return [
        {
            "name": tool.name,
            "description": tool.description or tool.name,
            "parameters": probatio.to_openapi(
                tool.parameters, custom_serializer=api.custom_serializer
            ),
        }
        for tool in api.tools
    ]
