"""The README's YAML examples, read from README.md so that the tests run what users copy.

A block is found by its first line, `# example: NAME`. `async_run_example` runs it in a
real `hass`: one action is called as the action (its response returned, when it has
one); a list of steps runs as a script (the response of a closing `stop:
response_variable:` returned).
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant, SupportsResponse
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.script import Script, async_validate_actions_config
import yaml

README = Path(__file__).parents[1] / "README.md"
_BLOCK = re.compile(r"```yaml\n(# example: (?P<name>[\w-]+)\n.*?)```", re.DOTALL)


def readme_example(name: str) -> Any:
    """Return the README's YAML block named `name`, parsed."""
    blocks = {match["name"]: match[1] for match in _BLOCK.finditer(README.read_text())}
    assert name in blocks, f"README.md has no ```yaml block starting '# example: {name}'"
    return yaml.safe_load(blocks[name])


async def async_run_example(
    hass: HomeAssistant, name: str, variables: dict[str, Any] | None = None
) -> Any:
    """Run the README's example `name` as a script; return its response, if any."""
    steps = readme_example(name)
    if isinstance(steps, dict):
        domain, service = steps["action"].split(".")
        call = {**steps.get("data", {}), **steps.get("target", {})}
        responds = hass.services.supports_response(domain, service) != SupportsResponse.NONE
        return await hass.services.async_call(
            domain, service, call, blocking=True, return_response=responds
        )
    # Validated as Home Assistant validates a script: shorthands become full configs.
    sequence = await async_validate_actions_config(hass, cv.SCRIPT_SCHEMA(steps))
    script = Script(hass, sequence, f"README example {name}", "shackleton")
    result = await script.async_run(variables, context=None)
    return None if result is None else result.service_response
