"""The cheap probe: the same fingerprint as the snapshot, and the environment's revisions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from abparts_ops.core.errors import DatabaseError
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.watch.probe import KnownSchema, ProbeResult, probe
from abparts_ops_tests.sql import run_sql

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE users (
  id serial PRIMARY KEY,
  name text NOT NULL,
  mood mood DEFAULT 'ok'
);
COMMENT ON COLUMN users.name IS 'naïve — ünïcode comment';
CREATE TABLE posts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id int REFERENCES users (id) ON DELETE CASCADE,
  body text CHECK (length(body) < 10000)
);
CREATE INDEX posts_body ON posts (body) WHERE body IS NOT NULL;
CREATE VIEW user_posts AS SELECT u.name, p.body FROM users u JOIN posts p ON p.user_id = u.id;
CREATE TABLE knowledge_documents (id int PRIMARY KEY, content text);
"""


@pytest.fixture
def db(db_factory: Callable[..., str]) -> str:
    url = db_factory("probe")
    run_sql(url, SCHEMA)
    return url


def test_probe_matches_the_snapshot(db: str) -> None:
    snap = take_snapshot(db)
    result = probe(db, environment="staging")
    assert isinstance(result, ProbeResult)
    assert result.environment == "staging"
    assert result.fingerprint == snap.probe_fingerprint
    assert len(result.fingerprint) == 64
    assert result.table_count == 3
    assert result.elapsed_ms > 0
    excluded = take_snapshot(db, exclude=["knowledge_*"])
    result = probe(db, environment="staging", exclude=["knowledge_*"])
    assert result.fingerprint == excluded.probe_fingerprint != snap.probe_fingerprint
    assert result.table_count == 2


def test_probe_of_another_schema(db: str) -> None:
    run_sql(db, "CREATE SCHEMA app; CREATE TABLE app.things (id int PRIMARY KEY);")
    snap = take_snapshot(db, schema="app")
    result = probe(db, environment="dev", schema="app")
    assert result.fingerprint == snap.probe_fingerprint
    assert result.table_count == 1
    assert result.fingerprint != probe(db, environment="dev").fingerprint


def test_revisions_none_without_version_table(db: str) -> None:
    assert probe(db, environment="dev").revisions is None


def test_revisions_sorted_and_version_table_excluded(db: str) -> None:
    before = probe(db, environment="dev")
    run_sql(db, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);")
    empty = probe(db, environment="dev")
    assert empty.revisions == ()
    run_sql(db, "INSERT INTO alembic_version VALUES ('f00d'), ('1a2b'), ('beef');")
    result = probe(db, environment="dev")
    assert result.revisions == ("1a2b", "beef", "f00d")
    # the version table is never part of the schema fingerprint
    assert result.fingerprint == empty.fingerprint == before.fingerprint
    assert result.fingerprint == take_snapshot(db).probe_fingerprint
    assert result.table_count == 3


def test_custom_version_table_name(db: str) -> None:
    run_sql(
        db,
        "CREATE TABLE schema_versions (version_num varchar(32));"
        "INSERT INTO schema_versions VALUES ('x1');",
    )
    result = probe(db, environment="dev", version_table="schema_versions")
    assert result.revisions == ("x1",)
    snap = take_snapshot(db, version_table="schema_versions")
    assert result.fingerprint == snap.probe_fingerprint
    assert probe(db, environment="dev").fingerprint != result.fingerprint


def test_version_table_in_another_schema(db: str) -> None:
    before = probe(db, environment="prod")
    run_sql(
        db,
        "CREATE SCHEMA ops; CREATE TABLE ops.alembic_version"
        " (version_num varchar(32) PRIMARY KEY);"
        "INSERT INTO ops.alembic_version VALUES ('c0ffee');",
    )
    result = probe(db, environment="prod", version_table_schema="ops")
    assert result.revisions == ("c0ffee",)
    assert result.fingerprint == before.fingerprint
    assert probe(db, environment="prod").revisions is None


def test_a_change_moves_the_fingerprint(db: str) -> None:
    first = probe(db, environment="dev")
    run_sql(db, "INSERT INTO users (name) VALUES ('a'); ANALYZE;")
    assert probe(db, environment="dev").fingerprint == first.fingerprint
    run_sql(db, "ALTER TABLE posts ALTER COLUMN body SET DEFAULT '';")
    second = probe(db, environment="dev")
    assert second.fingerprint != first.fingerprint
    assert second.fingerprint == take_snapshot(db).probe_fingerprint
    run_sql(db, "ALTER TABLE posts ALTER COLUMN body DROP DEFAULT;")
    assert probe(db, environment="dev").fingerprint == first.fingerprint


def test_probe_leaves_the_session_clean(db: str) -> None:
    # probing twice in a row with different schemas must not leak search_path between calls
    run_sql(db, "CREATE SCHEMA app; CREATE TABLE app.t (id int);")
    a1 = probe(db, environment="dev", schema="app").fingerprint
    p1 = probe(db, environment="dev").fingerprint
    assert probe(db, environment="dev", schema="app").fingerprint == a1
    assert probe(db, environment="dev").fingerprint == p1


def test_a_known_fingerprint_is_reused_until_the_catalogs_change(db: str) -> None:
    first = probe(db, environment="dev")
    assert not first.reused and first.token
    known = first.known()
    again = probe(db, environment="dev", known=known)
    assert again.reused and (again.fingerprint, again.token) == (first.fingerprint, first.token)
    assert again.table_count == first.table_count
    # data and version rows write no catalog row: still reused, revisions read fresh
    run_sql(db, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);")
    known = probe(db, environment="dev").known()
    run_sql(db, "INSERT INTO alembic_version VALUES ('r2'); INSERT INTO users (name) VALUES ('b');")
    data_only = probe(db, environment="dev", known=known)
    assert data_only.reused and data_only.revisions == ("r2",)
    # a schema change moves the token: the fingerprint is recomputed
    run_sql(db, "CREATE INDEX users_name ON users (name);")
    changed = probe(db, environment="dev", known=known)
    assert not changed.reused and changed.token != known.token
    assert changed.fingerprint == take_snapshot(db).probe_fingerprint != known.fingerprint


def test_a_token_from_another_configuration_is_never_trusted(db: str) -> None:
    known = probe(db, environment="dev").known()
    assert known is not None
    other = probe(db, environment="dev", exclude=["posts"], known=known)
    assert not other.reused and other.fingerprint != known.fingerprint
    forged = KnownSchema(known.token[:-4] + "0000", "f" * 64, 1)
    assert probe(db, environment="dev", known=forged).fingerprint == known.fingerprint


def test_url_options_reach_the_driver(db: str) -> None:
    """The probe connects without an engine; the URL's query options still apply."""
    plain = probe(db, environment="dev")
    with_options = probe(
        str(db).replace("postgresql+psycopg2://", "postgresql://") + "?sslmode=disable",
        environment="dev",
    )
    assert with_options.fingerprint == plain.fingerprint
    with pytest.raises(DatabaseError, match="^dev: cannot use .*invalid sslmode"):
        probe(str(db) + "?sslmode=bogus", environment="dev")


INDIRECT = (
    # (set-up, change): the change rewrites no row of the table it shows up in
    (
        "CREATE FUNCTION pick_mood() RETURNS mood LANGUAGE sql AS $$ SELECT 'ok'::mood $$;"
        "ALTER TABLE users ALTER COLUMN mood SET DEFAULT pick_mood();",
        "ALTER FUNCTION pick_mood() RENAME TO choose_mood;",
    ),
    ("", "ALTER TYPE mood RENAME TO feeling;"),
    ("", "ALTER SEQUENCE users_id_seq RENAME TO users_seq;"),
    (
        "CREATE TEXT SEARCH CONFIGURATION app_fts (COPY = simple);"
        "CREATE INDEX posts_fts ON posts (to_tsvector('app_fts', body));",
        "ALTER TEXT SEARCH CONFIGURATION app_fts RENAME TO app_search;",
    ),
)


@pytest.mark.parametrize(("setup", "change"), INDIRECT, ids=["function", "type", "seq", "tsc"])
def test_a_rename_elsewhere_that_changes_the_printed_schema_moves_the_token(
    db: str, setup: str, change: str
) -> None:
    """Defaults, column types and index expressions print the names of other objects."""
    if setup:
        run_sql(db, setup)
    known = probe(db, environment="dev").known()
    assert known is not None
    run_sql(db, change)
    cached = probe(db, environment="dev", known=known)
    assert not cached.reused
    assert cached.fingerprint == take_snapshot(db).probe_fingerprint != known.fingerprint
