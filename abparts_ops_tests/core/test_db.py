"""URLs: one entry point (parse_url) and one redaction routine (scrub / redact_url)."""

from __future__ import annotations

import pytest

from abparts_ops.core.db import parse_url, redact_text, redact_url, scrub, secrets_of
from abparts_ops.core.errors import DatabaseError

SECRET = "Sx9f3kQ2Pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://u:{SECRET}@h:54x2/db", "has a port that is not a number"),
        (f"postgresql+asyncpg://u:{SECRET}@h/db", "names the driver 'asyncpg'"),
        (f"postgresql+pg8000://u:{SECRET}@h/db", "names the driver 'pg8000'"),
        (f"postgresql://u:{SECRET[:4]}@{SECRET[4:]}@h/db", "unencoded '@'"),
        (f"host=h password={SECRET}", "is a key=value connection string"),
        (f"mysql://u:{SECRET}@h/db", "is a 'mysql' URL"),
        ("not a url at all", "is not valid"),
    ],
)
def test_bad_urls_are_one_line_naming_the_variable(url: str, expected: str) -> None:
    """Each refusal names the environment and the variable, never the URL's value."""
    with pytest.raises(DatabaseError) as caught:
        parse_url(url, label="prod", variable="ABPT_PROD_URL")
    message = str(caught.value)
    assert message.startswith("prod: the database URL in ABPT_PROD_URL ")
    assert expected in message and "\n" not in message
    assert SECRET not in message and SECRET[4:] not in message
    error = caught.value  # no chained exception can carry the URL into a traceback
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_libpq_spellings_are_accepted() -> None:
    """postgres://, +psycopg (psycopg 3) and +psycopg2 all become psycopg2 URLs."""
    for url in ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db",
                "postgresql+psycopg2://u:p@h:5433/db", "postgresql://u:p@h/db"):
        assert parse_url(url).drivername == "postgresql+psycopg2"


def test_every_secret_form_is_masked() -> None:
    """User info, query parameters, key=value pairs, encodings, the user-field password."""
    cases = {
        f"postgresql://u:{SECRET}@h/db": "postgresql://u:***@h/db",
        f"postgresql://u@h/db?password={SECRET}&sslmode=require":
            "postgresql://u@h/db?password=***&sslmode=require",
        f"postgresql://u@h/db?sslpassword={SECRET}": "postgresql://u@h/db?sslpassword=***",
        f"postgresql://{SECRET}@h/db": "postgresql://***@h/db",
    }
    for url, expected in cases.items():
        assert redact_url(url) == expected
    assert redact_text(f"host=h password='{SECRET} x' port=5") == "host=h password=*** port=5"
    assert redact_text(f"x postgresql://u:{SECRET}@h@h2/db y") == "x postgresql://u:***@h2/db y"
    encoded = "Sx9f%40k%3AQ2Pw"
    text = scrub(f"failed for Sx9f@k:Q2Pw and {encoded}", f"postgresql://u:{encoded}@h/db")
    assert "Sx9f" not in text and "Q2Pw" not in text
    assert secrets_of(None) == set() and secrets_of("postgresql://u@h/db") == {"u"}
