"""What a provider's failure means to a user, and how long it asks us to wait.

The fault matrix (test_fault_matrix.py) drives these through real servers; here are the
shapes a real network produces that the matrix's fake servers do not send.
"""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from homeassistant.util import dt as dt_util
import pytest

from custom_components.shackleton.provider_faults import ProviderFault, classify, retry_after


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ({}, None),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "-20"}, 0.0),
        # A millisecond header that is not a number: the seconds header still counts.
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after-ms": "soon"}, None),
        ({"retry-after": "not a date"}, None),
    ],
)
def test_retry_after(headers: dict[str, str] | None, expected: float | None) -> None:
    """The wait asked for, in seconds; None when the response asks for none we can read."""
    assert retry_after(headers) == expected


def test_retry_after_as_an_http_date() -> None:
    """Retry-After may be a date: the wait is the time until then, never negative."""
    soon = format_datetime(dt_util.utcnow().replace(microsecond=0) + timedelta(seconds=30), True)
    assert 28 <= (retry_after({"retry-after": soon}) or 0) <= 30.5
    past = format_datetime(dt_util.utcnow() - timedelta(seconds=30), usegmt=True)
    assert retry_after({"retry-after": past}) == 0.0


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError(), "timeout"),
        (ConnectionResetError("reset by peer"), "broken"),
        (ValueError("Expecting value: line 1 column 1"), "malformed"),
        (AttributeError("'NoneType' object has no attribute 'choices'"), "malformed"),
    ],
)
def test_classify(error: BaseException, reason: str) -> None:
    """A bare network or parsing error gets the reason its translated message names."""
    fault = classify(error, host="llm.local", seconds=6)
    assert fault.reason == reason
    assert fault.translation_key == f"provider_{reason}"


def test_classify_keeps_a_fault_as_it_is() -> None:
    """A fault already classified (by a retry loop) passes through unchanged."""
    fault = ProviderFault("rate_limited", retry_after=1.0, retryable=True, retry="")
    assert classify(fault, host="llm.local", seconds=6) is fault
