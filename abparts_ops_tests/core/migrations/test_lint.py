"""squawk on the pending revisions' offline SQL: findings, attribution, exclusions."""

from __future__ import annotations

from pathlib import Path

from abparts_ops.core.migrations.lint import (
    OFFLINE_SQL_RULE,
    LintExclusion,
    lint_pending,
    render_offline_sql,
)
from abparts_ops.core.migrations.project import load_project
from abparts_ops_tests.core.migrations.projects import Rev, write_project

REVS = [
    Rev("r001", None, "op.create_table('parts', sa.Column('id', sa.BigInteger, "
        "primary_key=True), sa.Column('notes', sa.Text))"),
    Rev("r002", "r001", "op.add_column('parts', sa.Column('colour', sa.Text))"),
    Rev("r003", "r002", "op.drop_column('parts', 'notes')"),
]


def project_of(tmp_path: Path, revs: list[Rev]):
    """Load a project written under ``tmp_path``."""
    return load_project(ini_path=write_project(tmp_path / "p", revs))


def test_findings_name_rule_level_revision_and_statement(tmp_path: Path) -> None:
    project = project_of(tmp_path, REVS)
    report = lint_pending(project, project.script(), ("r001",), "r003",
                          preamble=["SET lock_timeout = '5000ms';",
                                    "SET statement_timeout = '900000ms';"])
    assert [r.revision for r in report.revisions] == ["r002", "r003"]
    by_rule = {f.rule: f for f in report.findings}
    drop = by_rule["ban-drop-column"]
    assert drop.level == "error" and drop.squawk_level == "Warning"
    assert drop.revision == "r003" and drop.statement == "ALTER TABLE parts DROP COLUMN notes;"
    piece = report.revisions[1]
    assert piece.sql.splitlines()[drop.line - 1].startswith("ALTER TABLE parts DROP COLUMN")
    assert "require-lock-timeout" not in by_rule  # the preamble sets it, as the apply does
    assert [f.rule for f in report.blocking([])] == ["ban-drop-column"]
    assert report.blocking(["ban-drop-column"]) == ()
    assert "| error | `ban-drop-column` | r003 |" in report.to_markdown()


def test_excluded_rules_are_not_reported(tmp_path: Path) -> None:
    project = project_of(tmp_path, REVS)
    report = lint_pending(project, project.script(), ("r001",), "r003",
                          excluded=[LintExclusion("ban-drop-column", "reviewed")])
    assert "ban-drop-column" not in {f.rule for f in report.findings}
    assert report.excluded[0].reason == "reviewed"


def test_a_revision_that_reads_the_database_cannot_be_rendered_offline(tmp_path: Path) -> None:
    revs = REVS[:2] + [Rev(
        "r003", "r002",
        "rows = op.get_bind().execute(sa.text('SELECT 1')).fetchall()\n"
        "op.add_column('parts', sa.Column('n', sa.Text))",
    )]
    project = project_of(tmp_path, revs)
    text, pieces, failure = render_offline_sql(project, project.script(), ("r001",), "r003")
    assert "ADD COLUMN colour" in text
    assert failure is not None and failure.revision == "r003"
    report = lint_pending(project, project.script(), ("r001",), "r003")
    offline = [f for f in report.findings if f.rule == OFFLINE_SQL_RULE]
    assert offline and offline[0].level == "error" and offline[0].revision == "r003"
