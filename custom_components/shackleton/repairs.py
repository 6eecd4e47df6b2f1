"""Repair issues of Shackleton, one of each kind per config entry."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN, ISSUE_NO_LIVEKIT, ISSUE_PROVIDER_FAILING, ISSUE_VOICE_UNAVAILABLE

ISSUE_KINDS = (ISSUE_NO_LIVEKIT, ISSUE_VOICE_UNAVAILABLE, ISSUE_PROVIDER_FAILING)


def issue_id(kind: str, entry_id: str) -> str:
    """Return the id of an entry's issue of one kind."""
    return f"{kind}_{entry_id}"


@callback
def async_raise_issue(
    hass: HomeAssistant,
    kind: str,
    entry_id: str,
    severity: ir.IssueSeverity,
    placeholders: dict[str, str],
) -> None:
    """Raise (or refresh) an entry's issue; it explains itself, nothing to fix in a flow."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(kind, entry_id),
        is_fixable=False,
        is_persistent=False,
        severity=severity,
        translation_key=kind,
        translation_placeholders=placeholders,
    )


@callback
def async_clear_issue(hass: HomeAssistant, kind: str, entry_id: str) -> None:
    """Clear an entry's issue of one kind, if raised."""
    ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry_id))


@callback
def async_clear_all(hass: HomeAssistant, entry_id: str) -> None:
    """Clear every issue of an entry (when it is removed)."""
    for kind in ISSUE_KINDS:
        async_clear_issue(hass, kind, entry_id)
