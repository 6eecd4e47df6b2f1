"""Write tuned settings into a Shackleton entry's options, through Home Assistant's API.

It walks the entry's options flow over REST, as the settings dialog does, so Home
Assistant validates the values and reloads the entry. It needs an administrator's
long-lived access token (Profile -> Security).
"""

from __future__ import annotations

import json
from typing import Any
from urllib import error, request

TIMEOUT = 10.0


class OptionsRefused(Exception):
    """Home Assistant refused the values; the message says why."""


def _call(url: str, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    req = request.Request(  # noqa: S310 - the user's own Home Assistant URL
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with request.urlopen(req, timeout=TIMEOUT) as response:  # noqa: S310
            return dict(json.load(response))
    except error.HTTPError as err:
        detail = err.read().decode(errors="replace")[:300]
        raise OptionsRefused(f"Home Assistant answered {err.code}: {detail}") from err


def _answers(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the form's current values (its suggested values), sections nested."""
    out: dict[str, Any] = {}
    for field in schema:
        if field.get("type") == "expandable":
            out[field["name"]] = _answers(field["schema"])
        elif (suggested := (field.get("description") or {}).get("suggested_value")) is not None:
            out[field["name"]] = suggested
        elif "default" in field:
            out[field["name"]] = field["default"]
    return out


def write_options(url: str, token: str, entry_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Set `values` (option keys, in any section) on an entry; return what was sent."""
    form = _call(url, token, "/api/config/config_entries/options/flow", {"handler": entry_id})
    if form.get("type") != "form":
        raise OptionsRefused(f"unexpected answer: {form.get('type')}")
    answers = _answers(form["data_schema"])
    left = dict(values)
    for part in [answers, *(v for v in answers.values() if isinstance(v, dict))]:
        for key in list(left):
            if key in part:
                part[key] = left.pop(key)
    if left:
        raise OptionsRefused(f"no such options: {', '.join(sorted(left))}")
    done = _call(url, token, f"/api/config/config_entries/options/flow/{form['flow_id']}", answers)
    if done.get("type") != "create_entry":
        raise OptionsRefused(f"Home Assistant refused the values: {done.get('errors')}")
    return dict(
        done.get("result", {}).get("options", {}) if isinstance(done.get("result"), dict) else {}
    )
