"""The guarded upgrade keeps its word on revisions that others write (issue 16).

Every case reads the environment back (version rows and whole snapshot) instead of
trusting the upgrade's message: a refusal leaves it exactly as it was, and a failure
that did write something says so, with the diff, and the one reference then calls the
environment ``schema_drift``.
"""

from __future__ import annotations

import pytest

from abparts_ops.core.errors import UpgradeRefused
from abparts_ops.core.rollout.identity import database_identity
from abparts_ops.core.rollout.upgrade import RehearsalFailed, UpgradeHalfApplied
from abparts_ops.core.rollout.write_guard import WriteGuard
from abparts_ops.core.schema.introspect import take_snapshot
from abparts_ops.core.watch.reference import assess_snapshot
from abparts_ops.core.watch.states import EnvironmentState
from abparts_ops_tests.core.rollout.upgrade_setup import ADD_COLUMN, state
from abparts_ops_tests.sql import version_rows

ON_ENV = "op.get_bind().exec_driver_sql('SELECT current_database()').scalar().startswith('env')"
ON_REHEARSAL = (
    "op.get_bind().exec_driver_sql('SELECT current_database()').scalar()"
    ".startswith('abparts_rehearsal')"
)
OFFLINE = ["offline-sql-unavailable"]  # revisions that read the database cannot render offline

# (case, body of r002's upgrade(), what the watch says of it)
LEAVING_THE_TRANSACTION = [
    (
        "commit_midway",
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        "op.execute('COMMIT')\n"
        "op.execute(\"ALTER TABLE parts ADD COLUMN size int\")",
        "ends the upgrade's transaction itself: COMMIT",
    ),
    (
        "autocommit_block",
        "with op.get_context().autocommit_block():\n"
        "    op.create_index('ix_parts_name', 'parts', ['name'], postgresql_concurrently=True)",
        "commits the upgrade's transaction",
    ),
    (
        "outside_only_on_the_copy",
        # Alembic's own upgrade (one transaction per revision, as the expected schemas are
        # built) never runs it; the rehearsal's copy, in the upgrade's one transaction, does.
        f"if {ON_REHEARSAL}:\n    op.execute('VACUUM parts')",
        "cannot run inside a transaction block (the server refuses it there): VACUUM parts",
    ),
    (
        "commit_among_statements",
        "op.execute('ALTER TABLE parts ADD COLUMN a int; COMMIT; "
        "ALTER TABLE parts ADD COLUMN b int')",
        "left the upgrade's transaction",
    ),
    (
        "connection_commit",
        "op.add_column('parts', sa.Column('colour', sa.Text))\nop.get_bind().commit()",
        "commits the upgrade's transaction (Connection.commit()",
    ),
    (
        "driver_commit",
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        "op.get_bind().connection.dbapi_connection.commit()\n"
        "op.add_column('parts', sa.Column('size', sa.Integer))",
        "ended the upgrade's transaction (a new one began after it)",
    ),
    (
        "set_session_characteristics",
        "op.execute('SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE')",
        "ends the upgrade's transaction itself: SET SESSION CHARACTERISTICS",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "named"),
    LEAVING_THE_TRANSACTION,
    ids=[case for case, _, _ in LEAVING_THE_TRANSACTION],
)
def test_a_revision_that_leaves_the_transaction_runs_as_a_step_of_its_own(
    make_setup, case: str, body: str, named: str
) -> None:
    """Found by running it in the rehearsal (not by the file's text): the rehearsal runs
    it again, alone, in autocommit, and the apply does the same; the version row and
    the schema read back are the head's."""
    setup = make_setup(body, ADD_COLUMN[1] if "colour" in body else "pass")
    dry = setup.run(acknowledge=OFFLINE)
    assert dry.rehearsal is not None and dry.rehearsal.passed, dry.rehearsal
    assert dry.rehearsal.alone == ("r002",) and dry.rehearsal.attempts == 2
    assert "r002 ran as step(s) of their own (autocommit)" in dry.rehearsal.verdict
    done = setup.run(dry_run=False, acknowledge=OFFLINE)
    assert done.action == "upgraded" and done.alone == ("r002",)
    assert version_rows(setup.env_url) == ("r002",)
    now = take_snapshot(setup.env_url, source="staging")
    assert assess_snapshot("staging", ("r002",), now, setup.expected).state is (
        EnvironmentState.IN_SYNC
    )


def test_a_revision_whose_alone_run_differs_from_alembics_is_refused(make_setup) -> None:
    """``ROLLBACK`` after an ``ADD COLUMN``: Alembic's own run (one transaction per
    revision) loses the column, a step in autocommit keeps it: the rehearsal's result is
    not the expected schema, so the upgrade is refused with the diff, nothing written."""
    setup = make_setup(
        "op.add_column('parts', sa.Column('colour', sa.Text))\nop.execute('ROLLBACK')"
    )
    before = state(setup.env_url)
    with pytest.raises(RehearsalFailed) as caught:
        setup.run(dry_run=False)
    assert "differs from the head's expected schema in 1 object(s)" in str(caught.value)
    assert caught.value.rehearsal.alone == ("r002",)
    assert state(setup.env_url) == before


def test_a_new_enum_value_used_before_its_commit_runs_after_a_commit(make_setup) -> None:
    """``ALTER TYPE ... ADD VALUE`` in one revision, the value used in the next: fine for
    Alembic's one transaction per revision, impossible in one for both (SQLSTATE 55P04):
    the revision that uses it runs as a step of its own, after r002 committed."""
    from abparts_ops_tests.core.history.projects import Rev

    setup = make_setup(
        "op.execute(\"CREATE TYPE grade AS ENUM ('a', 'b')\")\n"
        "op.execute(\"ALTER TYPE grade ADD VALUE 'c'\")",
        "op.execute('DROP TYPE grade')",
        extra=[
            Rev(
                "r003",
                "r002",
                "op.execute(\"ALTER TABLE parts ADD COLUMN grade grade DEFAULT 'c'\")",
                "op.drop_column('parts', 'grade')",
            )
        ],
    )
    done = setup.run(dry_run=False)
    assert done.rehearsal is not None and done.rehearsal.alone == ("r003",)
    assert done.alone == ("r003",) and version_rows(setup.env_url) == ("r003",)


def test_a_comment_or_a_string_that_says_commit_is_not_a_boundary(make_setup) -> None:
    """The watch judges what runs, not the text: ``COMMIT`` in a comment, a default or a
    DO block's body is no transaction boundary."""
    setup = make_setup(
        "op.execute('-- COMMIT is only a word here\\nCOMMENT ON TABLE parts IS $$COMMIT$$')\n"
        "op.add_column('parts', sa.Column('state', sa.Text, server_default='COMMIT'))\n"
        "op.execute('DO $$ BEGIN PERFORM 1; END $$')",
        "op.drop_column('parts', 'state')\nop.execute('COMMENT ON TABLE parts IS NULL')",
    )
    done = setup.run(dry_run=False)
    assert done.action == "upgraded" and done.after == ("r002",)


def test_a_revision_that_writes_the_version_table_is_refused_naming_it(make_setup) -> None:
    """The rehearsal reads the copy's version rows after each revision: an extra row
    written by the revision refuses the upgrade before anything reaches staging."""
    setup = make_setup(
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        "op.execute(\"INSERT INTO alembic_version (version_num) VALUES ('feedbeef0001')\")",
        ADD_COLUMN[1],
    )
    before = state(setup.env_url)
    for dry_run in (True, False):
        with pytest.raises(RehearsalFailed) as caught:
            setup.run(dry_run=dry_run)
        message = str(caught.value)
        assert "revision r002 (r002_rev.py) wrote the version table itself" in message
        assert "feedbeef0001" in message
        assert state(setup.env_url) == before


def test_the_rehearsal_runs_under_the_statement_timeout(make_setup) -> None:
    """A revision slower than ``statement_timeout`` fails in the rehearsal, not on prod."""
    from abparts_ops.core.rollout.upgrade import UpgradePolicy

    setup = make_setup("op.execute('SELECT pg_sleep(3)')")
    before = state(setup.env_url)
    with pytest.raises(RehearsalFailed, match="statement timeout"):
        setup.run(dry_run=False, policy=UpgradePolicy(statement_timeout_s=0.5))
    assert state(setup.env_url) == before


def test_a_half_written_environment_is_told_as_it_is(make_setup) -> None:
    """A revision that commits behind the watch's back on the environment only (it reads
    the database it runs on, so the rehearsal passed), then fails: the re-read finds
    the column it committed, the upgrade says "half-way", never "nothing was written",
    and the one reference calls the environment schema drift with that diff."""
    setup = make_setup(
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        f"if {ON_ENV}:\n"
        "    op.get_bind().connection.dbapi_connection.commit()\n"
        "    op.execute('SELECT 1/0')",
        ADD_COLUMN[1],
    )
    with pytest.raises(UpgradeHalfApplied) as caught:
        setup.run(dry_run=False, acknowledge=OFFLINE)
    message = str(caught.value)
    assert message.startswith("staging is half-way through revision r002: ")
    assert "division by zero" in message
    assert "nothing was written" not in message
    assert "the version rows say r001" in message
    assert "its schema is exactly the one revision r002 builds" in message
    assert "`alembic stamp r002`" in message
    assert "colour" in message
    assert caught.value.diff is not None
    assert [c.key for c in caught.value.diff.changes] == ["parts.colour"]
    rows = version_rows(setup.env_url)
    assert rows == ("r001",)
    now = take_snapshot(setup.env_url, source="staging")
    assessment = assess_snapshot("staging", rows, now, setup.expected)
    assert assessment.state is EnvironmentState.SCHEMA_DRIFT
    assert assessment.diff is not None
    assert [c.key for c in assessment.diff.changes] == ["parts.colour"]


def test_an_upgrade_that_stopped_between_revisions_says_where(make_setup) -> None:
    """r003 commits behind the watch's back (r002 with it, version row included), then
    fails: the read-back finds the environment consistent at r002 (behind, not
    drifted) and the message says so, naming what was not applied."""
    from abparts_ops_tests.core.history.projects import Rev

    setup = make_setup(
        *ADD_COLUMN,
        extra=[
            Rev(
                "r003",
                "r002",
                f"if {ON_ENV}:\n"
                "    op.get_bind().connection.dbapi_connection.commit()\n"
                "    op.execute('SELECT 1/0')\n"
                "op.add_column('parts', sa.Column('size', sa.Integer))",
                "op.drop_column('parts', 'size')",
            )
        ],
    )
    with pytest.raises(UpgradeHalfApplied) as caught:
        setup.run(dry_run=False, acknowledge=OFFLINE)
    message = str(caught.value)
    assert message.startswith("staging stopped at revision r002: ")
    assert "so it is behind, not drifted) and r003 not applied" in message
    assert caught.value.matches == "r002" and caught.value.diff is None
    rows = version_rows(setup.env_url)
    assert rows == ("r002",)
    now = take_snapshot(setup.env_url, source="staging")
    assessment = assess_snapshot("staging", rows, now, setup.expected)
    assert assessment.state is EnvironmentState.BEHIND


# -- the one write guard ------------------------------------------------------------------


def test_a_borrowed_database_is_refused_dry_run_or_not(make_setup) -> None:
    """staging's URL leads to prod's database: refused before the rehearsal, no confirm
    or lint asked, nothing written (the drop of a full column never runs)."""
    setup = make_setup(
        "op.drop_column('parts', 'notes')",
        "op.add_column('parts', sa.Column('notes', sa.Text))",
    )
    before = state(setup.env_url)
    prod = database_identity(setup.env_url)
    guard = WriteGuard(
        "staging", environments=frozenset({"staging", "prod"}), others={"prod": prod}
    )
    for dry_run in (True, False):
        with pytest.raises(UpgradeRefused, match="is also the database of prod"):
            setup.run(dry_run=dry_run, guard=guard)
        assert state(setup.env_url) == before


def test_a_recreated_protected_database_needs_its_identity_acknowledged(make_setup) -> None:
    """prod's database is not the one recorded at its last write: refused with the key to
    acknowledge; acknowledged, the upgrade goes through and reports the checks."""
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    key = database_identity(setup.env_url).key

    def guard(acknowledge: str | None) -> WriteGuard:
        return WriteGuard(
            "prod", protected=True, confirm="prod",
            environments=frozenset({"staging", "prod"}),
            recorded_identity="0123456789abcdef", acknowledge_identity=acknowledge,
        )

    with pytest.raises(UpgradeRefused, match=f"acknowledge_identity: {key}"):
        setup.run(environment="prod", dry_run=False, guard=guard(None))
    assert state(setup.env_url) == before
    done = setup.run(environment="prod", dry_run=False, guard=guard(key))
    assert done.after == ("r002",)
    assert done.guard is not None and done.guard.identity.key == key
    assert any("acknowledged" in line for line in done.guard.checked)
    assert any("advisory lock taken" in line for line in done.guard.checked)


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_confirm_that_names_another_environment_is_refused(make_setup, dry_run: bool) -> None:
    """``confirm: prod`` on staging's upgrade is a run config meant for another job."""
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    guard = WriteGuard("staging", confirm="prod", environments=frozenset({"staging", "prod"}))
    with pytest.raises(UpgradeRefused, match=r"`confirm` names another environment \(prod\)"):
        setup.run(dry_run=dry_run, guard=guard)
    assert state(setup.env_url) == before


def test_an_acknowledged_rule_that_does_not_exist_is_refused_up_front(make_setup) -> None:
    """``acknowledge: [no-such-rule]`` is a typo, not a review: refused before the
    rehearsal, with the closest rule squawk knows."""
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    with pytest.raises(UpgradeRefused) as caught:
        setup.run(dry_run=False, acknowledge=["ban-drop-colum"])
    message = str(caught.value)
    assert message.startswith("staging: run config acknowledge: unknown lint rule")
    assert "`ban-drop-column`" in message and message.endswith("nothing was written.")
    assert state(setup.env_url) == before


def test_the_rehearsal_records_the_sql_each_revision_ran(make_setup, admin_url: str) -> None:
    """The runner captures what each revision executed, parameters bound, without
    Alembic's own version-table writes (what issue 17's lint and pre-checks read)."""
    from abparts_ops.core.db import connect, make_engine
    from abparts_ops.core.rollout.runner import RunProgress, run_revisions

    setup = make_setup(
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        "op.execute(sa.text('UPDATE parts SET colour = :c').bindparams(c=\"it's red\"))",
        ADD_COLUMN[1],
    )
    progress = RunProgress()
    engine = make_engine(setup.env_url)
    try:
        with connect(engine) as conn:
            run_revisions(conn, setup.project, setup.project.script(), "r002", progress=progress)
    finally:
        engine.dispose()
    assert [a.revision for a in progress.applied] == ["r002"]
    assert progress.statements_of("r002") == [
        "ALTER TABLE parts ADD COLUMN colour TEXT",
        "UPDATE parts SET colour = 'it''s red'",
    ]
    assert version_rows(setup.env_url) == ("r002",)


# -- a concurrent index build that fails, and its retry ------------------------------------

UNIQUE_CONCURRENTLY = (
    "with op.get_context().autocommit_block():\n"
    "    op.create_index('ux_parts_name', 'parts', ['name'], unique=True,\n"
    "                    postgresql_concurrently=True)",
    "op.drop_index('ux_parts_name', table_name='parts')",
)
DUPLICATES = "INSERT INTO parts (id, name) VALUES (1, 'bolt'), (2, 'bolt'), (3, 'nut')"


def test_a_duplicate_is_found_by_the_rehearsal_with_rows(make_setup) -> None:
    """With the rows copied, the unique concurrent build fails on the copy: refused,
    naming the revision and the duplicate, staging untouched (no INVALID index there)."""
    from abparts_ops_tests.sql import run_sql

    setup = make_setup(*UNIQUE_CONCURRENTLY)
    run_sql(setup.env_url, DUPLICATES)
    before = state(setup.env_url)
    with pytest.raises(RehearsalFailed) as caught:
        setup.run(dry_run=False)
    message = str(caught.value)
    assert "revision r002 (r002_rev.py, line 17) failed in the rehearsal" in message
    assert "could not create unique index" in message and "(name)=(bolt)" in message
    assert caught.value.rehearsal.copy is not None
    assert caught.value.rehearsal.copy.mode == "rows"
    assert state(setup.env_url) == before


def test_over_the_copy_limit_the_duplicate_is_found_by_a_read_only_pre_check(
    make_setup,
) -> None:
    """Copied schema only (over the copy limit), the copy has no rows to fail on: the
    pre-check derived from the rehearsed statement counts the duplicates on staging
    itself, read only, and refuses with the numbers; staging read back unchanged."""
    from abparts_ops.core.rollout.rehearsal import RehearsalCopy
    from abparts_ops.core.rollout.upgrade import PreChecksFailed, UpgradePolicy
    from abparts_ops_tests.sql import run_sql

    setup = make_setup(*UNIQUE_CONCURRENTLY)
    run_sql(setup.env_url, DUPLICATES)
    before = state(setup.env_url)
    policy = UpgradePolicy(rehearsal=RehearsalCopy(max_bytes=0))
    with pytest.raises(PreChecksFailed) as caught:
        setup.run(dry_run=False, policy=policy)
    assert (
        "r002 creates unique index ux_parts_name on parts (name): 1 duplicate groups "
        "(2 rows) among 3 rows"
    ) in str(caught.value)
    assert state(setup.env_url) == before


def test_a_failed_concurrent_build_is_reported_invalid_and_the_retry_repairs_it(
    make_setup,
) -> None:
    """A writer's open transaction on staging (nothing the copy or a pre-check can see)
    makes the concurrent build wait past lock_timeout: the read-back names the INVALID
    index and the reference calls it drift; once the writer is gone the same upgrade
    drops the INVALID index and builds it again: in sync."""
    from abparts_ops.core.db import make_engine
    from abparts_ops.core.rollout.upgrade import UpgradePolicy

    setup = make_setup(*UNIQUE_CONCURRENTLY)
    policy = UpgradePolicy(lock_timeout_s=1.0)
    writer = make_engine(setup.env_url)
    try:
        with writer.connect() as conn:
            conn.exec_driver_sql("INSERT INTO parts (id, name) VALUES (9, 'washer')")
            with pytest.raises(UpgradeHalfApplied) as caught:
                setup.run(dry_run=False, policy=policy)
            conn.rollback()
    finally:
        writer.dispose()
    message = str(caught.value)
    assert message.startswith("staging is half-way through revision r002: ")
    assert "lock_timeout (1 s) reached" in message
    assert "INVALID index(es) ux_parts_name are dropped" in message
    assert "INVALID (a failed CREATE INDEX CONCURRENTLY)" in message
    rows = version_rows(setup.env_url)
    assert rows == ("r001",)
    now = take_snapshot(setup.env_url, source="staging")
    assert now.kind("index")["ux_parts_name"]["valid"] is False
    drift = assess_snapshot("staging", rows, now, setup.expected)
    assert drift.state is EnvironmentState.SCHEMA_DRIFT

    done = setup.run(dry_run=False, policy=policy)
    assert done.action == "upgraded" and done.repaired == ("ux_parts_name",)
    assert done.alone == ("r002",)
    now = take_snapshot(setup.env_url, source="staging")
    assert "valid" not in now.kind("index")["ux_parts_name"]
    assert assess_snapshot("staging", ("r002",), now, setup.expected).state is (
        EnvironmentState.IN_SYNC
    )


def test_an_invalid_index_no_pending_revision_rebuilds_is_drift(make_setup) -> None:
    """An INVALID index that the pending revisions do not build again is plain drift."""
    from abparts_ops.core.rollout.upgrade import UpgradeDrift
    from abparts_ops_tests.sql import run_sql

    setup = make_setup(*ADD_COLUMN)
    run_sql(setup.env_url, DUPLICATES)
    from abparts_ops.core.db import make_engine

    engine = make_engine(setup.env_url)
    try:
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            with pytest.raises(Exception, match="could not create unique index"):
                auto.exec_driver_sql("CREATE UNIQUE INDEX CONCURRENTLY ux_by_hand ON parts (name)")
    finally:
        engine.dispose()
    before = state(setup.env_url)
    with pytest.raises(UpgradeDrift, match="ux_by_hand that no pending revision builds again"):
        setup.run(dry_run=False)
    assert state(setup.env_url) == before
