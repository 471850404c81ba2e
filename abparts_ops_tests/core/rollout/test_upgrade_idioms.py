"""A history written the way application teams write it, through the guarded upgrade.

Eight pending revisions in the idioms found in real Alembic histories, on an environment
with rows: reference data with ``op.bulk_insert`` over ``sa.table``; an enum value added
in an ``autocommit_block`` (Alembic's documented idiom) and used two revisions later; a
backfill that reads rows through ``op.get_bind()`` and updates them one by one (it cannot
render offline); ``batch_alter_table`` making the backfilled column NOT NULL; an index
built ``CONCURRENTLY``; a column rename; obsolete rows deleted through a table object
with bound parameters. The dry run must rehearse all of it on a copy with the rows, say
which revisions run alone, lint every revision from what it ran (the rename named, no
"cannot render offline"), count the rows the delete takes; the real run, acknowledged,
must end in sync with the head.
"""

from __future__ import annotations

import pytest

from abparts_ops.core.rollout.upgrade import LintBlocked
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.watch.reference import assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops_tests.core.history.projects import Rev
from abparts_ops_tests.sql import run_sql, version_rows

PARTS = "sa.table('parts', sa.column('id', sa.BigInteger), sa.column('name', sa.Text))"

IDIOMS = [
    Rev(
        "r003", "r002",
        "op.execute(\"CREATE TYPE part_state AS ENUM ('new', 'used')\")\n"
        "op.add_column('parts', sa.Column('state', sa.Enum('new', 'used', name='part_state',"
        " create_type=False), server_default='new', nullable=False))\n"
        "kinds = sa.table('kinds', sa.column('code', sa.Text))\n"
        "op.create_table('kinds', sa.Column('code', sa.Text, primary_key=True))\n"
        "op.bulk_insert(kinds, [{'code': 'bolt'}, {'code': 'nut'}])",
    ),
    Rev(
        "r004", "r003",
        "with op.get_context().autocommit_block():\n"
        "    op.execute(\"ALTER TYPE part_state ADD VALUE 'retired'\")",
    ),
    Rev(
        "r005", "r004",
        "op.add_column('parts', sa.Column('kind', sa.Text, nullable=True))\n"
        "bind = op.get_bind()\n"
        "rows = bind.execute(sa.text('SELECT id, name FROM parts ORDER BY id')).fetchall()\n"
        "for row in rows:\n"
        "    kind = 'nut' if 'nut' in row.name else 'bolt'\n"
        "    bind.execute(sa.text('UPDATE parts SET kind = :k WHERE id = :i'),"
        " {'k': kind, 'i': row.id})",
    ),
    Rev(
        "r006", "r005",
        "with op.batch_alter_table('parts') as batch:\n"
        "    batch.alter_column('kind', existing_type=sa.Text, nullable=False)",
    ),
    Rev(
        "r007", "r006",
        "with op.get_context().autocommit_block():\n"
        "    op.create_index('ix_parts_kind', 'parts', ['kind'], postgresql_concurrently=True)",
    ),
    Rev("r008", "r007", "op.alter_column('parts', 'notes', new_column_name='remarks')"),
    Rev(
        "r009", "r008",
        f"parts = {PARTS}\n"
        "op.execute(parts.delete().where(parts.c.name.like('obsolete%')))",
    ),
    Rev(
        "r010", "r009",
        "op.execute(\"UPDATE parts SET state = 'retired' WHERE id > 45\")",
    ),
]
ROWS = (
    "INSERT INTO parts (id, name) SELECT g, CASE WHEN g <= 12 THEN 'obsolete ' || g "
    "WHEN mod(g, 2) = 0 THEN 'nut ' || g ELSE 'bolt ' || g END FROM generate_series(1, 50) g"
)


def test_a_history_in_the_idioms_teams_write_is_rehearsed_linted_and_applied(
    make_setup,
) -> None:
    setup = make_setup(
        "op.add_column('parts', sa.Column('colour', sa.Text))", extra=IDIOMS
    )
    run_sql(setup.env_url, ROWS)

    dry = setup.run()
    rehearsal = dry.rehearsal
    assert rehearsal is not None and rehearsal.passed, rehearsal.verdict
    assert rehearsal.copy is not None and rehearsal.copy.mode == "rows"
    assert rehearsal.alone == ("r004", "r007")
    assert dry.lint is not None and dry.lint.source == "executed"
    rules = {(f.rule, f.revision) for f in dry.findings}
    assert ("renaming-column", "r008") in rules
    assert not {rule for rule, _ in rules} & {"offline-sql-unavailable"}
    losses = [f.message for f in dry.findings if f.rule == "data-loss"]
    assert losses == [
        "r009 deletes 12 of 50 rows of parts (counted on the rehearsal's copy)"
    ], losses
    # the backfill's updates are not data loss: the column is new
    assert rehearsal.observed["r005"].rows["parts"] == (0, 50, 0)
    assert version_rows(setup.env_url) == ("r001",)

    with pytest.raises(LintBlocked) as caught:
        setup.run(dry_run=False)
    blocking = {(f.rule, f.revision) for f in caught.value.blocking}
    assert blocking == {
        ("adding-not-nullable-field", "r006"), ("renaming-column", "r008"),
        ("data-loss", "r009"),
    }
    assert version_rows(setup.env_url) == ("r001",)

    done = setup.run(dry_run=False, acknowledge=sorted({rule for rule, _ in blocking}))
    assert done.action == "upgraded" and done.alone == ("r004", "r007")
    assert [a.revision for a in done.applied] == [f"r{n:03d}" for n in range(2, 11)]
    assert version_rows(setup.env_url) == ("r010",)
    now = take_snapshot(setup.env_url, source="staging")
    assessment = assess_snapshot("staging", ("r010",), now, setup.expected)
    assert assessment.state is EnvironmentState.IN_SYNC, assessment.reason
