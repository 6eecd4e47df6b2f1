"""A language model that failed, in words the user can act on, and when to ask it again.

Everything that can go wrong between a request and the last byte of its answer lands
here: the OpenAI SDK's own errors, but also what the SDK lets through while a stream is
read (the HTTP library's ReadTimeout or RemoteProtocolError, a JSON error, an event of
the wrong shape) and our own deadline. Each becomes a translated `ProviderFault`; the
callers then apologise, raise it, or read an announcement as written.

The SDK is never imported here: its classes are looked up once it is loaded.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
import sys
import time
from typing import Any, Final

from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN

# The HTTP stacks the SDK reads streams with (openai 3 uses httpx2; 2 used httpx).
_HTTP_MODULES: Final = frozenset({"httpx", "httpx2", "httpcore", "httpcore2", "h11", "anyio"})
# Statuses worth one more try: the provider's hiccup, not the request's fault.
RETRY_STATUSES: Final = frozenset({408, 409, 429, 500, 502, 503, 504})


class ProviderFault(HomeAssistantError):
    """A provider call that failed; `reason` names the translation (provider_<reason>)."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        retryable: bool = False,
        **placeholders: str,
    ) -> None:
        """Describe the failure; `retry_after` is the provider's own wait, in seconds."""
        super().__init__(
            translation_domain=DOMAIN,
            translation_key=f"provider_{reason}",
            translation_placeholders=placeholders,
        )
        self.reason = reason
        self.retry_after = retry_after
        self.retryable = retryable


def classify(err: BaseException, *, host: str, seconds: float) -> ProviderFault:  # noqa: PLR0911
    """Return what `err`, raised while asking a provider at `host`, means to a user.

    `seconds` is the turn's bound, quoted when the provider was too slow.
    """
    if isinstance(err, ProviderFault):
        return err
    sdk = sys.modules.get("openai")
    if isinstance(err, TimeoutError) or "Timeout" in type(err).__name__:
        return ProviderFault("timeout", retryable=True, seconds=f"{seconds:g}")
    if sdk is not None and isinstance(err, sdk.APIStatusError):
        return _status_fault(err.status_code, err.response.headers)
    if sdk is not None and isinstance(err, sdk.APIConnectionError):
        if "Connect" in type(err.__cause__).__name__:
            # Nothing listens, or the name does not resolve.
            return ProviderFault("unreachable", retryable=True, host=host)
        # The connection broke while the answer came (the SDK wraps what it reads first).
        return ProviderFault("broken", retryable=True)
    if sdk is not None and isinstance(err, sdk.APIError):
        # An error event inside the stream ("An error occurred during streaming").
        return ProviderFault("error_event")
    root = type(err).__module__.partition(".")[0]
    if root in _HTTP_MODULES or isinstance(err, OSError):
        # The stream broke off: a connection closed mid-body, a protocol error.
        return ProviderFault("broken")
    # A body that is not JSON, or JSON of the wrong shape, surfaces as whatever the
    # parser or the SDK's models raise (ValueError, TypeError, AttributeError ...).
    return ProviderFault("malformed")


def _status_fault(status: int, headers: Any) -> ProviderFault:
    if status in (401, 403):
        return ProviderFault("auth", status=str(status))
    if status == 429:
        wait = retry_after(headers)
        retry = f"; it asks to wait {wait:g} s" if wait is not None else ""
        return ProviderFault("rate_limited", retry_after=wait, retryable=True, retry=retry)
    return ProviderFault("server", retryable=status in RETRY_STATUSES, status=str(status))


def retry_after(headers: Any) -> float | None:
    """Return the wait a response asks for (Retry-After or retry-after-ms), in seconds."""
    if headers is None:
        return None
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:  # an HTTP date
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
