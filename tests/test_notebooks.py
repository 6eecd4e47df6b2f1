"""The tuning notebooks run headless, offline, and say what they should."""

from __future__ import annotations

import ast
import asyncio
import json
import os
from pathlib import Path
import re
import sys
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.shackleton.const import DEFAULT_OPTIONS
from custom_components.shackleton.home_bridge import HassHome

from .conftest import on_recorded_release, setup_front_door

ROOT = Path(__file__).parent.parent
NOTEBOOKS = ROOT / "notebooks"
TOOLS = NOTEBOOKS / "data" / "tools.json"


def _canonical(value: Any) -> Any:
    """Sort enums: Home Assistant builds some from sets, whose order varies by run."""
    if isinstance(value, dict):
        return {
            key: sorted(item) if key == "enum" else _canonical(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


async def _execute(name: str, out: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run a notebook in its own process (a kernel of this venv); return the result."""
    # Not measured: pytest-cov's subprocess hooks would write statement-only data (the
    # kernel runs in notebooks/, away from the branch setting) that cannot be combined.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute",
        str(NOTEBOOKS / name), "--output-dir", str(out),
        "--ExecutePreprocessor.timeout=300",
        env={**inherited, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]
    return dict(json.loads((out / name).read_text()))


def _texts(notebook: dict[str, Any]) -> list[str]:
    """Return each code cell's text output (streams and Markdown), errors failing the test."""
    texts = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        parts = []
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output.get("evalue")
            if output["output_type"] == "stream":
                parts.append("".join(output["text"]))
            elif "text/markdown" in output.get("data", {}):
                parts.append("".join(output["data"]["text/markdown"]))
        texts.append("\n".join(parts))
    return texts


@pytest.mark.usefixtures("kitchen_light")
@on_recorded_release
async def test_tool_snapshot_matches_home_assistant(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """notebooks/data/tools.json is what a real Home Assistant offers the voice agent.

    Regenerate with SHACKLETON_UPDATE_TOOLS=1 after changing the tools.
    """
    await setup_front_door(hass)
    async_expose_entity(hass, "conversation", "lock.front_door", True)
    home = HassHome(hass, loaded_entry)
    room_tools = await home.room_tools("kitchen")
    tools = sorted(
        (
            {"name": s.name, "description": s.description, "parameters": s.parameters}
            for s in room_tools.specs
        ),
        key=lambda spec: spec["name"],
    )
    current = _canonical({"guide": room_tools.guide, "tools": tools})
    if os.environ.get("SHACKLETON_UPDATE_TOOLS"):
        TOOLS.write_text(json.dumps(current, indent=1) + "\n")
    assert json.loads(TOOLS.read_text()) == current


async def test_vad_notebook_recommends_and_writes_to_home_assistant(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_access_token: str,
    tmp_path: Path,
) -> None:
    """The sweep's recommendation goes through the entry's options flow over HTTP."""
    assert await async_setup_component(hass, "config", {})  # the options flow's REST API
    client = await hass_client()
    figures = tmp_path / "figures"
    env = {
        "SHACKLETON_HA_URL": str(client.make_url("")).rstrip("/"),
        "SHACKLETON_HA_TOKEN": hass_access_token,
        "SHACKLETON_ENTRY_ID": loaded_entry.entry_id,
        "SHACKLETON_FIGURES": str(figures),
    }
    texts = _texts(await _execute("vad_tuning.ipynb", tmp_path, env))
    everything = "\n".join(texts)
    assert "12 labelled clips, 0 of yours" in everything
    # The shipped settings cut off "Set a timer for … ten minutes" (a 0.6 s hesitation
    # outlasts 0.55 s of endpointing), and hear the TV as someone speaking.
    assert re.search(r"\| timer_fan\.wav \| 0 \| True \| False \|", everything)
    assert re.search(r"\| noise_babble\.wav \| 1 \| False \| False \|", everything)
    # 3 thresholds x 2 silences x 4 endpointing delays.
    sweep = next(text for text in texts if "cost_s" in text)
    assert "sweep: 24 settings over 12 clips (57 s of audio)" in sweep
    assert len([line for line in sweep.splitlines() if line.startswith("| 0.")]) == 24
    costs = dict(re.findall(r"^(shipped|recommended): .* cost ([0-9.]+) s$", everything, re.M))
    assert float(costs["recommended"]) <= float(costs["shipped"])
    assert "Written to " in texts[-1], texts[-1]
    written = ast.literal_eval(
        everything.split("Written to ", 1)[1].split(": ", 1)[1].splitlines()[0]
    )
    await hass.async_block_till_done()
    assert {key: loaded_entry.options[key] for key in written} == written
    assert loaded_entry.options["voice_worker"] == DEFAULT_OPTIONS["voice_worker"]  # kept
    assert loaded_entry.state is ConfigEntryState.LOADED
    for name in ("vad_clips.png", "vad_sweep.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_prompt_notebook_runs_the_suite_offline(tmp_path: Path) -> None:
    """Without a key the suite runs on the offline models, and the table says how they did."""
    env = {"OPENAI_API_KEY": "", "SHACKLETON_FIGURES": str(tmp_path / "figures")}
    texts = _texts(await _execute("prompt_tuning.ipynb", tmp_path, env))
    everything = "\n".join(texts)
    assert "10 cases, 6 entities, 21 tools" in everything
    assert "offline: 20 runs" in everything
    # HA's sentence templates get every home request right but the note; the keyword
    # baseline only the plainest; both refuse the pod bay doors and the pizza.
    assert re.search(r"\| offline: HA sentence templates \| 7/8 \| 2/2 \| 9/10 \|", everything)
    assert re.search(r"\| offline: keywords \| 1/8 \| 2/2 \| 3/10 \|", everything)
    assert re.search(
        r"\| offline: HA sentence templates \| Remember that the spare key .* \| NO \|", everything
    )
    assert (tmp_path / "figures" / "prompt_candidates.png").stat().st_size > 5000
