"""Pre-checks derived from the executed statements, and run read-only on a real database.

The derivation tests need no database: they pin the exact query each statement becomes.
The run tests load a table whose rows break each check a known number of times, and an
oracle (the statement itself, applied in a transaction that is rolled back) confirms that
a check finds something exactly when the statement would fail on those rows.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from abparts_ops.core.db import make_engine
from abparts_ops.core.errors import DatabaseError
from abparts_ops.core.rollout.prechecks import (
    ERROR,
    FOUND,
    NOT_DERIVED,
    PASSED,
    PreCheck,
    derive_prechecks,
    run_prechecks,
)
from abparts_ops.core.rollout.runner import ExecutedStatement
from abparts_ops_tests.sql import run_sql


def _derive(*sql: str, revision: str = "r002") -> list[PreCheck]:
    return derive_prechecks([ExecutedStatement(revision, s) for s in sql])


def _one(*sql: str) -> PreCheck:
    checks = _derive(*sql)
    assert len(checks) == 1, checks
    return checks[0]


# ---- derivation: one statement, one exact query ---------------------------------------


def test_set_not_null_counts_null_rows_with_odd_identifiers_quoted() -> None:
    check = _one('ALTER TABLE "Odd Schema"."My ""Parts""" ALTER COLUMN "Org ID" SET NOT NULL')
    assert check.kind == "not_null"
    assert check.failure and not check.data_loss
    assert check.relation == '"Odd Schema"."My ""Parts"""'
    assert check.action == 'sets "Odd Schema"."My ""Parts"""."Org ID" NOT NULL'
    assert check.query == (
        'SELECT count(*) FILTER (WHERE "Org ID" IS NULL) AS found, count(*) AS total '
        'FROM "Odd Schema"."My ""Parts"""'
    )
    assert check.revision == "r002"
    assert check.reason is None


def test_unqualified_tables_are_in_the_schema_given() -> None:
    [check] = derive_prechecks(
        [ExecutedStatement("r1", "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL")],
        schema="inventory",
    )
    assert check.relation == "inventory.parts"
    assert check.action == "sets parts.org_id NOT NULL"  # the default schema goes unsaid
    assert check.query.endswith('FROM "inventory"."parts"')


def test_unique_constraint_counts_duplicate_groups_leaving_null_keys_out() -> None:
    check = _one("ALTER TABLE ONLY parts ADD CONSTRAINT uq UNIQUE (org_id, code)")
    assert (check.kind, check.action) == ("unique", "adds UNIQUE uq (org_id, code) on parts")
    assert check.query == (
        "SELECT count(*) FILTER (WHERE no_null AND in_index > 1) AS groups, "
        "coalesce(sum(in_index) FILTER (WHERE no_null AND in_index > 1), 0) AS found, "
        "coalesce(sum(in_index), 0) AS total FROM (SELECT count(*) AS in_index, "
        "bool_and(org_id IS NOT NULL AND code IS NOT NULL) AS no_null "
        'FROM ONLY "public"."parts" GROUP BY org_id, code) AS k'
    )


def test_unique_nulls_not_distinct_counts_null_keys_as_duplicates() -> None:
    check = _one("ALTER TABLE parts ADD UNIQUE NULLS NOT DISTINCT (code)")
    assert check.query == (
        "SELECT count(*) FILTER (WHERE in_index > 1) AS groups, "
        "coalesce(sum(in_index) FILTER (WHERE in_index > 1), 0) AS found, "
        "coalesce(sum(in_index), 0) AS total FROM (SELECT count(*) AS in_index "
        'FROM "public"."parts" GROUP BY code) AS k'
    )


def test_primary_key_checks_null_keys_and_duplicates() -> None:
    not_null, unique = _derive("ALTER TABLE parts ADD CONSTRAINT parts_pkey PRIMARY KEY (id)")
    assert (not_null.kind, unique.kind) == ("not_null", "unique")
    assert not_null.action == unique.action == "adds PRIMARY KEY parts_pkey (id) on parts"
    assert not_null.query == (
        "SELECT count(*) FILTER (WHERE id IS NULL) AS found, count(*) AS total "
        'FROM "public"."parts"'
    )
    assert "GROUP BY id) AS k" in unique.query


def test_partial_unique_index_on_an_expression_keeps_its_predicate() -> None:
    check = _one(
        'CREATE UNIQUE INDEX ix_email ON "Odd Schema".users (lower("E-mail"), org_id) '
        "WHERE deleted_at IS NULL"
    )
    assert check.kind == "unique"
    assert check.action == (
        'creates unique index ix_email on "Odd Schema".users (lower("E-mail"), org_id) '
        "WHERE deleted_at IS NULL"
    )
    assert check.query == (
        "SELECT count(*) FILTER (WHERE no_null AND in_index > 1) AS groups, "
        "coalesce(sum(in_index) FILTER (WHERE no_null AND in_index > 1), 0) AS found, "
        "coalesce(sum(all_rows), 0) AS total FROM (SELECT count(*) FILTER (WHERE "
        "(deleted_at IS NULL)) AS in_index, count(*) AS all_rows, "
        'bool_and(lower("E-mail") IS NOT NULL AND org_id IS NOT NULL) AS no_null '
        'FROM "Odd Schema"."users" GROUP BY lower("E-mail"), org_id) AS k'
    )


def test_unique_index_collation_is_part_of_the_key() -> None:
    check = _one('CREATE UNIQUE INDEX ON parts ("Code" COLLATE "C")')
    assert 'GROUP BY "Code" COLLATE "C") AS k' in check.query
    assert 'bool_and(("Code" COLLATE "C") IS NOT NULL)' in check.query


def test_check_constraint_counts_rows_where_it_is_false_so_null_passes() -> None:
    check = _one("ALTER TABLE parts ADD CONSTRAINT qty_ok CHECK (qty >= 0 OR qty IS NULL)")
    assert (check.kind, check.counts) == ("check", "rows fail the check")
    assert check.action == "adds CHECK qty_ok (qty >= 0 OR qty IS NULL) on parts"
    # NOT (NULL) is NULL, which FILTER does not count: a NULL passes, as in a CHECK.
    assert check.query == (
        "SELECT count(*) FILTER (WHERE NOT (qty >= 0 OR qty IS NULL)) AS found, "
        'count(*) AS total FROM "public"."parts"'
    )


def test_composite_foreign_key_counts_orphans_with_match_simple() -> None:
    check = _one(
        "ALTER TABLE parts ADD CONSTRAINT fk FOREIGN KEY (org_id, site) "
        "REFERENCES orgs (id, site)"
    )
    assert check.kind == "foreign_key"
    assert check.action == (
        "adds FOREIGN KEY fk (org_id, site) REFERENCES orgs (id, site) on parts"
    )
    assert check.counts == "rows have no matching row in orgs"
    assert check.query == (
        "SELECT count(*) FILTER (WHERE child.org_id IS NOT NULL AND child.site IS NOT NULL "
        'AND NOT EXISTS (SELECT 1 FROM "public"."orgs" AS parent WHERE parent.id = '
        "child.org_id AND parent.site = child.site)) AS found, count(*) AS total "
        'FROM "public"."parts" AS child'
    )


def test_foreign_key_match_full_also_counts_partly_null_keys() -> None:
    check = _one(
        "ALTER TABLE parts ADD FOREIGN KEY (org_id, site) REFERENCES orgs (id, site) MATCH FULL"
    )
    assert check.query == (
        "SELECT count(*) FILTER (WHERE ((child.org_id IS NOT NULL OR child.site IS NOT NULL) "
        "AND NOT (child.org_id IS NOT NULL AND child.site IS NOT NULL) OR (child.org_id IS "
        "NOT NULL AND child.site IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM \"public\".\"orgs\" "
        "AS parent WHERE parent.id = child.org_id AND parent.site = child.site))) AS found, "
        'count(*) AS total FROM "public"."parts" AS child'
    )


def test_not_valid_constraints_give_no_check_until_validated() -> None:
    assert _derive(
        "ALTER TABLE parts ADD CONSTRAINT qty_ok CHECK (qty > 0) NOT VALID",
        "ALTER TABLE parts ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID",
    ) == []
    check, fk = _derive(
        "ALTER TABLE parts ADD CONSTRAINT qty_ok CHECK (qty > 0) NOT VALID",
        "ALTER TABLE parts ADD CONSTRAINT fk FOREIGN KEY (org_id) REFERENCES orgs (id) NOT VALID",
        "ALTER TABLE parts VALIDATE CONSTRAINT qty_ok",
        "ALTER TABLE parts VALIDATE CONSTRAINT fk",
    )
    assert check.action == "validates CHECK qty_ok (qty > 0) on parts"
    assert check.query == (
        "SELECT count(*) FILTER (WHERE NOT (qty > 0)) AS found, count(*) AS total "
        'FROM "public"."parts"'
    )
    assert fk.action == "validates FOREIGN KEY fk (org_id) REFERENCES orgs (id) on parts"
    assert fk.query is not None and "NOT EXISTS" in fk.query


def test_validating_a_constraint_defined_before_is_not_derived() -> None:
    check = _one("ALTER TABLE parts VALIDATE CONSTRAINT old_check")
    assert (check.kind, check.query) == ("validate", None)
    assert check.reason == (
        "not derived: the constraint was added before the pending revisions: its definition "
        "is not in the statements"
    )


def test_type_change_casts_every_row_and_counts_overlong_values() -> None:
    to_varchar, to_int = _derive(
        "ALTER TABLE parts ALTER COLUMN code TYPE varchar(5), "
        "ALTER COLUMN num TYPE integer USING nullif(num, '')::integer",
    )
    assert (to_varchar.kind, to_varchar.action) == ("type_cast", "changes parts.code to varchar(5)")
    assert to_varchar.counts == "rows are longer than 5 characters"
    assert to_varchar.query == (
        "SELECT count(*) FILTER (WHERE char_length(rtrim(CAST(code AS text), ' ')) > 5) AS found, "
        'count(*) AS total, count(CAST(code AS varchar(5))) AS converted FROM "public"."parts"'
    )
    assert to_int.action == "changes parts.num to integer USING CAST(NULLIF(num, '') AS integer)"
    assert to_int.query == (
        "SELECT 0 AS found, count(*) AS total, count(CAST(CAST(NULLIF(num, '') AS integer) "
        'AS integer)) AS converted FROM "public"."parts"'
    )


def test_drop_column_drop_table_and_truncate_are_data_loss() -> None:
    column, table, truncate = _derive(
        "ALTER TABLE IF EXISTS parts DROP COLUMN IF EXISTS legacy",
        "DROP TABLE IF EXISTS old_parts",
        "TRUNCATE audit.log",
    )
    assert [c.kind for c in (column, table, truncate)] == ["drop_column", "drop_table", "truncate"]
    assert not any(c.failure for c in (column, table, truncate))
    assert column.missing_ok and table.missing_ok and not truncate.missing_ok
    assert column.query == (
        'SELECT count(legacy) AS found, count(*) AS total FROM "public"."parts"'
    )
    assert table.query == (
        'SELECT count(*) AS found, count(*) AS total FROM "public"."old_parts"'
    )
    assert truncate.action == "truncates audit.log"
    assert truncate.query == 'SELECT count(*) AS found, count(*) AS total FROM "audit"."log"'


def test_update_and_delete_count_the_rows_they_match() -> None:
    update, delete = _derive(
        "UPDATE parts SET status = 'archived' WHERE status = 'old' AND qty < 10",
        "DELETE FROM orgs",
    )
    assert (update.kind, update.action) == ("update", "updates parts (status)")
    assert update.query == (
        "SELECT count(*) FILTER (WHERE (status = 'old' AND qty < 10)) AS found, "
        'count(*) AS total FROM "public"."parts"'
    )
    assert delete.query == 'SELECT count(*) AS found, count(*) AS total FROM "public"."orgs"'


def test_update_from_and_delete_using_become_exists() -> None:
    update = _one(
        "UPDATE parts AS p SET status = 'orphan' FROM orgs o WHERE p.org_id = o.id "
        "AND o.name LIKE 'x%'"
    )
    assert update.query == (
        "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM public.orgs AS o WHERE "
        "p.org_id = o.id AND o.name LIKE 'x%')) AS found, count(*) AS total "
        'FROM "public"."parts" AS p'
    )
    delete = _one("DELETE FROM parts USING orgs WHERE parts.org_id = orgs.id")
    assert delete.query == (
        "SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM public.orgs WHERE "
        'parts.org_id = orgs.id)) AS found, count(*) AS total FROM "public"."parts"'
    )


def test_statements_on_a_table_created_earlier_give_no_check() -> None:
    assert _derive(
        "CREATE TABLE staging (id integer, code text)",
        "INSERT INTO staging VALUES (1, 'a')",
        "ALTER TABLE staging ALTER COLUMN id SET NOT NULL",
        "CREATE UNIQUE INDEX ON staging (code)",
        "ALTER TABLE parts ADD FOREIGN KEY (staging_id) REFERENCES staging (id)",
        "DELETE FROM staging",
        "DROP TABLE staging",
    ) == []


def test_columns_whose_value_is_unknown_before_the_apply_give_no_check() -> None:
    assert _derive(
        "ALTER TABLE parts ADD COLUMN new_id serial",
        "ALTER TABLE parts ADD PRIMARY KEY (new_id)",
        "ALTER TABLE parts ADD COLUMN seq_id bigint GENERATED ALWAYS AS IDENTITY",
        "CREATE UNIQUE INDEX ON parts (seq_id)",
    ) == []


def test_a_new_column_without_default_needs_no_key_check() -> None:
    # NULL on every row: it references nothing and collides with nothing.
    assert _derive(
        "ALTER TABLE parts ADD COLUMN org2 integer",
        "ALTER TABLE parts ADD FOREIGN KEY (org2) REFERENCES orgs (id)",
        "CREATE UNIQUE INDEX ON parts (org2, code)",
        "ALTER TABLE parts ALTER COLUMN org2 TYPE bigint",
    ) == []


def test_added_column_not_null_without_default_counts_the_existing_rows() -> None:
    check = _one(
        "ALTER TABLE parts ADD COLUMN flag boolean NOT NULL DEFAULT false, "
        "ADD COLUMN status text NOT NULL"
    )
    assert check.action == "adds parts.status NOT NULL"
    assert check.query == (
        "SELECT count(*) FILTER (WHERE CAST(NULL AS text) IS NULL) AS found, "
        'count(*) AS total FROM "public"."parts"'
    )


def test_a_backfill_before_set_not_null_is_followed() -> None:
    checks = _derive(
        "ALTER TABLE parts ADD COLUMN org_ref integer",
        "UPDATE parts SET org_ref = org_id WHERE org_id IS NOT NULL",
        "DELETE FROM parts WHERE qty < 0",
        "ALTER TABLE parts ALTER COLUMN org_ref SET NOT NULL",
    )
    # The UPDATE only fills a column the statements added: no data-loss check for it.
    assert [c.kind for c in checks] == ["delete", "not_null"]
    assert checks[1].query == (
        "SELECT count(*) FILTER (WHERE (qty < 0) IS NOT TRUE AND (CASE WHEN org_id IS NOT "
        "NULL THEN org_id ELSE CAST(NULL AS integer) END) IS NULL) AS found, count(*) AS total "
        'FROM "public"."parts"'
    )


def test_renamed_tables_and_columns_are_read_by_their_environment_names() -> None:
    check = _one(
        "ALTER TABLE parts RENAME COLUMN code TO sku",
        "ALTER TABLE parts RENAME TO items",
        "ALTER TABLE items ALTER COLUMN sku SET NOT NULL",
    )
    assert check.action == "sets items.sku NOT NULL"
    assert check.query == (
        "SELECT count(*) FILTER (WHERE code IS NULL) AS found, count(*) AS total "
        'FROM "public"."parts"'
    )


def test_a_substituted_expression_keeps_its_precedence() -> None:
    _update, check = _derive(
        "UPDATE parts SET flag = archived IS NULL OR qty = 0",
        "ALTER TABLE parts ALTER COLUMN flag SET NOT NULL",
    )
    assert check.query == (
        "SELECT count(*) FILTER (WHERE (archived IS NULL OR qty = 0) IS NULL) AS found, "
        'count(*) AS total FROM "public"."parts"'
    )


@pytest.mark.parametrize(
    ("sql", "kind", "reason"),
    [
        (
            "ALTER TABLE parts ADD CONSTRAINT no_overlap EXCLUDE USING gist (span WITH &&)",
            "exclusion",
            "not derived: exclusion constraints are not translated into a query",
        ),
        (
            "INSERT INTO parts (id) VALUES (1)",
            "insert",
            "not derived: whether inserted rows collide with the environment's is not "
            "translated into a query",
        ),
        (
            "ALTER TABLE parts ADD FOREIGN KEY (org_id) REFERENCES orgs",
            "foreign_key",
            "not derived: it references the primary key of orgs without naming its columns",
        ),
        (
            "ALTER TABLE parts ALTER COLUMN mask TYPE bit(8)",
            "type_cast",
            "not derived: a bit string length (pg_catalog.bit(8)) is enforced by the ALTER but "
            "not by an explicit cast",
        ),
        (
            "DELETE FROM parts WHERE CURRENT OF c",
            "delete",
            "not derived: WHERE CURRENT OF a cursor is not translated",
        ),
    ],
)
def test_data_dependent_statements_that_cannot_be_translated_say_why(
    sql: str, kind: str, reason: str
) -> None:
    check = _one(sql)
    assert (check.kind, check.query, check.reason) == (kind, None, reason)


def test_after_an_untranslated_change_later_checks_on_that_table_are_not_derived() -> None:
    _insert, check, other = _derive(
        "INSERT INTO parts (id) SELECT id FROM old_parts",
        "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL",
        "ALTER TABLE orgs ALTER COLUMN name SET NOT NULL",
    )
    assert check.query is None
    assert check.reason == (
        "not derived: an earlier pending statement, r002 (INSERT INTO parts (id) SELECT id "
        "FROM old_parts), changes the rows of parts in a way these checks do not follow"
    )
    assert other.query is not None


def test_procedural_code_makes_every_later_check_not_derived() -> None:
    block, check = _derive(
        "DO $$ BEGIN UPDATE parts SET org_id = 1; END $$",
        "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL",
    )
    assert (block.kind, block.query) == ("procedural", None)
    assert check.query is None and "DO $$" in check.reason


def test_statements_that_do_not_depend_on_rows_or_do_not_parse_give_nothing() -> None:
    assert _derive(
        "SET lock_timeout = '5s'",
        "CREATE INDEX ix_parts_code ON parts (code)",
        "ALTER TABLE parts ADD COLUMN note text",
        "ALTER TABLE parts ALTER COLUMN org_id DROP NOT NULL",
        "ALTER TABLE parts ALTER COLUMN qty SET DEFAULT 0",
        "ALTER TABLE parts ADD CONSTRAINT uq UNIQUE USING INDEX ix_parts_code",
        "COMMENT ON TABLE parts IS 'x'",
        "SELECT setval('parts_id_seq', 10)",
        "this is not SQL at all",
    ) == []


def test_several_statements_in_one_text_are_each_derived() -> None:
    checks = _derive(
        "SELECT 1; ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL; DROP TABLE old_parts"
    )
    assert [(c.kind, c.statement) for c in checks] == [
        ("not_null", "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL"),
        ("drop_table", "DROP TABLE old_parts"),
    ]


# ---- running on a real database ------------------------------------------------------

_ROWS = '''
CREATE TABLE orgs (id int PRIMARY KEY, site text NOT NULL, name text NOT NULL,
                   UNIQUE (id, site));
INSERT INTO orgs SELECT g, 's' || mod(g, 2), 'org ' || g FROM generate_series(1, 5) g;
CREATE TABLE parts (id int, org_id int, site text, code text, qty int, legacy text,
                    num text, short text, status text, "Odd ""Col""" text);
INSERT INTO parts SELECT g,
  CASE WHEN g <= 3 THEN NULL WHEN g <= 5 THEN 99 ELSE mod(g, 5) + 1 END,
  CASE WHEN g = 20 THEN 'zz' WHEN g = 21 THEN NULL ELSE 's' || mod(mod(g, 5) + 1, 2) END,
  CASE WHEN g IN (10, 11) THEN 'dup1' WHEN g IN (12, 13, 14) THEN 'dup2'
       WHEN g IN (15, 16) THEN NULL ELSE 'c' || g END,
  CASE WHEN g <= 4 THEN -g WHEN g <= 10 THEN NULL ELSE g END,
  CASE WHEN mod(g, 4) = 0 THEN 'L' || g END,
  CASE WHEN g IN (7, 8) THEN 'x' || g ELSE g::text END,
  CASE WHEN g <= 6 THEN 'abcdefgh' WHEN g = 7 THEN 'abc     ' ELSE 'ab' END,
  CASE WHEN mod(g, 10) = 0 THEN 'old' ELSE 'new' END,
  CASE WHEN g <= 2 THEN NULL ELSE 'odd' END
FROM generate_series(1, 200) g;
'''

# statement -> (status, found, total, groups): what the rows above make of each check.
_EXPECTED = {
    "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL": (FOUND, 3, 200, None),
    'ALTER TABLE parts ALTER COLUMN "Odd ""Col""" SET NOT NULL': (FOUND, 2, 200, None),
    "ALTER TABLE parts ALTER COLUMN id SET NOT NULL": (PASSED, 0, 200, None),
    "ALTER TABLE parts ADD CONSTRAINT uq_code UNIQUE (code)": (FOUND, 5, 200, 2),
    "ALTER TABLE parts ADD CONSTRAINT uq_code UNIQUE NULLS NOT DISTINCT (code)": (
        FOUND, 7, 200, 3,
    ),
    "ALTER TABLE parts ADD CONSTRAINT uq_id UNIQUE (id)": (PASSED, 0, 200, 0),
    "CREATE UNIQUE INDEX ix_new_code ON parts (lower(code)) WHERE status = 'new'": (
        FOUND, 3, 200, 1,
    ),
    "ALTER TABLE parts ADD CONSTRAINT qty_ok CHECK (qty >= 0)": (FOUND, 4, 200, None),
    "ALTER TABLE parts ADD CONSTRAINT fk_org FOREIGN KEY (org_id) REFERENCES orgs (id)": (
        FOUND, 2, 200, None,
    ),
    "ALTER TABLE parts ADD CONSTRAINT fk_site FOREIGN KEY (org_id, site) "
    "REFERENCES orgs (id, site)": (FOUND, 3, 200, None),
    "ALTER TABLE parts ADD CONSTRAINT fk_full FOREIGN KEY (org_id, site) "
    "REFERENCES orgs (id, site) MATCH FULL": (FOUND, 7, 200, None),
    "ALTER TABLE parts ALTER COLUMN short TYPE varchar(5)": (FOUND, 6, 200, None),
    "ALTER TABLE parts ALTER COLUMN short TYPE varchar(8)": (PASSED, 0, 200, None),
    "ALTER TABLE parts ALTER COLUMN id TYPE bigint": (PASSED, 0, 200, None),
}
_LOSSES = {
    "ALTER TABLE parts DROP COLUMN legacy": (FOUND, 50, 200),
    "DROP TABLE orgs": (FOUND, 5, 5),
    "TRUNCATE parts": (FOUND, 200, 200),
    "UPDATE parts SET status = 'archived' WHERE status = 'old'": (FOUND, 20, 200),
    "DELETE FROM parts WHERE qty > 1000": (PASSED, 0, 200),
    "DELETE FROM parts WHERE code LIKE 'dup%'": (FOUND, 5, 200),  # '%' reaches the server
    # org 1, 3 and 5 are on site s1; 117 of parts 6..200 belong to one of them.
    "DELETE FROM parts USING orgs WHERE parts.org_id = orgs.id AND orgs.site = 's1'": (
        FOUND, 117, 200,
    ),
}


@pytest.fixture
def loaded_db(fresh_db: str) -> str:
    run_sql(fresh_db, _ROWS)
    return fresh_db


def _apply_fails(url: str, *statements: str) -> bool:
    """The oracle: do ``statements`` fail on these rows? (Applied, then rolled back.)"""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            try:
                for statement in statements:
                    conn.exec_driver_sql(statement)
                return False
            except sa.exc.DBAPIError:
                return True
            finally:
                conn.rollback()
    finally:
        engine.dispose()


def _snapshot(url: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(row)
                for table in ("orgs", "parts")
                for row in conn.exec_driver_sql(
                    f"SELECT '{table}', xmin::text, t::text FROM {table} t ORDER BY 3"
                )
            ]
    finally:
        engine.dispose()


def _run(url: str, checks: list[PreCheck], timeout: float = 30.0) -> list:
    return run_prechecks(url, checks, statement_timeout_s=timeout, environment="staging")


def test_run_prechecks_counts_each_violation_exactly_and_agrees_with_the_apply(
    loaded_db: str,
) -> None:
    for statement, (status, found, total, groups) in _EXPECTED.items():
        [check] = _derive(statement)
        [result] = _run(loaded_db, [check])
        assert (result.status, result.found, result.total, result.groups) == (
            status, found, total, groups,
        ), (statement, result.message)
        assert result.would_fail == _apply_fails(loaded_db, statement), statement


def test_data_loss_checks_count_what_the_statement_loses(loaded_db: str) -> None:
    for statement, (status, found, total) in _LOSSES.items():
        [check] = _derive(statement)
        [result] = _run(loaded_db, [check])
        assert (result.status, result.found, result.total) == (status, found, total), (
            statement, result.message,
        )
        assert result.loses_data == (status == FOUND)
        assert not result.would_fail


def test_rowcounts_of_update_and_delete_agree_with_the_checks(loaded_db: str) -> None:
    engine = make_engine(loaded_db)
    try:
        with engine.connect() as conn:
            for statement in (
                "UPDATE parts SET status = 'archived' WHERE status = 'old'",
                "DELETE FROM parts USING orgs WHERE parts.org_id = orgs.id AND orgs.site = 's1'",
            ):
                rowcount = conn.exec_driver_sql(statement).rowcount
                conn.rollback()
                assert rowcount == _LOSSES[statement][1]
    finally:
        engine.dispose()


def test_messages_name_the_revision_the_statement_and_the_counts(loaded_db: str) -> None:
    checks = _derive(
        "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL",
        "ALTER TABLE parts ADD CONSTRAINT uq_code UNIQUE (code)",
        "DROP TABLE orgs",
        "ALTER TABLE parts ADD EXCLUDE USING gist (span WITH &&)",
    )
    messages = [r.message for r in _run(loaded_db, checks)]
    assert messages == [
        "r002 sets parts.org_id NOT NULL: 3 of 200 rows are NULL",
        "r002 adds UNIQUE uq_code (code) on parts: 2 duplicate groups (5 rows) among 200 rows",
        "r002 drops table orgs: 5 rows are lost",
        "r002 adds an EXCLUDE constraint on parts: not derived: exclusion constraints are not "
        "translated into a query",
    ]


def test_a_cast_the_server_refuses_is_a_finding_with_its_message(loaded_db: str) -> None:
    cast, after = _derive(
        "ALTER TABLE parts ALTER COLUMN num TYPE integer USING num::integer",
        "ALTER TABLE parts ALTER COLUMN id SET NOT NULL",
    )
    first, second = _run(loaded_db, [cast, after])
    assert first.status == FOUND and first.would_fail and first.found is None
    assert first.message.startswith(
        "r002 changes parts.num to integer USING CAST(num AS integer): the environment's rows "
        'make it fail: invalid input syntax for type integer: "x'
    )
    assert (second.status, second.found) == (PASSED, 0)  # the failed cast hid nothing
    assert _apply_fails(
        loaded_db, "ALTER TABLE parts ALTER COLUMN num TYPE integer USING num::integer"
    )


def test_followed_backfill_is_checked_against_what_it_leaves(loaded_db: str) -> None:
    statements = [
        "ALTER TABLE parts ADD COLUMN org_ref integer",
        "UPDATE parts SET org_ref = org_id WHERE org_id IS NOT NULL",
        "UPDATE parts SET org_ref = 1 WHERE org_ref IS NULL AND id > {floor}",
        "DELETE FROM parts WHERE id = 1",
        "ALTER TABLE parts ALTER COLUMN org_ref SET NOT NULL",
        "ALTER TABLE parts ADD CONSTRAINT u_ref UNIQUE (org_ref, code)",
    ]
    for floor, nulls in ((2, 1), (0, 0)):
        applied = [s.format(floor=floor) for s in statements]
        results = _run(loaded_db, _derive(*applied))
        assert [(r.precheck.kind, r.status, r.found) for r in results] == [
            ("delete", FOUND, 1),
            ("not_null", FOUND if nulls else PASSED, nulls),
            ("unique", PASSED, 0),
        ], [r.message for r in results]
        assert _apply_fails(loaded_db, *applied[:5]) == bool(nulls)


def test_renames_and_substituted_expressions_run_on_real_rows(loaded_db: str) -> None:
    statements = [
        "ALTER TABLE parts RENAME COLUMN code TO sku",
        "ALTER TABLE parts RENAME TO items",
        "ALTER TABLE items ADD CONSTRAINT u_sku UNIQUE (sku)",
        "ALTER TABLE items ADD COLUMN flag boolean",
        "UPDATE items SET flag = qty IS NULL OR qty < 0",
        "ALTER TABLE items ALTER COLUMN flag SET NOT NULL",
        "ALTER TABLE items ADD CONSTRAINT flagged CHECK (flag)",
    ]
    results = _run(loaded_db, _derive(*statements))
    assert [(r.precheck.kind, r.status, r.found, r.total) for r in results] == [
        ("unique", FOUND, 5, 200),
        ("not_null", PASSED, 0, 200),
        ("check", FOUND, 190, 200),  # 4 negative and 6 NULL quantities are flagged
    ], [r.message for r in results]
    assert _apply_fails(loaded_db, *statements[:6]) is True  # the UNIQUE
    assert _apply_fails(loaded_db, *statements[:2], *statements[3:6]) is False
    assert _apply_fails(loaded_db, *statements[:2], *statements[3:]) is True  # the CHECK


def test_a_timed_out_check_does_not_hide_the_others(loaded_db: str) -> None:
    checks = _derive(
        "ALTER TABLE parts ALTER COLUMN org_id SET NOT NULL",
        "ALTER TABLE orgs ALTER COLUMN name SET NOT NULL",
    )
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        engine = make_engine(loaded_db)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("LOCK TABLE parts IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(30)
                conn.rollback()
        finally:
            engine.dispose()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(30)
        timed_out, passed = _run(loaded_db, checks, timeout=0.5)
    finally:
        release.set()
        holder.join()
    assert timed_out.status == ERROR and not timed_out.would_fail
    assert timed_out.message == (
        "r002 sets parts.org_id NOT NULL: not checked: the query ran longer than the 0.5s "
        "statement timeout"
    )
    assert (passed.status, passed.found, passed.total) == (PASSED, 0, 5)


def test_run_prechecks_writes_nothing(loaded_db: str) -> None:
    before = _snapshot(loaded_db)
    checks = [_derive(s)[0] for s in (*_EXPECTED, *_LOSSES)]
    write = PreCheck(
        revision="r009", kind="update", relation="public.parts", action="tries to write",
        query="UPDATE parts SET qty = 0 RETURNING 1 AS found", meaning="", failure=False,
    )
    results = _run(loaded_db, [write, *checks])
    assert results[0].status == ERROR
    assert results[0].message == (
        "r009 tries to write: not checked: cannot execute UPDATE in a read-only transaction"
    )
    assert all(r.status in (PASSED, FOUND) for r in results[1:])
    assert _snapshot(loaded_db) == before  # same rows, same xmin: nothing was written


def test_if_exists_on_a_missing_table_is_no_finding(loaded_db: str) -> None:
    [result] = _run(loaded_db, _derive("DROP TABLE IF EXISTS never_there"))
    assert result.status == PASSED
    [result] = _run(loaded_db, _derive("ALTER TABLE parts DROP COLUMN IF EXISTS never_there"))
    assert result.status == PASSED
    assert result.message == (
        "r002 drops parts.never_there: not on the environment (column \"never_there\" does "
        "not exist); IF EXISTS makes it a no-op"
    )
    [result] = _run(loaded_db, _derive("DROP TABLE never_there"))
    assert result.status == ERROR
    assert result.error == 'relation "public.never_there" does not exist'


def test_not_derived_checks_need_no_connection() -> None:
    [result] = run_prechecks(
        "postgresql://nobody:pw@127.0.0.1:1/none",
        _derive("INSERT INTO parts VALUES (1)"),
        statement_timeout_s=1,
        environment="staging",
    )
    assert result.status == NOT_DERIVED


def test_an_unreachable_environment_is_one_line_without_its_password() -> None:
    with pytest.raises(DatabaseError) as caught:
        run_prechecks(
            "postgresql://app:s3cret-Pa55@127.0.0.1:1/app",
            _derive("DROP TABLE orgs"),
            statement_timeout_s=1,
            environment="staging",
        )
    message = str(caught.value)
    assert "staging" in message and "s3cret-Pa55" not in message
    assert "\n" not in message


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_a_timeout_that_is_not_positive_is_refused(timeout: float) -> None:
    with pytest.raises(ValueError, match="staging: statement_timeout_s must be a positive"):
        run_prechecks("postgresql://x@h/db", [], statement_timeout_s=timeout, environment="staging")
