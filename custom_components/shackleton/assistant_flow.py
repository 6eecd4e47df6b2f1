"""The flow that adds and changes an entry's assistants (its config subentries)."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentry, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.const import CONF_NAME
from homeassistant.helpers.selector import (
    LanguageSelector,
    SelectSelector,
    SelectSelectorConfig,
    TextSelector,
    TextSelectorConfig,
)
import probatio

from .assistants import assistants
from .const import (
    CONF_CONFIRM_DOMAINS,
    CONF_INSTRUCTIONS,
    CONF_LANGUAGE,
    CONF_MODEL,
    CONF_TOOL_GROUPS,
    CONF_VOICE,
    CONFIRMABLE_TARGETS,
    DEFAULT_ASSISTANT,
    TOOL_GROUPS,
)

# Name the first assistant of a new entry gets.
FIRST_ASSISTANT = "Shackleton"
# Trimmed; the model and voice may be blank (the entry's).
_TEXT_FIELDS = (CONF_INSTRUCTIONS, CONF_MODEL, CONF_VOICE)


# Field -> selector; the name and instructions are required, the rest may be blank.
ASSISTANT_FIELDS: dict[str, Any] = {
    CONF_NAME: TextSelector(),
    CONF_INSTRUCTIONS: TextSelector(TextSelectorConfig(multiline=True)),
    CONF_LANGUAGE: LanguageSelector(),
    CONF_MODEL: TextSelector(),
    CONF_VOICE: TextSelector(),
    CONF_TOOL_GROUPS: SelectSelector(
        SelectSelectorConfig(
            options=list(TOOL_GROUPS), multiple=True, translation_key=CONF_TOOL_GROUPS
        )
    ),
    CONF_CONFIRM_DOMAINS: SelectSelector(
        SelectSelectorConfig(
            options=list(CONFIRMABLE_TARGETS),
            multiple=True,
            custom_value=True,
            translation_key=CONF_CONFIRM_DOMAINS,
        )
    ),
}


def _schema() -> probatio.Schema:
    return probatio.Schema(
        {
            (probatio.Optional if key in _TEXT_FIELDS[1:] else probatio.Required)(key): selector
            for key, selector in ASSISTANT_FIELDS.items()
        }
    )


class AssistantFlow(ConfigSubentryFlow):
    """Add an assistant (a persona with its own agent and device), or change one."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add an assistant; it starts from the defaults, in the home's language."""
        defaults = {**DEFAULT_ASSISTANT, CONF_LANGUAGE: self.hass.config.language}
        return self._form("user", user_input, {CONF_NAME: "", **defaults}, None)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change an assistant; the entry reloads with it."""
        subentry = self._get_reconfigure_subentry()
        current = {CONF_NAME: subentry.title, **DEFAULT_ASSISTANT, **subentry.data}
        current.setdefault(CONF_LANGUAGE, self.hass.config.language)
        return self._form("reconfigure", user_input, current, subentry)

    def _form(
        self,
        step_id: str,
        user_input: dict[str, Any] | None,
        current: dict[str, Any],
        subentry: ConfigSubentry | None,
    ) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            name = str(user_input[CONF_NAME]).strip()
            data = {key: value for key, value in user_input.items() if key != CONF_NAME}
            data |= {key: str(data.get(key) or "").strip() for key in _TEXT_FIELDS}
            errors = self._errors(name, data, subentry)
            if not errors and subentry is None:
                return self.async_create_entry(title=name, data=data)
            if not errors and subentry is not None:
                return self.async_update_and_abort(
                    self._get_entry(), subentry, title=name, data=data
                )
            current = {**current, **user_input}
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(_schema(), current),
            errors=errors,
        )

    def _errors(
        self, name: str, data: dict[str, Any], subentry: ConfigSubentry | None
    ) -> dict[str, str]:
        """Return what is wrong with an answer: a missing or taken name, no instructions."""
        others = {
            assistant.name.casefold()
            for assistant in assistants(self._get_entry())
            if subentry is None or assistant.subentry_id != subentry.subentry_id
        }
        if not name:
            return {CONF_NAME: "name_empty"}
        if name.casefold() in others:
            # Rooms choose their assistant by name (select.py).
            return {CONF_NAME: "name_taken"}
        if not data[CONF_INSTRUCTIONS]:
            return {CONF_INSTRUCTIONS: "instructions_empty"}
        return {}
