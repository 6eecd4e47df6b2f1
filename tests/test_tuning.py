"""The tuning package behind the notebooks: VAD scoring, the prompt suite, HA writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.shackleton.const import CONF_MIN_SILENCE_DURATION, DEFAULT_OPTIONS
from custom_components.shackleton.voice.home import ToolCallError
from custom_components.shackleton.voice.local_audio import read_wav
from custom_components.shackleton.voice.settings import TurnTaking
from tuning import audio, prompts, vad
from tuning.ha import OptionsRefused, write_options
from tuning.report import markdown_table


def _segment(detected: float, ended: float | None, last: float | None) -> vad.Segment:
    return vad.Segment(detected, detected - 0.3, ended, last)


def test_turns_commit_after_the_endpointing_delay_unless_speech_resumes() -> None:
    """LiveKit's rule: last speech + delay, not before silero's end, not if speech resumes."""
    # A 0.4 s hesitation (1.0 -> 1.4) is bridged by 0.55 s of endpointing...
    bridged = [_segment(0.2, 1.3, 1.0), _segment(1.45, 2.5, 2.2)]
    assert vad.commits(bridged, 0.55) == pytest.approx([2.75])
    # ... and cut by 0.3 s.
    assert vad.commits(bridged, 0.3) == pytest.approx([1.3, 2.5])
    # Silero's own end comes later than last speech + delay: the commit waits for it.
    assert vad.commits([_segment(0.2, 2.0, 1.0)], 0.4) == pytest.approx([2.0])
    # Still speaking when the audio ends: nothing committed.
    assert vad.commits([_segment(0.2, None, None)], 0.55) == []


def test_a_clip_is_scored_against_its_labels() -> None:
    """Cut-offs, delays, clipped onsets and false triggers come from the labels."""
    clip = audio.Clip("x.wav", "fan", "a … b", [(1.0, 2.0), (2.6, 3.5)], 5.0)
    found = vad.Trace(
        times=vad.np.array([]),
        probability=vad.np.array([]),
        segments=[
            vad.Segment(0.05, 0.0, 0.3, 0.2),  # a knock long before anyone speaks
            vad.Segment(1.1, 0.95, 2.3, 2.0),
            vad.Segment(2.7, 2.65, 3.8, 3.5),
        ],
    )
    turn = TurnTaking(min_endpointing_delay=0.2)
    score = vad.score(clip, found, turn)
    assert score.false_triggers == 1
    assert score.cut_off  # committed at 2.3, before "b"
    assert score.delay == pytest.approx(0.3)  # 3.8 - 3.5
    assert score.onset_clipped == 0.0  # the padding reaches back to 0.95
    late = vad.score(clip, vad.Trace(found.times, found.probability, found.segments[1:2]),
                     TurnTaking(min_endpointing_delay=2.0))  # fmt: skip
    assert not late.cut_off  # one commit, 2 s after "a": "b" went with it
    assert late.delay == pytest.approx(0.5)
    nobody = audio.Clip("n.wav", "music", "", [], 5.0)
    assert vad.score(nobody, found, turn).false_triggers == 3
    missed = vad.score(clip, vad.Trace(found.times, found.probability, []), turn)
    assert missed.missed


def test_the_recommendation_prices_errors_in_seconds() -> None:
    """A cut-off per clip costs WAIT_PER_ERROR seconds; ties go to the shipped settings."""

    def summary(turn: TurnTaking, cut: bool, delay: float) -> vad.Summary:
        return vad.Summary(turn, [vad.Score("c", (1.0, 2.0), [], cut_off=cut, delay=delay)])

    shipped = TurnTaking()
    fast_but_cuts = summary(TurnTaking(min_endpointing_delay=0.3), True, 0.3)
    slow_but_whole = summary(TurnTaking(min_endpointing_delay=1.0), False, 1.0)
    assert vad.cost(fast_but_cuts) == pytest.approx(2.3)
    assert vad.recommend([fast_but_cuts, slow_but_whole]) is slow_but_whole
    # Cheap errors: waiting is what hurts.
    assert vad.recommend([fast_but_cuts, slow_but_whole], wait_per_error=0.5) is fast_but_cuts
    same = summary(shipped, False, 1.0)
    assert vad.recommend([slow_but_whole, same], shipped=shipped) is same


async def test_silero_hears_the_bundled_clips() -> None:
    """Real silero on a bundled clip: two stretches of speech around a 0.6 s hesitation."""
    clip = next(c for c in audio.load_dataset() if c.file == "timer_fan.wav")
    pcm, rate = await asyncio.to_thread(read_wav, audio.DATA / clip.file)
    assert rate == audio.RATE
    found = await vad.trace(pcm, TurnTaking())
    assert len(found.segments) == 2
    assert clip.turn is not None
    assert found.times[-1] > clip.turn[1] + 1  # probabilities run past the request
    assert (vad.np.diff(found.times) > 0).all()
    for segment, (start, end) in zip(found.segments, clip.phrases, strict=True):
        assert start <= segment.detected <= end
        assert segment.captured_from <= start  # the prefix padding reaches the first word
    score = vad.score(clip, found, TurnTaking())
    assert score.cut_off  # 0.6 s of hesitation outlasts 0.55 s of endpointing
    assert not vad.score(clip, found, TurnTaking(min_endpointing_delay=1.1)).cut_off


def test_the_dataset_labels_match_the_audio() -> None:
    """Every labelled clip is there, as long as its label says, speech inside it."""
    clips = audio.load_dataset()
    assert len(clips) == len(audio.COMMANDS) + len(audio.NOISE_ONLY)
    for clip in clips:
        pcm, rate = read_wav(audio.DATA / clip.file)
        assert len(pcm) / 2 / rate == pytest.approx(clip.duration, abs=0.01)
        assert all(0 < start < end <= clip.duration for start, end in clip.phrases)


def _suite(tmp_path: Path, text: str) -> prompts.Suite:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return prompts.load_suite(path)


def test_suites_say_what_is_wrong_with_them(tmp_path: Path) -> None:
    """A bad expectation names its case; a missing section names the file."""
    home = "home: {entities: [{name: Lamp, domain: light}]}\n"
    with pytest.raises(prompts.SuiteError, match="case 2: expect"):
        _suite(tmp_path, home + "cases:\n - {say: hi}\n - {say: on, expect: [HassTurnOn]}\n")
    with pytest.raises(prompts.SuiteError, match="suite.yaml: missing"):
        _suite(tmp_path, "cases: []\n")
    suite = _suite(tmp_path, home + "cases:\n - {say: hi}\n")
    assert suite.cases[0].refuse


def test_judging_tool_calls() -> None:
    """Expected arguments must match (case and order aside); looking around is free."""
    case = prompts.Case(
        "lights off",
        (
            (
                {
                    "tool": "intent__HassTurnOff",
                    "args": {"area": "Living Room", "domain": ["light"]},
                },
            ),
            ({"tool": "intent__HassTurnOff", "args": {"name": "Ceiling lights"}},),
        ),
    )
    look = ("homeassistant__GetLiveContext", {})
    assert prompts.judge(
        case, [look, ("intent__HassTurnOff", {"area": "living room", "domain": ["light"]})]
    )
    assert prompts.judge(case, [("intent__HassTurnOff", {"name": "Ceiling lights", "floor": "1"})])
    assert not prompts.judge(case, [("intent__HassTurnOn", {"name": "Ceiling lights"})])
    assert not prompts.judge(
        case, [("intent__HassTurnOff", {"area": "Kitchen", "domain": ["light"]})]
    )
    assert not prompts.judge(case, [])
    refusal = prompts.Case("pizza", (), refuse=True)
    assert prompts.judge(refusal, [look])
    assert not prompts.judge(refusal, [("intent__HassTurnOn", {"name": "Oven"})])


async def test_the_rehearsal_home_checks_calls_and_acts_on_nothing() -> None:
    """Calls are checked against the snapshot's schemas and the suite's home."""
    home = prompts.RehearsalHome(
        (prompts.Entity("Kitchen light", "light", "Kitchen"),), prompts.load_tools()
    )
    assert await home.call_tool("r", "intent__HassTurnOn", {"name": "kitchen light"}) == {
        "success": True,
        "speech": "Done.",
    }
    with pytest.raises(ToolCallError, match="no device or entity named Attic"):
        await home.call_tool("r", "intent__HassTurnOn", {"name": "Attic"})
    with pytest.raises(ToolCallError, match="no area named Garage"):
        await home.call_tool("r", "intent__HassTurnOn", {"area": "Garage"})
    with pytest.raises(ToolCallError, match=r"unknown arguments \['colour'\]"):
        await home.call_tool("r", "intent__HassTurnOn", {"name": "Kitchen light", "colour": "red"})
    with pytest.raises(ToolCallError, match="no tool named OpenPodBayDoors"):
        await home.call_tool("r", "OpenPodBayDoors", {})
    context = await home.call_tool("r", "homeassistant__GetLiveContext", {})
    assert "Kitchen light (light, Kitchen)" in context["result"]
    assert [name for name, _ in home.calls] == [
        "intent__HassTurnOn", "intent__HassTurnOn", "intent__HassTurnOn", "intent__HassTurnOn",
        "OpenPodBayDoors", "homeassistant__GetLiveContext",
    ]  # fmt: skip


@pytest.mark.usefixtures("socket_enabled")
async def test_the_offline_models() -> None:
    """HA's sentence templates find intents and slots; a tool's result gets a short reply."""
    entities = (
        prompts.Entity("Ceiling lights", "light", "Living Room"),
        prompts.Entity("Front door", "lock", "Hallway"),
    )
    model = prompts.OfflineLLM(entities)
    await model.start()
    try:
        tools = [
            {"type": "function", "function": {"name": s.name, "parameters": s.parameters}}
            for s in prompts.load_tools()
        ]

        def ask(name: str, text: str) -> tuple[object, ...]:
            return tuple(model.answer(name, [{"role": "user", "content": text}], tools))

        assert ask("assist-sentences", "set the ceiling lights to 40%") == (
            "tool", "light__HassLightSet", {"name": "Ceiling lights", "brightness": 40},
        )  # fmt: skip
        assert ask("assist-sentences", "turn off the lights in the living room") == (
            "tool", "intent__HassTurnOff", {"area": "Living Room", "domain": ["light"]},
        )  # fmt: skip
        assert ask("assist-sentences", "order a pizza")[0] == "text"
        assert ask("keywords", "turn on the ceiling lights") == (
            "tool", "intent__HassTurnOn", {"name": "Ceiling lights"},
        )  # fmt: skip
        assert "does not exist" in str(ask("gpt-9", "hi")[1])
        done = model.answer("keywords", [{"role": "tool", "content": '{"success": true}'}], tools)
        assert done == ("text", "Done.")
        assert model.base_url.startswith("http://127.0.0.1:")
    finally:
        await model.aclose()


def test_markdown_tables() -> None:
    """None shows as a dash, floats compactly, pipes escaped."""
    table = markdown_table([{"a": 0.5, "b": None, "c": "x|y"}])
    assert table.splitlines() == ["| a | b | c |", "| --- | --- | --- |", "| 0.5 | - | x\\|y |"]
    assert markdown_table([]) == "(no rows)"


async def test_writing_options_goes_through_the_options_flow(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_access_token: str,
) -> None:
    """Home Assistant validates the values; refusals and bad tokens say why."""
    assert await async_setup_component(hass, "config", {})
    client = await hass_client()
    url = str(client.make_url("")).rstrip("/")
    entry = loaded_entry.entry_id

    def write(values: dict[str, object], token: str = hass_access_token) -> object:
        return write_options(url, token, entry, values)

    await hass.async_add_executor_job(write, {CONF_MIN_SILENCE_DURATION: 0.6})
    await hass.async_block_till_done()
    assert loaded_entry.options[CONF_MIN_SILENCE_DURATION] == 0.6
    assert loaded_entry.options["voice_worker"] == DEFAULT_OPTIONS["voice_worker"]
    with pytest.raises(OptionsRefused, match="endpointing_order"):
        await hass.async_add_executor_job(
            write, {"min_endpointing_delay": 2.0, "max_endpointing_delay": 1.0}
        )
    with pytest.raises(OptionsRefused, match="no such options: loudness"):
        await hass.async_add_executor_job(write, {"loudness": 11})
    with pytest.raises(OptionsRefused, match="401"):
        await hass.async_add_executor_job(write, {CONF_MIN_SILENCE_DURATION: 0.5}, "bad-token")
    assert loaded_entry.options[CONF_MIN_SILENCE_DURATION] == 0.6


def test_the_guide_describes_the_rehearsal_home() -> None:
    """The snapshot's guide keeps HA's advice and rules but lists the suite's entities."""
    snapshot = prompts.load_guide()
    assert "- names: Kitchen light\n  domain: light\n" in snapshot  # the test home's
    guide = prompts.guide_for(snapshot, (prompts.Entity("Bed light", "light", "Bedroom"),))
    assert "- names: Bed light\n  domain: light\n  areas: Bedroom\n" in guide
    assert "Kitchen light" not in guide
    assert "always call the intent tools" in guide
    assert guide.endswith("Never invent a token.")
