"""Config, reauth, reconfigure and options flows for Shackleton."""

from __future__ import annotations

from collections.abc import Mapping
import math
import os
from typing import Any, Final

from homeassistant.components import conversation, stt, webhook
from homeassistant.components.tts import helper as tts_helper
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryData,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    ConversationAgentSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .assistant_flow import FIRST_ASSISTANT, AssistantFlow
from .const import (
    CARD_TOKEN_MAX_MINUTES,
    CONF_ANNOUNCE_NOBODY,
    CONF_ANNOUNCE_QUEUE_MINUTES,
    CONF_AUTO_JOIN_PREFIX,
    CONF_CARD_TOKEN_MINUTES,
    CONF_DASHBOARD_ROOMS,
    CONF_LANGUAGE,
    CONF_LIVEKIT_API_KEY,
    CONF_LIVEKIT_API_SECRET,
    CONF_LIVEKIT_BROWSER_URL,
    CONF_LIVEKIT_URL,
    CONF_MAX_ENDPOINTING_DELAY,
    CONF_MIN_ENDPOINTING_DELAY,
    CONF_MIN_INTERRUPTION_DURATION,
    CONF_MIN_SILENCE_DURATION,
    CONF_MIN_SPEECH_DURATION,
    CONF_PREFIX_PADDING,
    CONF_TRANSCRIPT_RETENTION_DAYS,
    CONF_TRANSCRIPTS_IN_EVENTS,
    CONF_VAD_ACTIVATION_THRESHOLD,
    CONF_VOICE_MODE,
    CONF_WORKER,
    DEFAULT_ASSISTANT,
    DEFAULT_OPTIONS,
    DOMAIN,
    NOBODY_POLICIES,
    PIPELINE_STAGES,
    PRICE_MAX,
    PRICE_OPTIONS,
    STAGE_LLM,
    STAGE_REALTIME,
    STAGE_STT,
    STAGE_TTS,
    SUBENTRY_ASSISTANT,
    VOICE_MODE_PIPELINE,
    VOICE_MODE_REALTIME,
    VOICE_MODES,
    WORKER_PLACEMENTS,
    api_key_key,
    base_url_key,
    model_key,
    provider_key,
)
from .livekit_server import (
    LiveKitError,
    LiveKitInvalidUrl,
    async_check_livekit,
    normalize_livekit_url,
)
from .livekit_webhook import webhook_id
from .provider_catalog import (
    PROVIDER_HOME_ASSISTANT,
    PROVIDER_LOCAL,
    PROVIDER_OPENAI,
    PROVIDERS,
    ProviderError,
    async_check_provider,
    normalize_base_url,
    providers_for,
)
from .voice.settings import ROOM_NAME

# The home's own engines, picked from what it has.
_IN_HOME_SELECTORS: dict[str, Any] = {
    STAGE_STT: EntitySelector(EntitySelectorConfig(domain="stt")),
    STAGE_LLM: ConversationAgentSelector(),
    STAGE_TTS: EntitySelector(EntitySelectorConfig(domain="tts")),
}
_SECRET = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_TEXT = TextSelector()
_URL = TextSelector(TextSelectorConfig(type=TextSelectorType.URL))

SECTION_TURN_TAKING = "turn_taking"
SECTION_ROOMS = "rooms"
SECTION_DASHBOARD = "dashboard"
SECTION_PRIVACY = "privacy"


def _seconds(maximum: float, step: float = 0.05) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=0.0, max=maximum, step=step, unit_of_measurement="s", mode=NumberSelectorMode.BOX
        )
    )


# Section -> option key -> selector. Where the voice runs sits above the sections.
OPTION_SECTIONS: dict[str, dict[str, Any]] = {
    SECTION_TURN_TAKING: {
        CONF_VAD_ACTIVATION_THRESHOLD: NumberSelector(
            NumberSelectorConfig(min=0.05, max=0.95, step=0.05, mode=NumberSelectorMode.SLIDER)
        ),
        CONF_MIN_SPEECH_DURATION: _seconds(2.0),
        CONF_MIN_SILENCE_DURATION: _seconds(3.0),
        CONF_PREFIX_PADDING: _seconds(2.0),
        CONF_MIN_INTERRUPTION_DURATION: _seconds(2.0),
        CONF_MIN_ENDPOINTING_DELAY: _seconds(5.0),
        CONF_MAX_ENDPOINTING_DELAY: _seconds(10.0),
    },
    SECTION_ROOMS: {
        CONF_AUTO_JOIN_PREFIX: TextSelector(),
        CONF_ANNOUNCE_NOBODY: SelectSelector(
            SelectSelectorConfig(
                options=list(NOBODY_POLICIES),
                translation_key=CONF_ANNOUNCE_NOBODY,
                mode=SelectSelectorMode.LIST,
            )
        ),
        CONF_ANNOUNCE_QUEUE_MINUTES: NumberSelector(
            NumberSelectorConfig(
                min=1, max=1440, step=1, unit_of_measurement="min", mode=NumberSelectorMode.BOX
            )
        ),
    },
    SECTION_DASHBOARD: {
        CONF_DASHBOARD_ROOMS: SelectSelector(
            SelectSelectorConfig(options=[], multiple=True, custom_value=True)
        ),
        CONF_CARD_TOKEN_MINUTES: NumberSelector(
            NumberSelectorConfig(
                min=1,
                max=CARD_TOKEN_MAX_MINUTES,
                step=1,
                unit_of_measurement="min",
                mode=NumberSelectorMode.BOX,
            )
        ),
        CONF_LIVEKIT_BROWSER_URL: _URL,
    },
    SECTION_PRIVACY: {
        CONF_TRANSCRIPT_RETENTION_DAYS: NumberSelector(
            NumberSelectorConfig(
                min=0, max=365, step=1, unit_of_measurement="d", mode=NumberSelectorMode.BOX
            )
        ),
        CONF_TRANSCRIPTS_IN_EVENTS: BooleanSelector(),
    },
}

# --- Costs: a section of its own, the prices behind the estimated cost sensors ----------
SECTION_COSTS = "costs"
# No min/max in the selector: a bad price gets the form's translated error, not a
# schema error (`_checked_prices`).
_PRICE = NumberSelector(NumberSelectorConfig(step="any", mode=NumberSelectorMode.BOX))


def _price_section(current: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Return the costs section and the prices it shows (unset ones stay empty)."""
    schema = probatio.Schema({probatio.Optional(key): _PRICE for key in PRICE_OPTIONS})
    shown = {key: current[key] for key in PRICE_OPTIONS if current.get(key) is not None}
    return section(schema, {"collapsed": not shown}), shown


def _checked_prices(answer: Mapping[str, Any]) -> tuple[dict[str, float | None], str | None]:
    """Return every price option (None: cleared, no cost), and an error if one is bad."""
    prices: dict[str, float | None] = {}
    error: str | None = None
    for key in PRICE_OPTIONS:
        prices[key] = value = answer.get(key)
        if value is None:
            continue
        try:
            price = float(value)
        except (TypeError, ValueError):
            price = math.nan
        if math.isfinite(price) and 0 <= price <= PRICE_MAX:
            prices[key] = price
        else:
            error = "invalid_price"  # shown again as typed, to be mended
    return prices, error


def _with_prices(options: dict[str, Any], prices: Mapping[str, float | None]) -> dict[str, Any]:
    """Return the options with the prices set, and the cleared ones left out."""
    kept = {key: value for key, value in options.items() if key not in PRICE_OPTIONS}
    return kept | {key: value for key, value in prices.items() if value is not None}


# ------------------------------------------------------------------------------------

# Options that may be left blank (the form then leaves them out).
BLANKABLE: Final = (CONF_AUTO_JOIN_PREFIX, CONF_LIVEKIT_BROWSER_URL)


def stages_in_use(data: Mapping[str, Any]) -> list[str]:
    """Return the stages the chosen voice mode needs; the LLM also serves text."""
    if data.get(CONF_VOICE_MODE) == VOICE_MODE_REALTIME:
        return [STAGE_LLM, STAGE_REALTIME]
    return list(PIPELINE_STAGES)


def stage_provider(data: Mapping[str, Any], stage: str) -> str:
    """Return the provider serving a stage; realtime is OpenAI's."""
    if stage == STAGE_REALTIME:
        return PROVIDER_OPENAI
    return str(data[provider_key(stage)])


def providers_in_use(data: Mapping[str, Any]) -> list[str]:
    """Return the providers the configuration uses, in display order."""
    used = {stage_provider(data, stage) for stage in stages_in_use(data)}
    return [name for name in PROVIDERS if name in used]


def _uid(data: Mapping[str, Any]) -> str | None:
    if CONF_LIVEKIT_URL not in data:
        return None
    return f"{data[CONF_LIVEKIT_URL]}|{data[CONF_LIVEKIT_API_KEY]}"


def _title(data: Mapping[str, Any]) -> str:
    if CONF_LIVEKIT_URL not in data:
        return "Shackleton"
    host = normalize_livekit_url(data[CONF_LIVEKIT_URL]).split("://", 1)[1]
    return f"Shackleton ({host})"


class ShackletonConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up Shackleton: the LiveKit server (optional), then the assistant."""

    VERSION = 2
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing chosen."""
        self._data: dict[str, Any] = {}

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Return the assistants' flow: personas are subentries of the entry."""
        return {SUBENTRY_ASSISTANT: AssistantFlow}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> ShackletonOptionsFlow:
        """Return the options flow."""
        return ShackletonOptionsFlow()

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask whether there is a LiveKit server yet."""
        return self.async_show_menu(step_id="user", menu_options=["livekit", "skip_livekit"])

    async def async_step_skip_livekit(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Go on without voice rooms: text, tools and announcements still work."""
        return await self.async_step_assistant()

    async def async_step_livekit(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the LiveKit server and check it with a real API call."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                server = await self._async_validate_livekit(user_input)
            except LiveKitError as err:
                errors["base"] = err.reason
            else:
                await self.async_set_unique_id(_uid(server))
                self._abort_if_unique_id_configured()
                self._data.update(server)
                return await self.async_step_assistant()
        schema = probatio.Schema(
            {
                probatio.Required(CONF_LIVEKIT_URL): _URL,
                probatio.Required(CONF_LIVEKIT_API_KEY): _TEXT,
                probatio.Required(CONF_LIVEKIT_API_SECRET): _SECRET,
            }
        )
        return self.async_show_form(
            step_id="livekit",
            data_schema=self.add_suggested_values_to_schema(schema, _without_secrets(user_input)),
            errors=errors,
        )

    async def async_step_assistant(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the voice mode and a provider per stage."""
        if user_input is not None:
            self._data.update(user_input)
            return await self.async_step_credentials()
        fields: dict[Any, Any] = {
            probatio.Required(
                CONF_VOICE_MODE, default=self._data.get(CONF_VOICE_MODE, VOICE_MODE_PIPELINE)
            ): SelectSelector(
                SelectSelectorConfig(
                    options=list(VOICE_MODES),
                    translation_key=CONF_VOICE_MODE,
                    mode=SelectSelectorMode.LIST,
                )
            )
        }
        for stage in PIPELINE_STAGES:
            choices = providers_for(stage)
            fields[
                probatio.Required(
                    provider_key(stage), default=self._data.get(provider_key(stage), choices[0])
                )
            ] = SelectSelector(SelectSelectorConfig(options=choices, translation_key="provider"))
        return self.async_show_form(step_id="assistant", data_schema=probatio.Schema(fields))

    async def async_step_credentials(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the keys, URLs and models of the chosen providers, and check each key."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors, cleaned = await self._async_validate_providers(user_input)
            if not errors:
                self._data.update(cleaned)
                return await self._async_finish()
        keep_blank = self.source == SOURCE_RECONFIGURE
        fields: dict[Any, Any] = {}
        for name in providers_in_use(self._data):
            spec = PROVIDERS[name]
            if not spec.remote:
                continue
            if spec.needs_api_key and not (keep_blank and self._data.get(api_key_key(name))):
                fields[probatio.Required(api_key_key(name))] = _SECRET
            else:
                fields[probatio.Optional(api_key_key(name))] = _SECRET
            url = self._data.get(base_url_key(name), spec.default_base_url)
            if spec.default_base_url is None:
                fields[probatio.Required(base_url_key(name), default=url or probatio.UNDEFINED)] = (
                    _URL
                )
            else:
                fields[probatio.Optional(base_url_key(name), default=url)] = _URL
        for stage in stages_in_use(self._data):
            default = self._data.get(model_key(stage)) or PROVIDERS[
                stage_provider(self._data, stage)
            ].default_models.get(stage)
            fields[probatio.Required(model_key(stage), default=default or probatio.UNDEFINED)] = (
                _IN_HOME_SELECTORS[stage]
                if stage_provider(self._data, stage) == PROVIDER_HOME_ASSISTANT
                else _TEXT
            )
        schema = probatio.Schema(fields)
        return self.async_show_form(
            step_id="credentials",
            data_schema=self.add_suggested_values_to_schema(schema, _without_secrets(user_input)),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """Start reauthentication after a server or provider refused a secret."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask again for the secrets; a blank provider key keeps the stored one."""
        entry = self._get_reauth_entry()
        fields: dict[Any, Any] = {}
        if CONF_LIVEKIT_URL in entry.data:
            fields[
                probatio.Required(CONF_LIVEKIT_API_KEY, default=entry.data[CONF_LIVEKIT_API_KEY])
            ] = _TEXT
            fields[probatio.Required(CONF_LIVEKIT_API_SECRET)] = _SECRET
        for name in providers_in_use(entry.data):
            fields[probatio.Optional(api_key_key(name))] = _SECRET
        schema = probatio.Schema(fields)
        errors: dict[str, str] = {}
        if user_input is not None:
            merged = {**entry.data, **{k: v for k, v in user_input.items() if v}}
            try:
                if CONF_LIVEKIT_URL in merged:
                    merged.update(await self._async_validate_livekit(merged))
            except LiveKitError as err:
                errors["base"] = err.reason
            else:
                self._data = merged
                errors, cleaned = await self._async_validate_providers(merged)
                errors = _onto_form(errors, schema)
                if not errors:
                    if self._uid_taken(_uid(merged), entry):
                        return self.async_abort(reason="already_configured")
                    # A failed entry has no update listener: reauth reloads it itself.
                    return self.async_update_reload_and_abort(
                        entry, unique_id=_uid(merged), data={**merged, **cleaned}
                    )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=schema,
            errors=errors,
            description_placeholders={"title": entry.title},
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the LiveKit server (blank URL: none), then the providers."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                k: v
                for k, v in entry.data.items()
                if k not in (CONF_LIVEKIT_URL, CONF_LIVEKIT_API_KEY, CONF_LIVEKIT_API_SECRET)
            }
            if user_input.get(CONF_LIVEKIT_URL):
                server = {
                    CONF_LIVEKIT_URL: user_input[CONF_LIVEKIT_URL],
                    CONF_LIVEKIT_API_KEY: user_input.get(CONF_LIVEKIT_API_KEY, ""),
                    CONF_LIVEKIT_API_SECRET: user_input.get(CONF_LIVEKIT_API_SECRET)
                    or entry.data.get(CONF_LIVEKIT_API_SECRET, ""),
                }
                try:
                    data.update(await self._async_validate_livekit(server))
                except LiveKitError as err:
                    errors["base"] = err.reason
            if not errors:
                if self._uid_taken(_uid(data), entry):
                    return self.async_abort(reason="already_configured")
                self._data = data
                return await self.async_step_assistant()
        schema = probatio.Schema(
            {
                probatio.Optional(CONF_LIVEKIT_URL): _URL,
                probatio.Optional(CONF_LIVEKIT_API_KEY): _TEXT,
                probatio.Optional(CONF_LIVEKIT_API_SECRET): _SECRET,
            }
        )
        suggested = _without_secrets(user_input if user_input is not None else entry.data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
        )

    async def _async_finish(self) -> ConfigFlowResult:
        if self.source == SOURCE_RECONFIGURE:
            entry = self._get_reconfigure_entry()
            return self.async_update_and_abort(  # the update listener reloads
                entry, unique_id=_uid(self._data), title=_title(self._data), data=self._data
            )
        first = ConfigSubentryData(
            data={**DEFAULT_ASSISTANT, CONF_LANGUAGE: self.hass.config.language},
            subentry_type=SUBENTRY_ASSISTANT,
            title=FIRST_ASSISTANT,
            unique_id=None,
        )
        return self.async_create_entry(
            title=_title(self._data), data=self._data, options=DEFAULT_OPTIONS, subentries=[first]
        )

    def _uid_taken(self, uid: str | None, entry: ConfigEntry) -> bool:
        return uid is not None and any(
            other.unique_id == uid and other.entry_id != entry.entry_id
            for other in self._async_current_entries(include_ignore=False)
        )

    async def _async_validate_livekit(self, user_input: Mapping[str, Any]) -> dict[str, str]:
        """Return the cleaned server settings, or raise a LiveKitError."""
        url = normalize_livekit_url(user_input[CONF_LIVEKIT_URL])
        key = str(user_input[CONF_LIVEKIT_API_KEY]).strip()
        secret = str(user_input[CONF_LIVEKIT_API_SECRET]).strip()
        await async_check_livekit(async_get_clientsession(self.hass), url, key, secret)
        return {CONF_LIVEKIT_URL: url, CONF_LIVEKIT_API_KEY: key, CONF_LIVEKIT_API_SECRET: secret}

    async def _async_validate_providers(
        self, user_input: Mapping[str, Any]
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Check every provider in use with one call each; return (errors, cleaned data)."""
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        session = async_get_clientsession(self.hass)
        stages = stages_in_use(self._data)
        for stage in stages:
            field_name = model_key(stage)
            model = str(user_input.get(field_name) or self._data.get(field_name) or "").strip()
            if not model:
                errors[field_name] = "model_required"
                continue
            cleaned[field_name] = model
            if (reason := await self._async_check_in_home(stage, model)) is not None:
                errors[field_name] = reason
        for name in providers_in_use(self._data):
            spec = PROVIDERS[name]
            if not spec.remote:
                continue
            key_field, url_field = api_key_key(name), base_url_key(name)
            api_key = (user_input.get(key_field) or self._data.get(key_field) or "").strip()
            raw_url = user_input.get(url_field) or spec.default_base_url or ""
            try:
                base_url = normalize_base_url(raw_url)
                listed = await async_check_provider(session, base_url, api_key or None)
            except ProviderError as err:
                errors[key_field if err.reason == "invalid_api_key" else url_field] = err.reason
                continue
            if api_key:
                cleaned[key_field] = api_key
            cleaned[url_field] = base_url
            if spec.lists_all_models:
                for stage in stages:
                    listed_model = cleaned.get(model_key(stage))
                    if (
                        listed_model
                        and stage_provider(self._data, stage) == name
                        and listed_model not in listed
                    ):
                        errors[model_key(stage)] = "model_not_found"
        return errors, cleaned

    async def _async_check_in_home(self, stage: str, model: str) -> str | None:
        """Check a model that runs in HA: the agent exists, the model path is there."""
        provider = stage_provider(self._data, stage)
        if provider == PROVIDER_HOME_ASSISTANT:
            if stage == STAGE_LLM:
                if conversation.async_get_agent_info(self.hass, model) is None:
                    return "agent_not_found"
            elif stage == STAGE_STT:
                if (
                    stt.DOMAIN not in self.hass.config.components
                    or stt.async_get_speech_to_text_engine(self.hass, model) is None
                ):
                    return "engine_not_found"
            elif (
                "tts" not in self.hass.config.components
                or tts_helper.get_engine_instance(self.hass, model) is None
            ):
                return "engine_not_found"
        elif (
            provider == PROVIDER_LOCAL
            and model != PROVIDERS[provider].default_models[stage]
            and not await self.hass.async_add_executor_job(os.path.exists, model)
        ):
            return "model_path_not_found"
        return None


SECRET_FIELDS = frozenset(
    {
        CONF_LIVEKIT_API_SECRET,
        *(api_key_key(name) for name, spec in PROVIDERS.items() if spec.remote),
    }
)


def _without_secrets(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return form values fit to show again: never echo a secret back."""
    if values is None:
        return None
    return {k: v for k, v in values.items() if k not in SECRET_FIELDS}


def _onto_form(errors: dict[str, str], schema: probatio.Schema) -> dict[str, str]:
    """Move errors of fields a form does not show onto its `base`."""
    shown = {str(key) for key in schema.schema}
    return {(key if key in shown else "base"): reason for key, reason in errors.items()}


class ShackletonOptionsFlow(OptionsFlow):
    """Tune where the voice runs, turn-taking, rooms, the card and privacy.

    Each assistant's persona and tools are its own (assistant_flow.py).
    """

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show every option; sections keep the advanced ones folded."""
        errors: dict[str, str] = {}
        current = {**DEFAULT_OPTIONS, **self.config_entry.options}
        if user_input is not None:
            prices, price_error = _checked_prices(user_input.get(SECTION_COSTS, {}))
            flat, errors = _checked_options(
                {k: v for k, v in user_input.items() if k != SECTION_COSTS}
            )
            if price_error and not errors:
                errors["base"] = price_error
            current = _with_prices({**current, **flat}, prices)
            if not errors:
                return self.async_create_entry(data=current)
        fields, suggested = self._options_form(current)
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(probatio.Schema(fields), suggested),
            errors=errors,
            description_placeholders={
                "webhook_path": webhook.async_generate_path(webhook_id(self.config_entry.entry_id)),
                "currency": self.hass.config.currency,
            },
        )

    def _options_form(self, current: dict[str, Any]) -> tuple[dict[Any, Any], dict[str, Any]]:
        """Return the options form's fields and the values it shows."""
        fields: dict[Any, Any] = {
            probatio.Optional(CONF_WORKER): SelectSelector(
                SelectSelectorConfig(
                    options=list(WORKER_PLACEMENTS),
                    translation_key=CONF_WORKER,
                    mode=SelectSelectorMode.LIST,
                )
            ),
        }
        suggested: dict[str, Any] = {CONF_WORKER: current[CONF_WORKER]}
        for name, selectors in OPTION_SECTIONS.items():
            fields[probatio.Required(name)] = section(
                probatio.Schema(
                    {
                        (probatio.Optional if key in BLANKABLE else probatio.Required)(key): sel
                        for key, sel in selectors.items()
                    }
                ),
                {"collapsed": name != SECTION_TURN_TAKING},
            )
            suggested[name] = {key: current[key] for key in selectors}
        # A default: an answer without the section (an older frontend, a script) is no error.
        costs, suggested[SECTION_COSTS] = _price_section(current)
        fields[probatio.Required(SECTION_COSTS, default={})] = costs
        return fields, suggested


def _checked_options(user_input: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the options form's answer, its sections flattened and checked, and errors."""
    errors: dict[str, str] = {}
    flat = {k: v for k, v in user_input.items() if k not in OPTION_SECTIONS}
    for name in OPTION_SECTIONS:
        flat.update(user_input.get(name, {}))
    # A cleared text field is left out of the answer: blank it.
    flat.update({key: str(flat.get(key) or "").strip() for key in BLANKABLE})
    flat[CONF_DASHBOARD_ROOMS] = [room.strip() for room in flat[CONF_DASHBOARD_ROOMS]]
    browser_url = flat[CONF_LIVEKIT_BROWSER_URL]
    if flat[CONF_MIN_ENDPOINTING_DELAY] > flat[CONF_MAX_ENDPOINTING_DELAY]:
        errors["base"] = "endpointing_order"
    elif not all(ROOM_NAME.fullmatch(room) for room in flat[CONF_DASHBOARD_ROOMS]):
        errors["base"] = "invalid_dashboard_rooms"
    else:
        try:
            flat[CONF_LIVEKIT_BROWSER_URL] = (
                normalize_livekit_url(browser_url) if browser_url else ""
            )
        except LiveKitInvalidUrl:
            errors["base"] = "invalid_browser_url"
    if not errors:
        for whole in (
            CONF_TRANSCRIPT_RETENTION_DAYS,
            CONF_ANNOUNCE_QUEUE_MINUTES,
            CONF_CARD_TOKEN_MINUTES,
        ):
            flat[whole] = int(flat[whole])
    return flat, errors
