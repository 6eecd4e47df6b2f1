"""The deprecation guard: HA's reports of a deprecated API used by Shackleton fail a test."""

from __future__ import annotations

import logging

from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.shackleton.const import DOMAIN

from .conftest import deprecation_reports


async def test_a_deprecated_call_by_shackleton_is_caught(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """A real report_usage naming Shackleton is found; another integration's is not."""
    caplog.set_level(logging.WARNING)
    # What HA says when a custom integration reads ToolResultContent.tool_result, say.
    frame.report_usage(
        "accesses a deprecated thing",
        breaks_in_ha_version="2099.1.0",
        core_behavior=frame.ReportBehavior.LOG,
        custom_integration_behavior=frame.ReportBehavior.LOG,
        integration_domain=DOMAIN,
    )
    frame.report_usage(
        "accesses another deprecated thing",
        breaks_in_ha_version="2099.1.0",
        core_behavior=frame.ReportBehavior.LOG,
        integration_domain="template",
    )
    reports = deprecation_reports(caplog.records)
    assert len(reports) == 1
    assert "custom integration 'shackleton' accesses a deprecated thing" in reports[0]
    # The autouse guard would now fail this test: clear what it would read.
    caplog.clear()


def test_a_deprecated_function_called_from_shackleton_is_caught() -> None:
    """The deprecation helper's line (a function called from our code) is found too."""
    record = logging.LogRecord(
        "homeassistant.helpers.llm",
        logging.WARNING,
        __file__,
        1,
        "The deprecated function %s was called from %s. It will stop working in 2027.2",
        ("async_render_no_api_prompt", "shackleton"),
        None,
    )
    assert deprecation_reports([record]) == [
        "The deprecated function async_render_no_api_prompt was called from shackleton. "
        "It will stop working in 2027.2"
    ]
