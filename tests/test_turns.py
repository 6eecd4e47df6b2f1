"""The turn tracker on its own: the bookkeeping the engine relies on, without LiveKit."""

from __future__ import annotations

import pytest

from custom_components.shackleton.voice.home import TurnReport
from custom_components.shackleton.voice.turns import TurnTracker


@pytest.fixture
def reports() -> list[TurnReport]:
    """Collect the reports a tracker hands out."""
    return []


@pytest.fixture
def turns(reports: list[TurnReport]) -> TurnTracker:
    """Return a fresh tracker of the den, reporting into `reports`."""
    return TurnTracker("den", reports.append)


def _commit(turns: TurnTracker, text: str = "lights on") -> str | None:
    """Have the user speak, stop and be committed, as LiveKit reports it."""
    turns.user_started()
    turns.user_stopped(100.0)
    return turns.user_committed(text, end_of_utterance_delay=0.5, transcription_delay=0.2)


def test_answered_turn_is_reported_once(turns: TurnTracker, reports: list[TurnReport]) -> None:
    """A committed turn's answer fills its report, which goes out once."""
    assert _commit(turns) is None
    assert turns.turn == 1
    assert turns.pending == TurnReport(
        room="den", end_of_utterance_delay=0.5, transcription_delay=0.2, user_text="lights on"
    )
    turns.agent_spoke()
    metrics = {"llm_node_ttft": 0.3, "tts_node_ttfb": 0.1, "e2e_latency": 0.9}
    assert turns.answer("Done.", metrics, interrupted=False)

    [report] = reports
    assert report == TurnReport(
        room="den",
        end_of_utterance_delay=0.5,
        transcription_delay=0.2,
        llm_ttft=0.3,
        tts_ttfb=0.1,
        end_to_end=0.9,
        user_text="lights on",
        agent_text="Done.",
    )
    # A second assistant item (the rest of a paused reply) is no new turn.
    assert not turns.answer("More.", metrics, interrupted=False)
    turns.report_failure("late")
    assert len(reports) == 1


def test_realtime_latency_is_timed_from_the_local_vad(
    turns: TurnTracker, reports: list[TurnReport]
) -> None:
    """Without LiveKit's end-to-end figure, it runs from the user's end of speech."""
    _commit(turns)
    assert turns.answer("Hi.", {"started_speaking_at": 100.75}, interrupted=True)
    assert reports[0].end_to_end == pytest.approx(0.75)
    assert reports[0].interrupted


def test_answer_started_before_the_user_stopped_is_not_negative(
    turns: TurnTracker, reports: list[TurnReport]
) -> None:
    """A realtime answer can start before the local VAD heard the end: zero, not less."""
    _commit(turns)
    turns.answer("Hi.", {"started_speaking_at": 99.0}, interrupted=False)
    assert reports[0].end_to_end == 0.0


def test_tools_belong_to_their_turn(turns: TurnTracker, reports: list[TurnReport]) -> None:
    """Tools are listed once each, and older turns' tools are dropped at the next commit."""
    _commit(turns, "first")
    turns.tool_called("turn_on")
    turns.answer("Done.", {}, interrupted=False)
    assert reports[0].tools == ["turn_on"]

    turns.user_started()
    # A fast agent can act before its user item lands: the tools still count for turn 2.
    turns.tool_called("turn_off")
    turns.tools_ran(["turn_off", "set_timer"])
    turns.user_committed("second")
    turns.tools_executed()
    assert turns.pending is not None
    assert turns.pending.tools == ["turn_off", "set_timer"]
    turns.answer("Done.", {}, interrupted=False)
    assert reports[1].tools == ["turn_off", "set_timer"]
    assert turns.tools_called == [(2, "turn_off"), (2, "turn_off"), (2, "set_timer")]


def test_tools_executed_without_a_pending_turn_is_harmless(turns: TurnTracker) -> None:
    """Tools that ran before any commit have no report to go on yet."""
    turns.tool_called("turn_on")
    turns.tools_executed()
    assert turns.pending is None
    assert turns.tool_names() == ["turn_on"]


def test_failure_is_reported_once_per_turn(turns: TurnTracker, reports: list[TurnReport]) -> None:
    """The first failure claims the turn; later ones (the watchdog too) do not count."""
    _commit(turns)
    turns.tool_called("turn_on")
    assert turns.fail("llm_error")
    turns.report_failure("llm_error")
    assert not turns.fail("timeout")
    [report] = reports
    assert report.error == "llm_error"
    assert report.tools == ["turn_on"]
    assert turns.pending is None

    # Thinking again (a retry of the same turn) may fail afresh, but reports nothing.
    turns.thinking()
    assert turns.fail("llm_error")
    turns.report_failure("llm_error")
    assert len(reports) == 1


def test_each_new_turn_may_fail(turns: TurnTracker, reports: list[TurnReport]) -> None:
    """Speaking again opens a turn whose failure is counted on its own."""
    _commit(turns, "one")
    assert turns.fail("llm_error")
    turns.report_failure("llm_error")
    _commit(turns, "two")
    assert turns.fail("llm_error")
    turns.report_failure("llm_error")
    assert [(r.user_text, r.error) for r in reports] == [("one", "llm_error"), ("two", "llm_error")]


def test_preemptive_failure_waits_for_its_turn(
    turns: TurnTracker, reports: list[TurnReport]
) -> None:
    """A failure before the commit is deferred, then handed back when the turn lands."""
    turns.user_started()
    assert not turns.fail("llm_error", defer=True)
    assert not reports

    assert turns.user_committed("lights on") == "llm_error"
    assert turns.deferred_failure is None  # consumed: the engine fails the turn with it
    assert not reports
    assert turns.fail("llm_error")
    turns.report_failure("llm_error")
    assert reports[0].error == "llm_error"
    assert reports[0].user_text == "lights on"


def test_deferred_failure_is_dropped_when_the_user_goes_on(turns: TurnTracker) -> None:
    """Still talking: LiveKit drops the preemptive reply, so its failure goes too."""
    turns.user_started()
    turns.fail("llm_error", defer=True)
    turns.user_started()
    assert turns.deferred_failure is None
    assert turns.user_committed("lights on") is None


def test_failure_of_a_committed_turn_is_not_deferred(turns: TurnTracker) -> None:
    """With a committed turn waiting, a failure is that turn's at once."""
    _commit(turns)
    assert turns.fail("llm_error", defer=True)
    assert turns.deferred_failure is None


def test_silent_turn_is_unanswered_until_something_happens(turns: TurnTracker) -> None:
    """No words, no tool, no apology: the engine fails such a turn as llm_empty."""
    assert not turns.is_unanswered()  # nothing committed
    _commit(turns)
    assert turns.is_unanswered()

    turns.tool_called("turn_on")
    assert not turns.is_unanswered()

    _commit(turns, "again")
    assert turns.is_unanswered()  # the last turn's tool is not this one's
    turns.agent_spoke()
    assert not turns.is_unanswered()

    _commit(turns, "and again")
    assert not turns.answered  # speaking again resets it
    assert turns.start_apology()
    assert not turns.is_unanswered()


def test_apology_is_no_answer(turns: TurnTracker, reports: list[TurnReport]) -> None:
    """While apologising, assistant items are the apology, not the turn's answer."""
    _commit(turns)
    assert turns.start_apology()
    assert not turns.start_apology()  # one at a time
    assert not turns.answer("Sorry.", {}, interrupted=False)
    assert turns.pending is not None
    assert not reports

    turns.apology_done()
    assert turns.answer("Done.", {}, interrupted=False)
    assert reports[0].agent_text == "Done."
    assert turns.start_apology()


def test_interrupted_answer_is_still_an_answer(
    turns: TurnTracker, reports: list[TurnReport]
) -> None:
    """A barge-in cuts the answer short; the turn is reported as interrupted, not failed."""
    _commit(turns)
    turns.agent_spoke()
    assert turns.answer("The weather today is", {}, interrupted=True)
    assert reports[0].interrupted
    assert reports[0].error is None
