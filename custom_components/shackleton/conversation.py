"""Shackleton as an Assist conversation agent: the voice assistant's brain, in text.

The same language model, persona and tools (Shackleton's LLM API) as the voice rooms,
for the Assist dialog, HA's voice satellites, `shackleton.ask` and automations. It
needs no LiveKit server and no voice packages: only the OpenAI SDK (pure Python).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
import json
import sys
from typing import TYPE_CHECKING, Any, Literal

from homeassistant.components import conversation
from homeassistant.const import MATCH_ALL
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import intent, llm
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .assistants import Assistant, assistant_device_info, assistants
from .const import (
    DOMAIN,
    LOGGER,
    MAX_TEXT_LENGTH,
)
from .home_bridge import async_ask_agent, make_llm_context
from .models import ShackletonConfigEntry
from .provider_faults import ProviderFault, classify
from .tools.api import ShackletonAPI, tool_schemas
from .usage import chat_usage
from .voice.home import ToolCallError
from .voice.settings import Limits, persona
from .voice_config import assistant_llm, settings_from_entry
from .voice_support import async_text_client

if TYPE_CHECKING:
    import openai
    from openai.types.chat import ChatCompletionStreamOptionsParam

PARALLEL_UPDATES = 0
# Model calls in one message: enough for "turn off the lights and lock up", not a loop.
MAX_TOOL_ROUNDS = 8
# The argument a tool call gets when the model's arguments were not JSON.
UNREADABLE_ARGUMENTS = "unreadable_arguments"
REWRITE_PROMPT = (
    "Rewrite the announcement below as you would say it to the people in the home: "
    "in your own voice, keeping every fact, in one or two short spoken sentences. "
    "Answer with the announcement only."
)


@dataclass(slots=True)
class ToolCallRecord:
    """A tool the agent called while answering, for `shackleton.ask`'s response."""

    tool: str
    arguments: dict[str, Any]
    success: bool | None = None  # None: the agent did not say
    call_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the record as an action response shows it."""
        return {"tool": self.tool, "arguments": self.arguments, "success": self.success}


@dataclass(slots=True)
class Answer:
    """What the agent made of one message."""

    speech: str
    conversation_id: str
    continue_conversation: bool = False
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    error: HomeAssistantError | None = None


async def async_setup_entry(
    hass: HomeAssistant,
    entry: ShackletonConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each assistant's conversation agent, on the assistant's own device."""
    for assistant in assistants(entry):
        agent = ShackletonConversationEntity(entry, assistant)
        entry.runtime_data.agents[assistant.subentry_id] = agent
        async_add_entities([agent], config_subentry_id=assistant.subentry_id)


class ShackletonConversationEntity(conversation.ConversationEntity):
    """The Assist agent of one Shackleton assistant."""

    _attr_has_entity_name = True
    _attr_name = None
    # The Assist pipeline then starts speaking before the whole answer is written.
    _attr_supports_streaming = True

    def __init__(self, entry: ShackletonConfigEntry, assistant: Assistant) -> None:
        """Serve `assistant` of `entry`."""
        self.entry = entry
        self.assistant = assistant
        self._attr_unique_id = assistant.subentry_id
        self._attr_device_info = assistant_device_info(assistant)
        if assistant.tool_groups:
            self._attr_supported_features = conversation.ConversationEntityFeature.CONTROL
        # Its tools, under its tool groups and confirmation domains.
        self._api = entry.runtime_data.api.for_assistant(assistant)
        self._provider = assistant_llm(entry, assistant)
        # The LLM stage may be one of the home's own agents: then this one only delegates.
        self._delegate = (
            AgentDelegate(entry, self._provider.model, self._api)
            if self._provider.kind == "home_assistant"
            else None
        )
        self._limits = Limits()
        self._client: openai.AsyncClient | None = None
        self._client_lock = asyncio.Lock()
        # The direct calls (`async_ask`) under way, by context id: where their answers go,
        # and how many calls share it (a script's parallel actions share one context).
        self._asked: dict[str, tuple[list[Answer], int]] = {}
        # shackleton.ask turns waiting for their conversation: its lock, and how many use it.
        self._asking: dict[str, tuple[asyncio.Lock, int]] = {}

    async def async_ask(
        self,
        text: str,
        *,
        conversation_id: str | None,
        context: Context,
        language: str | None,
        extra_system_prompt: str | None,
    ) -> tuple[conversation.ConversationResult, Answer | None]:
        """Answer `text` through HA's conversation API; return HA's result and our answer.

        The answer carries the tool calls, which HA's result does not. HA refuses a second
        open turn on one conversation (ConversationBusyError, 2026.11): overlapping direct
        calls queue instead. A turn from elsewhere (a voice room, the Assist dialog) still
        gets HA's "busy" answer: then there is no answer of ours (None).
        """
        answers, users = self._asked.get(context.id, ([], 0))
        self._asked[context.id] = (answers, users + 1)
        try:
            async with self._queue(conversation_id):
                result = await conversation.async_converse(
                    self.hass,
                    text=text,
                    conversation_id=conversation_id,
                    context=context,
                    language=language,
                    agent_id=self.entity_id,
                    extra_system_prompt=extra_system_prompt,
                )
        finally:
            answers, users = self._asked.pop(context.id)
            if users > 1:
                self._asked[context.id] = (answers, users - 1)
        mine = [answer for answer in answers if answer.conversation_id == result.conversation_id]
        return result, (mine[-1] if mine else None)

    @asynccontextmanager
    async def _queue(self, conversation_id: str | None) -> AsyncIterator[None]:
        if conversation_id is None:  # a new conversation overlaps nothing
            yield
            return
        lock, users = self._asking.get(conversation_id, (asyncio.Lock(), 0))
        self._asking[conversation_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._asking[conversation_id]
            if users == 1:
                del self._asking[conversation_id]
            else:
                self._asking[conversation_id] = (lock, users - 1)

    @property
    def supported_languages(self) -> list[str] | Literal["*"]:
        """Return every language: the model answers in the user's."""
        return MATCH_ALL

    async def _async_handle_message(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> conversation.ConversationResult:
        """Answer one message, calling tools as the model asks."""
        if (refused := _refused(user_input.text)) is not None:
            # Said as the answer: a blank or oversized message never reaches a model.
            answer = Answer(str(refused), chat_log.conversation_id, error=refused)
        elif self._delegate is not None:
            answer = await self._delegate.async_answer(
                self.hass, user_input, chat_log.conversation_id, self.entity_id, self._apology
            )
        else:
            answer = await self._async_answer(user_input, chat_log)
        if (asked := self._asked.get(user_input.context.id)) is not None:
            asked[0].append(answer)
        response = intent.IntentResponse(language=user_input.language)
        if answer.error is not None:
            response.async_set_error(intent.IntentResponseErrorCode.UNKNOWN, answer.speech)
        else:
            response.async_set_speech(answer.speech)
        return conversation.ConversationResult(
            response=response,
            conversation_id=answer.conversation_id,
            continue_conversation=answer.continue_conversation,
        )

    @property
    def _apology(self) -> str:
        return settings_from_entry(self.entry, self.hass.config.language).apology

    async def _async_answer(
        self, user_input: conversation.ConversationInput, chat_log: conversation.ChatLog
    ) -> Answer:
        answer = Answer(speech="", conversation_id=chat_log.conversation_id)
        try:
            await _async_provide_llm_data(chat_log, user_input, self._api, self._persona)
        except conversation.ConverseError as err:
            answer.error = err
            answer.speech = self._apology
            return answer
        try:
            client = await self._async_client()
            tools = [
                {"type": "function", "function": schema}
                for schema in (tool_schemas(chat_log.llm_api) if chat_log.llm_api else [])
            ]
            for _ in range(MAX_TOOL_ROUNDS):
                stream = self._stream(client, _messages(chat_log), tools)
                async for content in chat_log.async_add_delta_content_stream(
                    self.entity_id, stream
                ):
                    _record(answer, content)
                if not chat_log.unresponded_tool_results:
                    break
        except HomeAssistantError as err:
            # Translated words, and the cause's type: a provider's own text could quote
            # the request.
            cause = type(err.__cause__).__name__ if err.__cause__ else "-"
            LOGGER.warning("%s: the language model failed: %s (%s)", self.entry.title, err, cause)
            answer.error = err
            answer.speech = self._apology
            return answer
        last = chat_log.content[-1]
        answer.speech = (last.content or "") if last.role == "assistant" else ""
        if not answer.speech.strip() and not answer.tool_calls:
            LOGGER.warning("%s: the language model answered with nothing", self.entry.title)
            answer.error = ProviderFault("empty")
            answer.speech = self._apology
        answer.continue_conversation = chat_log.continue_conversation
        return answer

    @property
    def _persona(self) -> str:
        return persona(self.assistant.instructions)

    async def _stream(
        self, client: openai.AsyncClient, messages: list[dict[str, Any]], tools: list[Any]
    ) -> AsyncIterator[conversation.AssistantContentDeltaDict]:
        """Ask the model; yield HA's deltas. The whole reply is bounded by the deadline.

        The deadline covers the model only (not the tools it calls): a hung or failing
        provider costs the user a few seconds, then an apology. Whatever fails on the
        way, the SDK's errors or the stream's own, is raised as a `ProviderFault`.
        """
        limits = self._limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.turn_deadline
        host = str(client.base_url.host)

        def fault(err: BaseException) -> ProviderFault:
            return classify(err, host=host, seconds=limits.turn_deadline)

        stream = await self._async_open_stream(client, messages, tools, deadline, fault)
        yield {"role": "assistant"}
        calls: dict[int, dict[str, str]] = {}
        chunks = aiter(stream)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        chunk = await anext(chunks)
                    content = _read_chunk(chunk, calls)
                except StopAsyncIteration:
                    break
                except Exception as err:  # mid-stream, what fails is not the SDK's own
                    raise fault(err) from err
                self._count_usage(chunk)
                if content:
                    yield {"content": content}
        finally:
            # Give the connection back at once, also when the turn ends early.
            with suppress(Exception):
                await stream.close()
        if calls:
            yield {
                "tool_calls": [
                    llm.ToolInput(
                        id=call["id"] or f"call_{index}",
                        tool_name=call["name"],
                        tool_args=_arguments(call["arguments"]),
                    )
                    for index, call in sorted(calls.items())
                ]
            }

    async def _async_open_stream(
        self,
        client: openai.AsyncClient,
        messages: list[dict[str, Any]],
        tools: list[Any],
        deadline: float,
        fault: Callable[[BaseException], ProviderFault],
    ) -> Any:
        """Send the request; retry once if that may help and fits before `deadline`."""
        limits = self._limits
        loop = asyncio.get_running_loop()
        attempt = 0
        # The last chunk then carries the request's tokens (the usage sensors count them).
        usage: ChatCompletionStreamOptionsParam = {"include_usage": True}
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await client.chat.completions.create(
                        model=self._provider.model,
                        messages=messages,  # type: ignore[arg-type]
                        stream=True,
                        stream_options=usage,
                        tools=tools or sys.modules["openai"].NOT_GIVEN,
                    )
            except Exception as err:  # every way a request fails is a fault
                problem = fault(err)
                # The provider's own Retry-After is honoured, never a storm; otherwise
                # fail at once.
                wait = limits.retry_interval if problem.retry_after is None else problem.retry_after
                if (
                    attempt == limits.max_retry
                    or not problem.retryable
                    or loop.time() + wait >= deadline
                ):
                    raise problem from err
                LOGGER.debug("%s: retrying in %.2f s after %r", self.entry.title, wait, err)
                await asyncio.sleep(wait)
                attempt += 1

    def _count_usage(self, chunk: Any) -> None:
        """Count a chunk's `usage` (the last one's) on the usage sensors; never raise."""
        if (counted := chat_usage(getattr(chunk, "usage", None))) is not None:
            self.entry.runtime_data.usage.async_add(counted)

    async def _async_client(self) -> openai.AsyncClient:
        """Return the model's client, importing (or installing) the SDK off the loop."""
        async with self._client_lock:
            if self._client is None:
                # `_stream` retries itself, within the turn's deadline.
                self._client = await async_text_client(self.hass, self._provider, self._limits)
            return self._client

    async def async_rewrite(self, text: str, language: str) -> str | None:
        """Return an announcement in the persona's words; None when that cannot be had."""
        if self._delegate is not None:
            return None  # HA's agents act on words; they do not rephrase them
        messages = [
            {"role": "system", "content": f"{self._persona}\n{REWRITE_PROMPT}"},
            {"role": "user", "content": f"Language: {language}\nAnnouncement: {text}"},
        ]
        try:
            client = await self._async_client()
            parts = [
                delta.get("content") or "" async for delta in self._stream(client, messages, [])
            ]
        except HomeAssistantError as err:
            LOGGER.warning("%s: could not rephrase an announcement: %s", self.entry.title, err)
            return None
        return "".join(parts).strip() or None


class AgentDelegate:
    """Hands each message to another of the home's conversation agents, with our tools."""

    def __init__(self, entry: ShackletonConfigEntry, agent_id: str, api: ShackletonAPI) -> None:
        """Delegate to `agent_id` (an agent's entity id, or a config entry id)."""
        self._entry = entry
        self._agent_id = agent_id
        self._api = api

    async def async_answer(
        self,
        hass: HomeAssistant,
        user_input: conversation.ConversationInput,
        conversation_id: str,
        own_entity_id: str,
        apology: str,
    ) -> Answer:
        """Return the other agent's answer, with the tools it ran."""
        answer = Answer(speech="", conversation_id=conversation_id)
        if self._agent_id in (own_entity_id, self._entry.entry_id):
            answer.error = HomeAssistantError(
                translation_domain=DOMAIN, translation_key="agent_loop"
            )
            answer.speech = apology
            return answer
        llm_context = make_llm_context(
            hass, user_input.language, user_input.device_id, user_input.context, own_entity_id
        )
        api = await self._api.async_get_api_instance(llm_context)

        async def run_tool(name: str, arguments: dict[str, Any]) -> Any:
            record = ToolCallRecord(name, arguments)
            answer.tool_calls.append(record)
            result = await api.async_call_tool(llm.ToolInput(tool_name=name, tool_args=arguments))
            record.success = True
            return result

        try:
            said = await async_ask_agent(
                hass,
                text=user_input.text,
                agent_id=self._agent_id,
                conversation_id=conversation_id,
                context=user_input.context,
                language=user_input.language,
                device_id=user_input.device_id,
                run_tool=run_tool,
            )
        except ToolCallError as err:
            answer.error = HomeAssistantError(str(err))
            answer.speech = apology
            return answer
        answer.speech = said.speech
        known = {record.tool for record in answer.tool_calls}
        answer.tool_calls += [ToolCallRecord(name, {}) for name in said.tools if name not in known]
        return answer


async def _async_provide_llm_data(
    chat_log: conversation.ChatLog,
    user_input: conversation.ConversationInput,
    api: ShackletonAPI,
    prompt: str,
) -> None:
    """Give the chat log Shackleton's API (the assistant's tools) and persona."""
    await chat_log.async_provide_llm_data(
        llm_context=user_input.as_llm_context(DOMAIN),
        user_llm_hass_api=api,
        user_llm_prompt=prompt,
        user_extra_system_prompt=user_input.extra_system_prompt,
    )


def _refused(text: str) -> HomeAssistantError | None:
    """Return why a message is not sent to a model (blank, or too long), or None."""
    if not text.strip():
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="text_empty")
    if len(text) > MAX_TEXT_LENGTH:
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="text_too_long",
            translation_placeholders={"length": str(len(text)), "limit": str(MAX_TEXT_LENGTH)},
        )
    return None


def _messages(chat_log: conversation.ChatLog) -> list[dict[str, Any]]:
    """Return the chat log as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    for content in chat_log.content:
        if isinstance(content, conversation.ToolResultContent):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": content.tool_call_id,
                    "content": json.dumps(content.result.data, default=str, ensure_ascii=False),
                }
            )
            continue
        message: dict[str, Any] = {"role": content.role, "content": content.content}
        if isinstance(content, conversation.AssistantContent) and content.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.tool_name,
                        "arguments": json.dumps(call.tool_args, ensure_ascii=False),
                    },
                }
                for call in content.tool_calls
            ]
        messages.append(message)
    return messages


def _record(
    answer: Answer, content: conversation.AssistantContent | conversation.ToolResultContent
) -> None:
    """Note the tool calls of a message and whether each worked."""
    if isinstance(content, conversation.ToolResultContent):
        for record in answer.tool_calls:
            if record.call_id == content.tool_call_id:
                record.success = not content.result.error and "error" not in content.result.data
        return
    for call in content.tool_calls or ():
        answer.tool_calls.append(ToolCallRecord(call.tool_name, call.tool_args, call_id=call.id))


def _read_chunk(chunk: Any, calls: dict[int, dict[str, str]]) -> str:
    """Return a streamed chunk's text; gather the pieces of its tool calls into `calls`."""
    if not chunk.choices:
        return ""
    delta = chunk.choices[0].delta
    for call in delta.tool_calls or ():
        known = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
        if call.id:
            known["id"] = call.id
        if call.function is not None:
            known["name"] += call.function.name or ""
            known["arguments"] += call.function.arguments or ""
    return str(delta.content or "")


def _arguments(raw: str) -> dict[str, Any]:
    """Return a tool call's arguments.

    Arguments that are not a JSON object are passed on under a name no tool accepts,
    so the tool refuses the call and the model hears why; the tool never runs on a
    guess (empty arguments could mean "every light").
    """
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {UNREADABLE_ARGUMENTS: raw[:200]}
