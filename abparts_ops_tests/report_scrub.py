"""Keep the test server's secrets out of every test report.

A failing test prints its assertion, its locals (``-l``), Hypothesis's falsifying example
and whatever the test captured; any of these may hold the test server's URL. This plugin
replaces every secret registered with :func:`register_url` (in each encoding) and every
password-shaped part of any connection string by ``***`` in a report before pytest or
its terminal writer sees it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from abparts_ops.core.db import redact_text, secrets_of

_SECRETS: set[str] = set()


def register_url(url: str) -> None:
    """Remember the secrets ``url`` carries so that no report shows them."""
    _SECRETS.update(secret for secret in secrets_of(url) if len(secret) >= 4)


def scrub_report_text(text: str) -> str:
    """``text`` with connection-string secrets and every registered secret masked."""
    text = redact_text(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    """Scrub the report's failure text and captured sections before anyone prints them."""
    outcome = yield
    report = outcome.get_result()
    if report.longrepr is not None:
        text = report.longreprtext
        clean = scrub_report_text(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, scrub_report_text(body)) for title, body in report.sections]
