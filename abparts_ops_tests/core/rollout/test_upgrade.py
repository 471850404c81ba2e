"""The guarded upgrade on real PostgreSQL: dry run, upgrade, and every refusal.

Each test writes a small Alembic project (``r001`` creates two tables, ``r002`` is the
pending revision under test), builds the environment with ``r001`` applied and computes
the expected schemas from the history on the test server. "Nothing written" is checked
by comparing the version rows and the whole snapshot before and after.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import UpgradeRefused
from abparts_ops.core.history.expected_build import build_expected_schemas
from abparts_ops.core.history.migrate import upgrade
from abparts_ops.core.history.project import load_project
from abparts_ops.core.rollout.lint import LintExclusion
from abparts_ops.core.rollout.locking import lock_key
from abparts_ops.core.rollout.upgrade import (
    LintBlocked,
    RehearsalFailed,
    UpgradeDrift,
    UpgradePolicy,
    guarded_upgrade,
)
from abparts_ops_tests.core.history.projects import Rev, write_project
from abparts_ops_tests.core.rollout.upgrade_setup import (
    ADD_COLUMN,
    SLEEP_ON_ENV,
    state,
)
from abparts_ops_tests.sql import run_sql, version_rows


def test_dry_run_writes_nothing_then_real_run_upgrades_and_verifies(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    dry = setup.run()
    assert dry.action == "dry_run"
    assert dry.pending == ("r002",)
    assert dry.rehearsal is not None and dry.rehearsal.passed
    assert "Nothing was written" in dry.message
    assert state(setup.env_url) == before

    real = setup.run(dry_run=False)
    assert real.action == "upgraded"
    assert [a.revision for a in real.applied] == ["r002"]
    assert real.applied[0].seconds >= 0 and real.applied[0].file.endswith("r002_rev.py")
    assert real.before == ("r001",) and real.after == ("r002",)
    assert real.after_fingerprint == setup.expected.snapshot("r002").fingerprint
    assert real.before_fingerprint == setup.expected.snapshot("r001").fingerprint
    assert version_rows(setup.env_url) == ("r002",)
    again = setup.run(dry_run=False)
    assert again.action == "noop"


def test_schema_not_at_its_expected_state_is_refused_with_the_diff(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    run_sql(setup.env_url, "CREATE INDEX ix_by_hand ON parts (name)")
    before = state(setup.env_url)
    with pytest.raises(UpgradeDrift) as caught:
        setup.run(dry_run=False)
    message = str(caught.value)
    assert "schema drift: at revision r001" in message and "ix_by_hand" in message
    assert "nothing was written" in message
    assert any("ix_by_hand" in change.key for change in caught.value.diff.changes)
    assert state(setup.env_url) == before


def test_revision_failing_in_the_rehearsal_names_revision_file_and_statement(make_setup) -> None:
    # Fails only where a table the history does not know exists (as on the environment):
    # the expected schemas build, the rehearsal on the environment's own dump does not.
    setup = make_setup(
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        "if op.get_bind().execute(sa.text(\"SELECT to_regclass('knowledge_documents')\"))"
        ".scalar():\n    op.execute('SELECT 1/0')"
    )
    run_sql(setup.env_url, "CREATE TABLE knowledge_documents (id bigint PRIMARY KEY)")
    before = state(setup.env_url)
    with pytest.raises(RehearsalFailed) as caught:
        setup.run(dry_run=False, exclude=["knowledge_documents"])
    message = str(caught.value)
    assert "revision r002 (r002_rev.py, line 18)" in message
    assert "division by zero" in message and "SELECT 1/0" in message
    assert "nothing was applied to staging" in message
    assert caught.value.rehearsal.failed_revision == "r002"
    assert caught.value.rehearsal.statement == "SELECT 1/0"
    assert state(setup.env_url) == before


def test_blocking_lint_finding_refuses_until_acknowledged_by_rule_name(make_setup) -> None:
    setup = make_setup("op.drop_column('parts', 'notes')",
                       "op.add_column('parts', sa.Column('notes', sa.Text))")
    before = state(setup.env_url)
    dry = setup.run()
    assert [f.rule for f in dry.blocking] == ["ban-drop-column"]
    assert dry.blocking[0].revision == "r002" and "DROP COLUMN notes" in dry.blocking[0].statement
    assert "BLOCKED" in dry.message
    with pytest.raises(LintBlocked) as caught:
        setup.run(dry_run=False)
    assert "acknowledge: [ban-drop-column]" in str(caught.value)
    assert "nothing was written" in str(caught.value)
    assert state(setup.env_url) == before

    done = setup.run(dry_run=False, acknowledge=["ban-drop-column"])
    assert done.action == "upgraded" and done.acknowledged == ("ban-drop-column",)
    assert version_rows(setup.env_url) == ("r002",)


def test_excluded_rule_and_non_blocking_policy(make_setup) -> None:
    setup = make_setup("op.drop_column('parts', 'notes')",
                       "op.add_column('parts', sa.Column('notes', sa.Text))")
    policy = UpgradePolicy(exclude=(LintExclusion("ban-drop-column", "reviewed in the PR"),))
    dry = setup.run(policy=policy)
    assert "ban-drop-column" not in {f.rule for f in dry.findings}
    lenient = setup.run(policy=UpgradePolicy(block_on_lint_errors=False))
    assert lenient.blocking == () and "ban-drop-column" in {f.rule for f in lenient.findings}


def test_protected_environment_without_confirm_is_refused(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    with pytest.raises(UpgradeRefused, match="confirm: prod"):
        setup.run(environment="prod", protected=True, dry_run=False)
    with pytest.raises(UpgradeRefused, match="confirm: prod"):
        setup.run(environment="prod", protected=True, dry_run=False, confirm="staging")
    assert state(setup.env_url) == before
    done = setup.run(environment="prod", protected=True, dry_run=False, confirm="prod")
    assert done.after == ("r002",)


def test_lock_key_is_stable() -> None:
    """Stamps and upgrades share this key; a running older process must still exclude a
    newer one, so the text never changes."""
    assert lock_key("public", "alembic_version") == "abparts_ops:stamp:public.alembic_version"


def test_another_stamp_or_upgrade_holding_the_lock_refuses(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    holder = make_engine(setup.env_url)
    try:
        with holder.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_advisory_lock(hashtextextended(:k, 0))"),
                {"k": lock_key("public", "alembic_version")},
            )
            with pytest.raises(UpgradeRefused) as caught:
                setup.run(dry_run=False, policy=UpgradePolicy(lock_timeout_s=0.5))
            conn.rollback()
    finally:
        holder.dispose()
    assert "another stamp or upgrade holds the lock" in str(caught.value)
    assert "nothing was written" in str(caught.value)
    assert state(setup.env_url) == before


def _terminate_when_sleeping(url: str, stop: threading.Event, killed: list[int]) -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            while not stop.is_set():
                pids = conn.execute(
                    sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep%' "
                        "AND state = 'active'"
                    )
                ).scalars().all()
                for pid in pids:
                    conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                    killed.append(pid)
                if pids:
                    return
                time.sleep(0.05)
    finally:
        engine.dispose()


def test_connection_killed_mid_upgrade_rolls_back(make_setup) -> None:
    setup = make_setup(
        "op.create_table('half_done', sa.Column('id', sa.BigInteger, primary_key=True))\n"
        + SLEEP_ON_ENV,
        "op.drop_table('half_done')",
    )
    before = state(setup.env_url)
    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=_terminate_when_sleeping, args=(setup.env_url, stop, killed), daemon=True
    )
    killer.start()
    try:
        with pytest.raises(UpgradeRefused) as caught:
            setup.run(dry_run=False)
    finally:
        stop.set()
        killer.join(10)
    assert killed, "the revision's pg_sleep was never seen"
    message = str(caught.value)
    assert "rolled back" in message and "revision r002" in message
    assert "the version rows are still r001 and the schema is unchanged" in message
    assert state(setup.env_url) == before


def test_lock_timeout_against_a_long_transaction_aborts_cleanly(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    before = state(setup.env_url)
    holder = make_engine(setup.env_url)
    try:
        with holder.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM parts")).scalar()  # holds ACCESS SHARE
            started = time.perf_counter()
            with pytest.raises(UpgradeRefused) as caught:
                setup.run(dry_run=False, policy=UpgradePolicy(lock_timeout_s=1))
            took = time.perf_counter() - started
            conn.rollback()
    finally:
        holder.dispose()
    message = str(caught.value)
    assert "lock_timeout (1 s) reached while revision r002" in message
    assert "ALTER TABLE parts ADD COLUMN colour" in message
    assert "another transaction holds a lock" in message and "nothing was written" in message
    assert took < 30
    assert state(setup.env_url) == before


def test_rehearsal_result_other_than_the_expected_head_is_refused_with_the_diff(
    make_setup,
) -> None:
    # On the environment (it has a table the history does not know) the revision adds a
    # column it does not add on an empty database: the rehearsal catches the difference.
    setup = make_setup(
        "op.create_index('ix_parts_name', 'parts', ['name'])\n"
        "if op.get_bind().execute(sa.text(\"SELECT to_regclass('knowledge_documents')\"))"
        ".scalar():\n    op.add_column('parts', sa.Column('surprise', sa.Text))"
    )
    run_sql(setup.env_url, "CREATE TABLE knowledge_documents (id bigint PRIMARY KEY)")
    before = state(setup.env_url)
    with pytest.raises(RehearsalFailed) as caught:
        setup.run(exclude=["knowledge_documents"])
    assert "differs from the head's expected schema in 1 object(s)" in str(caught.value)
    assert [c.key for c in caught.value.rehearsal.diff.changes] == ["parts.surprise"]
    assert state(setup.env_url) == before


def test_dump_and_restore_deparse_noise_on_untouched_objects_is_not_a_failure(
    tmp_path: Path, db_factory, admin_url: str
) -> None:
    # A CHECK (varchar IN (...)) comes back from pg_dump + restore deparsed differently.
    r001 = Rev(
        "r001", None,
        "op.create_table('orders', sa.Column('id', sa.BigInteger, primary_key=True), "
        "sa.Column('priority', sa.String(20)), "
        "sa.CheckConstraint(\"priority IN ('low', 'high')\", name='ck_priority'))",
    )
    r002 = Rev("r002", "r001", ADD_COLUMN[0].replace("'parts'", "'orders'"))
    project = load_project(ini_path=write_project(tmp_path / "p", [r001, r002]))
    env_url = db_factory("env")
    engine = make_engine(env_url)
    try:
        with connect(engine) as conn:
            upgrade(conn, project, "r001")
    finally:
        engine.dispose()
    expected = build_expected_schemas(admin_url, project)
    result = guarded_upgrade(
        env_url, environment="staging", project=project, expected=expected,
        scratch_url=admin_url, dry_run=False,
    )
    assert result.rehearsal.passed and result.rehearsal.restore_noise == 1
    assert "deparsed differently" in result.rehearsal.verdict
    assert result.after == ("r002",)


def test_unreachable_environment_is_one_refusal_without_the_password(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    bad = setup.env_url.rsplit("/", 1)[0] + "/no_such_database_here"
    with pytest.raises(UpgradeRefused) as caught:
        guarded_upgrade(
            bad, environment="staging", project=setup.project,
            expected=setup.expected, scratch_url=setup.scratch_url,
            dry_run=False,
        )
    message = str(caught.value)
    assert message.startswith("staging: ") and "nothing was written" in message
    password = sa.engine.make_url(setup.env_url).password
    assert password and password not in message


def test_states_the_reference_does_not_let_through_are_refused(make_setup) -> None:
    setup = make_setup(*ADD_COLUMN)
    run_sql(setup.env_url, "UPDATE alembic_version SET version_num = 'feedface0001'")
    before = state(setup.env_url)
    with pytest.raises(UpgradeRefused) as caught:
        setup.run(dry_run=False)
    message = str(caught.value)
    assert "unknown revision" in message and "feedface0001" in message
    assert "nothing was written" in message
    assert state(setup.env_url) == before
