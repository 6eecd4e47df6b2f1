"""A room's turn bookkeeping: the pending turn report, its tools, and its failure state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .home import TurnReport


class TurnTracker:
    """Follows one room's user turns from speech to answer (or failure), LiveKit aside.

    Each committed user turn gets one `TurnReport`, handed to `report` exactly once:
    when the answer lands, or when the turn fails.
    """

    def __init__(self, room: str, report: Callable[[TurnReport], None]) -> None:
        """Track the turns of `room`; finished reports go to `report`."""
        self.room = room
        self._report = report
        self.turn = 0  # user turns so far
        # (user turn, tool) pairs: a fast agent can finish before its user item lands.
        self.tools_called: list[tuple[int, str]] = []
        self.pending: TurnReport | None = None
        self.answered = False  # whether the agent spoke since the user last did
        self.apologising = False
        self.user_stopped_at: float | None = None
        self._failure_reported = False
        # A preemptive generation can fail before its user turn is committed.
        self.deferred_failure: str | None = None

    def user_started(self) -> None:
        """Start a new user turn: the user began to speak.

        Counted when speech starts (what a spoken yes needs): a realtime model's
        transcript can arrive after it already acted on the words.
        """
        self.turn += 1
        self.answered = False
        # Its preemptive reply can fail before LiveKit says "thinking": the last
        # turn's failure report must not swallow this one's.
        self._failure_reported = False
        # Still talking: LiveKit drops the preemptive reply and will generate anew.
        self.deferred_failure = None

    def user_stopped(self, at: float) -> None:
        """Note when the local VAD heard the user stop (a realtime turn's latency base)."""
        self.user_stopped_at = at

    def thinking(self) -> None:
        """Note that the agent started on an answer: it may fail afresh."""
        self._failure_reported = False

    def agent_spoke(self) -> None:
        """Note that the agent is speaking: the user is not left in silence."""
        self.answered = True

    def tool_called(self, name: str) -> None:
        """Record a tool the model called in the current turn."""
        self.tools_called.append((self.turn, name))

    def tools_ran(self, names: list[str]) -> None:
        """Record the tools a conversation agent ran in the current turn."""
        self.tools_called.extend((self.turn, name) for name in names)

    def tool_names(self) -> list[str]:
        """Return the tools called since the pending turn began, each once, in order."""
        return list(dict.fromkeys(name for _turn, name in self.tools_called))

    def tools_executed(self) -> None:
        """Copy the tools called so far onto the pending report."""
        if self.pending is not None:
            self.pending.tools = self.tool_names()

    def user_committed(
        self,
        text: str | None,
        *,
        end_of_utterance_delay: float | None = None,
        transcription_delay: float | None = None,
    ) -> str | None:
        """Open the report of a committed user turn; return a failure deferred to it.

        The deferred failure (its preemptive generation already failed) is consumed:
        the caller fails this turn with it.
        """
        self.tools_called = [(turn, name) for turn, name in self.tools_called if turn >= self.turn]
        self._failure_reported = False
        self.pending = TurnReport(
            room=self.room,
            user_text=text,
            end_of_utterance_delay=end_of_utterance_delay,
            transcription_delay=transcription_delay,
        )
        why, self.deferred_failure = self.deferred_failure, None
        return why

    def answer(self, text: str | None, metrics: Mapping[str, Any], *, interrupted: bool) -> bool:
        """Close the pending turn with the agent's answer; return whether there was one.

        `metrics` is LiveKit's metrics report of the assistant's chat message. The
        apology is not an answer: the turn it follows was already reported as failed.
        """
        if self.pending is None or self.apologising:
            return False
        report, self.pending = self.pending, None
        report.agent_text = text
        report.llm_ttft = metrics.get("llm_node_ttft")
        report.tts_ttfb = metrics.get("tts_node_ttfb")
        report.end_to_end = metrics.get("e2e_latency")
        started = metrics.get("started_speaking_at")
        if report.end_to_end is None and started is not None and self.user_stopped_at:
            # Realtime models report no latency of their own: time it from the local
            # VAD's end of speech, as LiveKit does in pipeline mode.
            report.end_to_end = max(0.0, started - self.user_stopped_at)
        report.interrupted = interrupted
        report.tools = self.tool_names()
        self._report(report)
        return True

    def is_unanswered(self) -> bool:
        """Return whether the pending turn got nothing at all: no words, no tool, no apology."""
        return (
            self.pending is not None
            and not self.answered
            and not self.apologising
            and not any(turn == self.turn for turn, _name in self.tools_called)
        )

    def fail(self, why: str, *, defer: bool = False) -> bool:
        """Claim the turn's failure; return False when it is already counted or deferred.

        With `defer`, a failure before any turn is committed waits for that turn
        (see `user_committed`): a preemptive generation can fail while the user is
        still talking.
        """
        if self._failure_reported:
            return False
        if defer and self.pending is None:
            self.deferred_failure = why
            return False
        self._failure_reported = True
        return True

    def report_failure(self, why: str) -> None:
        """Report the pending turn (if any) as failed with `why`."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.error = why
            pending.tools = self.tool_names()
            self._report(pending)

    def start_apology(self) -> bool:
        """Return whether an apology may start now (one at a time); mark it started."""
        if self.apologising:
            return False
        self.apologising = True
        return True

    def apology_done(self) -> None:
        """Note that the apology ended (said, interrupted, or its session gone)."""
        self.apologising = False
