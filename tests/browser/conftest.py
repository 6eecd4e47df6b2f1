"""The browser test runs Home Assistant in a process of its own: no in-process `hass` here."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Enable nothing: the instance loads the integration from its config dir."""


@pytest.fixture(autouse=True)
def core_integration() -> None:
    """Leave the core integration to the instance, which sets it up itself."""
