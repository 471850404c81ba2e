"""upgrade / downgrade / current_revisions / build_from_empty on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from abparts_ops.core.db import make_engine
from abparts_ops.core.errors import MigrationError
from abparts_ops.core.history.migrate import (
    RevisionFailed,
    build_from_empty,
    current_revisions,
    downgrade,
    project_revisions,
    upgrade,
)
from abparts_ops.core.history.project import AlembicProject, load_project
from abparts_ops_tests.core.history.projects import Rev, linear, table, write_project


@pytest.fixture
def conn(fresh_db: str) -> Iterator[Connection]:
    engine = make_engine(fresh_db)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _tables(conn: Connection) -> set[str]:
    names = set(sa.inspect(conn).get_table_names())
    if conn.in_transaction():
        conn.rollback()
    return names


def _project(tmp_path: Path, revs: list[Rev], **kw: str) -> AlembicProject:
    return load_project(write_project(tmp_path, revs), **kw)


def test_upgrade_downgrade_current(tmp_path: Path, conn: Connection) -> None:
    project = _project(tmp_path, linear(3))
    assert current_revisions(conn) is None
    assert not conn.in_transaction()

    upgrade(conn, project, "r002")
    assert current_revisions(conn) == ("r002",)
    assert _tables(conn) == {"alembic_version", "t_r001", "t_r002"}

    upgrade(conn, project)
    assert current_revisions(conn) == ("r003",)
    assert "t_r003" in _tables(conn)

    downgrade(conn, project, "r001")
    assert current_revisions(conn) == ("r001",)
    assert _tables(conn) == {"alembic_version", "t_r001"}

    downgrade(conn, project)
    assert current_revisions(conn) == ()
    assert _tables(conn) == {"alembic_version"}


def test_upgrade_is_committed(tmp_path: Path, fresh_db: str) -> None:
    project = _project(tmp_path, linear(2))
    engine = make_engine(fresh_db)
    try:
        with engine.connect() as conn:
            upgrade(conn, project)
        with engine.connect() as other:
            assert current_revisions(other) == ("r002",)
    finally:
        engine.dispose()


def test_two_heads_upgrade_and_custom_version_table(tmp_path: Path, conn: Connection) -> None:
    revs = [*linear(1), Rev("a1", "r001", *table("ta")), Rev("b1", "r001", *table("tb"))]
    project = _project(tmp_path, revs, version_table="my_versions")
    upgrade(conn, project, "heads")
    assert current_revisions(conn) is None  # default table name is not used
    assert current_revisions(conn, "my_versions") == ("a1", "b1")
    assert project_revisions(conn, project) == ("a1", "b1")


def test_version_table_in_another_schema(tmp_path: Path, conn: Connection) -> None:
    conn.exec_driver_sql("CREATE SCHEMA ops")
    conn.commit()
    project = load_project(write_project(tmp_path, linear(1)), version_table_schema="ops")
    upgrade(conn, project)
    assert current_revisions(conn) is None
    assert current_revisions(conn, schema="ops") == ("r001",)
    assert current_revisions(conn, schema="no_such_schema") is None


def test_current_revisions_returns_unknown_ids(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('not_in_any_project')")
    conn.commit()
    assert current_revisions(conn) == ("not_in_any_project",)
    assert not conn.in_transaction()


def test_failure_keeps_earlier_revisions_and_rolls_back_the_failing_one(
    tmp_path: Path, conn: Connection
) -> None:
    revs = linear(2)
    revs.append(
        Rev(
            "r003",
            "r002",
            upgrade="op.create_table('half', sa.Column('id', sa.Integer))\n"
            "op.execute('SELECT 1/0')",
        )
    )
    project = _project(tmp_path, revs)
    with pytest.raises(RevisionFailed) as exc:
        upgrade(conn, project)
    err = exc.value
    assert isinstance(err, MigrationError)
    assert err.revision == "r003"
    assert err.applied == ("r001", "r002")
    assert "division by zero" in err.detail
    assert "r003" in str(err) and "\n" not in str(err)
    assert not conn.in_transaction()
    assert current_revisions(conn) == ("r002",)
    assert "half" not in _tables(conn)


def test_open_transaction_is_refused(tmp_path: Path, conn: Connection) -> None:
    project = _project(tmp_path, linear(1))
    conn.exec_driver_sql("SELECT 1")  # autobegin
    with pytest.raises(MigrationError, match="transaction open"):
        upgrade(conn, project)


def test_bad_target_is_one_clear_line(tmp_path: Path, conn: Connection) -> None:
    project = _project(tmp_path, linear(1))
    with pytest.raises(MigrationError) as exc:
        upgrade(conn, project, "nope_rev")
    assert "nope_rev" in str(exc.value) and "\n" not in str(exc.value)
    assert "***" in str(exc.value) or "@" not in str(exc.value)


def test_build_from_empty_ok(tmp_path: Path, fresh_db: str) -> None:
    project = _project(tmp_path, linear(3))
    result = build_from_empty(fresh_db, project)
    assert result.ok and result.failed_revision is None and result.error is None
    assert result.applied == ("r001", "r002", "r003")
    assert result.to_dict()["applied"] == ["r001", "r002", "r003"]


def test_build_from_empty_fails_on_a_diff_baseline(tmp_path: Path, conn: Connection) -> None:
    """The public ABParts case: the first revision drops an index that does not exist."""
    revs = [
        Rev(
            "a78bd1ac6e99",
            None,
            upgrade="op.drop_index('ix_users_email', table_name='users')\n"
            "op.create_table('users', sa.Column('id', sa.Integer, primary_key=True))",
            message="baseline (autogenerated diff)",
        ),
        Rev("b2", "a78bd1ac6e99", *table("t_b2")),
    ]
    project = _project(tmp_path, revs)
    result = build_from_empty(conn, project)
    assert not result.ok
    assert result.failed_revision == "a78bd1ac6e99"
    assert result.error is not None and "does not exist" in result.error
    assert "ix_users_email" in result.error
    assert "\n" not in result.error
    assert result.applied == ()
    assert current_revisions(conn) is None  # rolled back, version table included
    assert _tables(conn) == set()
    # The file and the line of the failing operation, not only the revision.
    assert result.failed_file is not None and result.failed_line is not None
    lines = Path(result.failed_file).read_text().splitlines()
    assert "op.drop_index('ix_users_email'" in lines[result.failed_line - 1]
    assert result.where() == f"{Path(result.failed_file).name}, line {result.failed_line}"


def test_build_from_empty_reports_a_later_failure(tmp_path: Path, conn: Connection) -> None:
    revs = [*linear(2), Rev("r003", "r002", upgrade="op.drop_table('never_created')")]
    result = build_from_empty(conn, _project(tmp_path, revs))
    assert (result.ok, result.failed_revision, result.applied) == (
        False,
        "r003",
        ("r001", "r002"),
    )
    assert "does not exist" in (result.error or "")


def test_build_from_empty_refuses_a_database_with_a_revision(
    tmp_path: Path, conn: Connection
) -> None:
    project = _project(tmp_path, linear(2))
    upgrade(conn, project, "r001")
    with pytest.raises(MigrationError, match="needs an empty database"):
        build_from_empty(conn, project)


def test_build_from_empty_with_no_revisions(tmp_path: Path, conn: Connection) -> None:
    result = build_from_empty(conn, _project(tmp_path, []))
    assert not result.ok and result.error == "the history has no revisions"
