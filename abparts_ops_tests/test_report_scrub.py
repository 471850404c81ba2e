"""No test report prints the test server's password (a real inner pytest run)."""

from __future__ import annotations

import pytest

INNER = '''
from dataclasses import dataclass, field

from hypothesis import given, settings, strategies as st

from abparts_ops_tests.report_scrub import register_url

URL = "postgresql://tester:S3cretPassw0rd@127.0.0.1:5999/postgres"
register_url(URL)


@dataclass(frozen=True)
class Holder:
    url: str = field(repr=False)


def test_assertion_shows_the_url():
    print("connecting to", URL)
    assert URL == "other"


@settings(max_examples=2, database=None)
@given(st.integers(min_value=0, max_value=1))
def test_hypothesis_example_holds_it(n):
    holder = Holder(URL)
    raise AssertionError(f"failed against {holder.url} with {n}")


def test_key_value_dsn():
    raise RuntimeError("host=127.0.0.1 password=OtherSecret99 dbname=x")
'''


def test_failing_reports_never_show_a_password(pytester: pytest.Pytester) -> None:
    """Assertions, captured output, Hypothesis notes and ``-l`` locals are all scrubbed."""
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "abparts_ops_tests.report_scrub", "-l", "-rA", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=3)
    output = result.stdout.str() + result.stderr.str()
    assert "S3cretPassw0rd" not in output
    assert "OtherSecret99" not in output
    assert "tester:***@127.0.0.1" in output
