"""The fault matrix's rows: each path that asks a provider, and what it promises.

Kept apart from the test (tests/test_fault_matrix.py) so the README's table
(tests/fault_table.py) can be written from them without the test harness.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.fakes import FAULTS


@dataclass(frozen=True, slots=True)
class Row:
    """One path that asks a provider: what it promises when the provider fails."""

    title: str
    # The outcome a faulted call gets, and the seconds it may take at most.
    promise: str
    bound: float
    # Faults that do not apply, and cells whose outcome differs from the promise.
    skip: frozenset[str] = frozenset()
    differs: tuple[tuple[str, str], ...] = ()

    def expected(self, fault: str) -> str:
        """Return the outcome a fault should have on this path."""
        return dict(self.differs).get(fault, self.promise)

    def faults(self) -> list[str]:
        """Return the faults this path is tested with."""
        return [fault for fault in FAULTS if fault not in self.skip]


# The voice rows run every cell's room at once: 10-14 engines, each with its own silero,
# on CI's two cores. A hung model costs a room 2 x 2.5 s + 0.25 s and the apology starts
# after endpointing; under that load the end of speech is heard 2-5 s late (most cells
# measured 10-11 s, a few up to 13.2 s, in about 15 runs of the LLM row on 2026-12-06).
VOICE_BOUND = 15.0

ROWS: dict[str, Row] = {
    "conversation.process": Row(
        "Text agent: `conversation.process`, the Assist dialog",
        "apology",
        7.0,
        differs=(("bad_tool_args", "answer"),),
    ),
    "shackleton.ask": Row(
        "`shackleton.ask`",
        "error",
        7.0,
        differs=(("bad_tool_args", "answer"),),
    ),
    "announce rephrase": Row(
        "`shackleton.announce` with `rephrase`",
        "as written",
        7.0,
        # No tools are offered for a rewrite.
        skip=frozenset({"bad_tool_args"}),
    ),
    "voice STT": Row(
        "Voice pipeline: speech to text (OpenAI-compatible)",
        "apology",
        VOICE_BOUND,
        skip=frozenset({"sse_error", "bad_sse", "bad_tool_args"}),
        # Nothing understood is heard as noise: no turn, nothing said.
        differs=(("empty", "silence"),),
    ),
    "voice LLM": Row(
        "Voice pipeline: the language model (OpenAI-compatible)",
        "apology",
        VOICE_BOUND,
        differs=(("bad_tool_args", "answer"),),
    ),
    "voice TTS": Row(
        "Voice pipeline: text to speech (OpenAI-compatible)",
        "apology",
        VOICE_BOUND,
        # Raw PCM: any bytes are audio; there is no JSON and no event to break.
        skip=frozenset({"sse_error", "bad_json", "bad_sse", "bad_tool_args"}),
    ),
    "realtime": Row(
        "Realtime mode (speech to speech, a WebSocket)",
        "apology",
        10.0,
        # A WebSocket carries messages, not a byte stream to drip.
        skip=frozenset({"drip"}),
        # Refused at the handshake: no turn to answer; the room restarts with backoff.
        differs=(
            *((fault, "restart") for fault in ("refused", "hang", "401", "429", "500", "503")),
            ("bad_tool_args", "answer"),
        ),
    ),
    "notebook candidates": Row(
        "Notebooks: `prompts.run_suite` with an online candidate",
        "case error",
        12.0,
        differs=(("bad_tool_args", "answer"),),
    ),
    "config flow": Row(
        "Config flow: the API key check",
        "form error",
        7.0,
        # One GET /models, not a stream.
        skip=frozenset({"sse_error", "bad_sse", "bad_tool_args"}),
    ),
}
