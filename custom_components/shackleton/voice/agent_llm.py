"""A Home Assistant conversation agent as the session's language model.

The agent (HA's built-in Assist, or any other) gets the user's words and returns what to
say; it runs its own tools, so the session offers it none. Its reply is streamed to the
TTS a sentence at a time like any model's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
import uuid

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    APIError,
    llm,
)
from livekit.agents.types import NOT_GIVEN, NotGivenOr

from .home import Home, ToolCallError


class ConversationAgentLLM(llm.LLM[Any]):
    """Hands each user turn to a home's conversation agent."""

    def __init__(
        self,
        home: Home,
        agent_id: str,
        room: str = "",
        turn: Callable[[], int] = lambda: 0,
        on_tools: Callable[[list[str]], None] = lambda tools: None,
    ) -> None:
        """Use the agent `agent_id` (for example conversation.home_assistant)."""
        super().__init__()
        self.home = home
        self.agent_id = agent_id
        self.room = room
        self.turn = turn
        self.on_tools = on_tools

    def for_room(
        self, room: str, turn: Callable[[], int], on_tools: Callable[[list[str]], None]
    ) -> ConversationAgentLLM:
        """Return this agent bound to a room's session: its turn count and tool record."""
        return ConversationAgentLLM(self.home, self.agent_id, room, turn, on_tools)

    @property
    def model(self) -> str:
        """Return the agent's id."""
        return self.agent_id

    @property
    def provider(self) -> str:
        """Return who answers."""
        return "home-assistant"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        """Answer the last user message through the agent."""
        return _AgentStream(self, chat_ctx=chat_ctx, tools=[], conn_options=conn_options)


class _AgentStream(llm.LLMStream):
    def __init__(
        self,
        agent: ConversationAgentLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(agent, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._agent = agent

    async def _run(self) -> None:
        said = [
            item.text_content or ""
            for item in self._chat_ctx.items
            if isinstance(item, llm.ChatMessage) and item.role == "user"
        ]
        text = said[-1].strip() if said else ""
        if not text:
            return
        try:
            reply, tools = await self._agent.home.converse(
                self._agent.room, text, self._agent.agent_id, turn=self._agent.turn()
            )
        except ToolCallError as err:
            raise APIError(str(err), retryable=False) from err
        if tools:
            self._agent.on_tools(tools)
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=uuid.uuid4().hex,
                delta=llm.ChoiceDelta(role="assistant", content=reply),
            )
        )
