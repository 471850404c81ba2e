"""squawk on the pending revisions' SQL, each revision on its own: what they executed in
a run of the runner, or their offline SQL; findings, attribution, exclusions, and the
rule names a run or the configuration gives, checked against the installed squawk."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from abparts_ops.core.db import connect, make_engine
from abparts_ops.core.errors import ConfigError, MigrationError, UpgradeRefused
from abparts_ops.core.history.project import load_project
from abparts_ops.core.rollout import lint
from abparts_ops.core.rollout.lint import (
    DATA_LOSS_RULE,
    DEFAULT_ERROR_RULES,
    OFFLINE_SQL_RULE,
    PROJECT_RULES,
    ExecutedRevision,
    LintExclusion,
    check_rule_names,
    closest_rules,
    executed_revisions,
    known_rules,
    lint_executed,
    lint_pending,
    render_offline_revisions,
    squawk_executable,
    squawk_rules,
    unknown_rules,
)
from abparts_ops.core.rollout.runner import RunProgress, run_revisions
from abparts_ops.core.rollout.upgrade import UpgradePolicy
from abparts_ops_tests.core.history.projects import Rev, write_project

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
    rendered = render_offline_revisions(project, project.script(), ("r001",), "r003")
    assert [(r.revision, r.failure is not None) for r in rendered] == [
        ("r002", False), ("r003", True)
    ]
    assert "ADD COLUMN colour" in rendered[0].sql
    assert rendered[1].failure is not None and rendered[1].failure.revision == "r003"
    report = lint_pending(project, project.script(), ("r001",), "r003")
    offline = [f for f in report.findings if f.rule == OFFLINE_SQL_RULE]
    assert offline and offline[0].level == "error" and offline[0].revision == "r003"


def test_excluding_our_own_rule_is_not_passed_to_squawk(tmp_path: Path) -> None:
    """squawk does not know offline-sql-unavailable: excluding it must not make it fail."""
    revs = REVS[:2] + [Rev("r003", "r002", "op.get_bind().execute(sa.text('SELECT 1'))")]
    project = project_of(tmp_path, revs)
    report = lint_pending(project, project.script(), ("r001",), "r003",
                          excluded=[LintExclusion(OFFLINE_SQL_RULE, "rehearsal is enough"),
                                    LintExclusion("prefer-robust-stmts", "one transaction")])
    rules = {f.rule for f in report.findings}
    assert OFFLINE_SQL_RULE not in rules and "prefer-robust-stmts" not in rules


# ------------------------------------------------------------------------ rule names

ACK = "prod: run config acknowledge"
FIX = (
    "use the names squawk reports (https://squawkhq.com/docs/rules) or data-loss, "
    "offline-sql-unavailable."
)


def test_known_rules_are_read_from_the_installed_squawk() -> None:
    known = known_rules()
    assert {"ban-drop-column", "prefer-robust-stmts", "renaming-column",
            "require-timeout-settings", "ban-drop-trigger"} <= known
    assert OFFLINE_SQL_RULE in known and OFFLINE_SQL_RULE not in squawk_rules()
    assert len(squawk_rules()) > 40
    assert unknown_rules(sorted(known)) == ()  # squawk accepts every name it is said to know
    assert squawk_rules() is squawk_rules()  # cached per binary


def test_every_default_error_rule_and_default_exclusion_is_known() -> None:
    """A squawk upgrade that drops or renames a rule the defaults name is caught here."""
    defaults = [*DEFAULT_ERROR_RULES, *(e.rule for e in UpgradePolicy().exclude)]
    assert set(defaults) <= known_rules()
    assert unknown_rules(defaults) == ()


def test_an_unknown_acknowledged_rule_is_refused_with_the_closest_names() -> None:
    with pytest.raises(UpgradeRefused) as caught:
        check_rule_names(["ban-drop-column", "no-such-rule", "ban-drop-colum"], where=ACK)
    assert str(caught.value) == (
        f"{ACK}: unknown lint rules `no-such-rule`, `ban-drop-colum` (did you mean "
        f"`ban-drop-column`?): {FIX}"
    )
    with pytest.raises(UpgradeRefused) as caught:
        check_rule_names(["offline-sql-unavailble", "BAN-DROP-COLUMN"], where=ACK)
    assert str(caught.value) == (
        f"{ACK}: unknown lint rules `offline-sql-unavailble` (did you mean "
        f"`offline-sql-unavailable`?), `BAN-DROP-COLUMN` (did you mean `ban-drop-column`?): {FIX}"
    )
    assert "\n" not in str(caught.value)


def test_known_names_pass_and_the_error_type_is_the_callers() -> None:
    check_rule_names([], where=ACK)
    check_rule_names(["ban-drop-column", "renaming-column", OFFLINE_SQL_RULE], where=ACK)
    check_rule_names(["prefer-timestamptz"], where=ACK)  # an alias squawk accepts
    with pytest.raises(ConfigError, match=r"^f.yaml: x: unknown lint rule `renaming-colunm` "
                                          r"\(did you mean `renaming-column`\?\)"):
        check_rule_names(["renaming-colunm"], where="f.yaml: x", error=ConfigError)
    assert closest_rules("ban-drop")[:1] and all(
        name.startswith("ban-drop-") for name in closest_rules("ban-drop")
    )
    assert closest_rules("something-else-entirely") == []


def test_our_own_rules_need_no_squawk(tmp_path: Path) -> None:
    missing = tmp_path / "no-squawk-here"
    assert unknown_rules(sorted(PROJECT_RULES), executable=missing) == ()
    check_rule_names([OFFLINE_SQL_RULE], where=ACK, executable=missing)
    with pytest.raises(MigrationError, match="cannot read"):
        check_rule_names(["ban-drop-column"], where=ACK, executable=missing)


def fake_squawk(path: Path, known: list[str]) -> Path:
    """A stand-in squawk that knows ``known``: the names are in its text, as in the real
    binary, and it reports the others of a ``-- squawk-ignore`` file as unknown."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"KNOWN = {'|'.join(known)!r}.split('|')\n"
        "out = []\n"
        "for i, line in enumerate(open(sys.argv[-1]).read().splitlines()):\n"
        "    if line.startswith('-- squawk-ignore '):\n"
        "        name = line.split(' ', 2)[2]\n"
        "        if name not in KNOWN:\n"
        "            out.append({'line': i, 'message': 'unknown name ' + name,\n"
        "                        'rule_name': 'unused-' + 'ignore'})\n"
        "print(json.dumps(out))\n"
    )
    path.chmod(0o755)
    return path


def test_the_list_is_read_from_the_binary_and_cached_per_path_and_mtime(tmp_path: Path) -> None:
    squawk = fake_squawk(tmp_path / "squawk", ["ban-fake-rule", "prefer-fake-style"])
    assert squawk_rules(squawk) == {"ban-fake-rule", "prefer-fake-style"}
    assert known_rules(squawk) == {
        "ban-fake-rule", "prefer-fake-style", OFFLINE_SQL_RULE, DATA_LOSS_RULE
    }
    with pytest.raises(UpgradeRefused, match=r"`ban-fake-rul` \(did you mean `ban-fake-rule`"):
        check_rule_names(["ban-fake-rul"], where=ACK, executable=squawk)
    stat = squawk.stat()
    fake_squawk(squawk, ["ban-fake-rule", "require-fake-form"])  # upgraded, same size
    os.utime(squawk, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert squawk_rules(squawk) == {"ban-fake-rule", "require-fake-form"}
    assert unknown_rules(["prefer-fake-style", "require-fake-form"], executable=squawk) == (
        "prefer-fake-style",
    )


def test_a_squawk_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    """If squawk stops reporting unknown names, the check must not pass everything."""
    silent = tmp_path / "squawk"
    silent.write_text("#!/bin/sh\necho '[]'\n")
    silent.chmod(0o755)
    with pytest.raises(MigrationError, match="cannot tell which rule names .* knows"):
        unknown_rules(["ban-drop-column"], executable=silent)


# --------------------------------------------------- each revision on its own (issue 17)

PREAMBLE = ["SET lock_timeout = '5000ms';", "SET statement_timeout = '900000ms';"]
POLICY_EXCLUDED = [LintExclusion("prefer-robust-stmts", "one transaction")]
READS_THE_DATABASE = [
    Rev("r001", None, "op.create_table('parts', sa.Column('id', sa.BigInteger, "
        "primary_key=True), sa.Column('name', sa.Text), sa.Column('notes', sa.Text))"),
    Rev("r002", "r001",
        "n = op.get_bind().execute(sa.text('SELECT count(*) FROM parts')).scalar()\n"
        "op.create_index('ix_parts_name', 'parts', ['name'])\n"
        "op.execute(f\"COMMENT ON TABLE parts IS 'rows before r002: {n}'\")"),
    Rev("r003", "r002",
        "op.add_column('parts', sa.Column('colour', sa.Text))\n"
        "op.execute(sa.text('UPDATE parts SET colour = :c').bindparams(c=\"it's red\"))"),
    Rev("r004", "r003", "op.alter_column('parts', 'name', new_column_name='title')"),
]


def executed_on_a_fresh_database(project, url: str) -> RunProgress:
    """Run every revision of ``project`` with the runner, as the rehearsal does."""
    progress = RunProgress()
    engine = make_engine(url)
    try:
        with connect(engine) as conn:
            run_revisions(conn, project, project.script(), "r004", progress=progress)
    finally:
        engine.dispose()
    return progress


def test_offline_lint_goes_on_past_a_revision_that_cannot_be_rendered(tmp_path: Path) -> None:
    """r002 reads the database: one offline-sql-unavailable for it, and r003, r004 are
    still rendered and linted (the rename in r004 is found)."""
    project = project_of(tmp_path, READS_THE_DATABASE)
    rendered = render_offline_revisions(project, project.script(), (), "r004")
    assert [(r.revision, r.failure is not None) for r in rendered] == [
        ("r001", False), ("r002", True), ("r003", False), ("r004", False),
    ]
    assert "UPDATE parts SET colour = 'it''s red';" in rendered[2].sql
    report = lint_pending(project, project.script(), (), "r004", excluded=POLICY_EXCLUDED,
                          preamble=PREAMBLE, server_version="15.4")
    assert report.source == "offline"
    assert [(f.revision, f.rule, f.level) for f in report.findings] == [
        ("r002", OFFLINE_SQL_RULE, "error"),
        ("r004", "renaming-column", "error"),
        ("r001", "prefer-text-field", "warning"),  # Alembic's own version table, offline
        ("r001", "prefer-identity", "warning"),
    ]
    offline, rename = report.findings[:2]
    assert offline.message == (
        "cannot render this revision's SQL offline: AttributeError: 'NoneType' object has "
        "no attribute 'scalar' (what it printed before is linted, the rest is not; "
        "acknowledge `offline-sql-unavailable` if the rehearsal's result is enough)"
    )
    assert offline.file == rendered[1].path and offline.file.endswith("r002_rev.py")
    assert rename.statement == "ALTER TABLE parts RENAME name TO title;"
    assert rename.file is not None and rename.file.endswith("r004_rev.py")
    r004 = report.revisions[3]
    assert r004.revision == "r004"
    assert r004.sql.splitlines()[rename.line - 1] == "ALTER TABLE parts RENAME name TO title;"
    assert report.sql.splitlines()[rename.sql_line - 1] == rename.statement
    assert report.revisions[1].sql == (
        "-- revision r002 (r002_rev.py): offline SQL (alembic upgrade --sql)\n"
        "SET lock_timeout = '5000ms';\nSET statement_timeout = '900000ms';\nBEGIN;\n\n"
        "-- Running upgrade r001 -> r002\n\nSELECT count(*) FROM parts;\n\n"
        "-- not rendered offline past this point\nCOMMIT;\n"
    )
    assert [f.rule for f in report.blocking([OFFLINE_SQL_RULE])] == ["renaming-column"]


def test_lint_executed_lints_each_revision_from_what_it_ran(
    tmp_path: Path, db_factory: Callable[..., str]
) -> None:
    """The statements the runner recorded, each revision on its own: r002 (which cannot
    be rendered offline) is linted like any other, the rename is found in r004."""
    project = project_of(tmp_path, READS_THE_DATABASE)
    progress = executed_on_a_fresh_database(project, db_factory("lint"))
    revisions = executed_revisions(progress)
    assert [(r.revision, len(r.statements)) for r in revisions] == [
        ("r001", 1), ("r002", 3), ("r003", 2), ("r004", 1),
    ]
    assert revisions[3].file == str(project.script().get_revision("r004").path)
    report = lint_executed(revisions, excluded=POLICY_EXCLUDED, preamble=PREAMBLE,
                           server_version="15.4")
    assert report.source == "executed"
    assert [(f.revision, f.rule, f.level, f.statement_number, f.line, f.statement)
            for f in report.findings] == [
        ("r004", "renaming-column", "error", 1, 5, "ALTER TABLE parts RENAME name TO title;"),
        ("r001", "prefer-identity", "warning", 1, 6,
         "CREATE TABLE parts ( id BIGSERIAL NOT NULL, name TEXT, notes TEXT, PRIMARY KEY (id) );"),
        ("r002", "require-concurrent-index-creation", "warning", 2, 6,
         "CREATE INDEX ix_parts_name ON parts (name);"),
    ]
    assert OFFLINE_SQL_RULE not in {f.rule for f in report.findings}
    rename = report.findings[0]
    assert rename.file is not None and rename.file.endswith("r004_rev.py")
    assert rename.message == "Renaming a column may break existing clients."
    assert [r.revision for r in report.revisions] == ["r001", "r002", "r003", "r004"]
    assert report.revisions[1].sql == (
        "-- revision r002 (r002_rev.py): 3 statement(s) executed in the rehearsal\n"
        "SET lock_timeout = '5000ms';\nSET statement_timeout = '900000ms';\nBEGIN;\n"
        "SELECT count(*) FROM parts;\n"
        "CREATE INDEX ix_parts_name ON parts (name);\n"
        "COMMENT ON TABLE parts IS 'rows before r002: 0';\n"
        "COMMIT;\n"
    )
    assert report.revisions[3].sql.splitlines()[rename.line - 1] == rename.statement
    assert report.sql.splitlines()[rename.sql_line - 1] == rename.statement
    assert "| error | `renaming-column` | r004 | 5 |" in report.to_markdown()


def test_the_preamble_is_what_keeps_the_timeout_rules_quiet() -> None:
    rename = [ExecutedRevision("r9", None, ("ALTER TABLE parts RENAME name TO title",))]
    without = {f.rule for f in lint_executed(rename, excluded=POLICY_EXCLUDED).findings}
    assert {"require-lock-timeout", "require-statement-timeout"} <= without
    with_it = {f.rule for f in lint_executed(rename, excluded=POLICY_EXCLUDED,
                                             preamble=PREAMBLE).findings}
    assert with_it == {"renaming-column"}


def test_every_executed_statement_is_terminated_and_trimmed() -> None:
    report = lint_executed([ExecutedRevision("r1", "/p/versions/r1_x.py", (
        "\n SELECT 1\n\n", "SELECT 2;", "UPDATE parts SET a = '--' -- trailing note",
    ))], excluded=POLICY_EXCLUDED)
    assert report.sql == (
        "-- revision r1 (r1_x.py): 3 statement(s) executed in the rehearsal\n"
        "BEGIN;\n"
        "SELECT 1;\n"
        "SELECT 2;\n"
        "UPDATE parts SET a = '--' -- trailing note\n;\n"
        "COMMIT;\n"
    )
    assert [f.rule for f in report.findings if f.rule == "syntax-error"] == []
    nothing = lint_executed([ExecutedRevision("r2", None, ())])
    assert nothing.findings == () and nothing.to_markdown() == (
        "squawk found nothing in the pending revisions' SQL."
    )


def test_a_statement_squawk_cannot_parse_hides_nothing_else_of_its_revision() -> None:
    """squawk stops at a syntax error for its whole file: the revision's other statements
    are linted again without it, and the next revision is not affected."""
    report = lint_executed([
        ExecutedRevision("r1", None, ("ALTER TABLE parts DROP COLUMN notes", "SELEC 1",
                                      "ALTER TABLE parts RENAME name TO title")),
        ExecutedRevision("r2", None, ("ALTER TABLE orders RENAME id TO order_id",)),
    ], excluded=POLICY_EXCLUDED, preamble=PREAMBLE)
    assert sorted({(f.revision, f.rule, f.statement_number, f.line) for f in report.findings}) == [
        ("r1", "ban-drop-column", 1, 5),
        ("r1", "renaming-column", 3, 7),
        ("r1", "syntax-error", 2, 6),
        ("r2", "renaming-column", 1, 5),
    ]
    assert all(f.level == "error" for f in report.findings)
    syntax = [f for f in report.findings if f.rule == "syntax-error"]
    assert {f.statement for f in syntax} == {"SELEC 1;"}


def test_executed_revisions_follow_the_run(tmp_path: Path) -> None:
    from abparts_ops.core.rollout.runner import AppliedRevision, ExecutedStatement

    progress = RunProgress(
        current="r3", current_file="/v/r3.py",
        applied=[AppliedRevision("r1", 0.1, "/v/r1.py"), AppliedRevision("r2", 0.1, "/v/r2.py")],
        executed=[ExecutedStatement(None, "SET x = 1"), ExecutedStatement("r1", "SELECT 1"),
                  ExecutedStatement("r1", "SELECT 2"), ExecutedStatement("r3", "SELECT 3")],
    )
    assert executed_revisions(progress) == (
        ExecutedRevision("r1", "/v/r1.py", ("SELECT 1", "SELECT 2")),
        ExecutedRevision("r2", "/v/r2.py", ()),  # ran, executed nothing: linted, no findings
        ExecutedRevision("r3", "/v/r3.py", ("SELECT 3",)),  # was running when it stopped
    )


def counting_squawk(tmp_path: Path) -> tuple[Path, Path]:
    """A wrapper of the real squawk that logs each run's number of files."""
    log = tmp_path / "runs.log"
    wrapper = tmp_path / "squawk"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write(f\"{sum(a.endswith('.sql') for a in sys.argv[1:])}\\n\")\n"
        f"os.execv({str(squawk_executable())!r}, ['squawk', *sys.argv[1:]])\n"
    )
    wrapper.chmod(0o755)
    return wrapper, log


def test_forty_seven_revisions_go_to_one_squawk_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One squawk process for all revisions (each its own file), findings still mapped;
    above SQUAWK_FILES_PER_RUN the files are split across runs."""
    wrapper, log = counting_squawk(tmp_path)
    revisions = [
        ExecutedRevision(f"r{i:03d}", f"/v/r{i:03d}.py", (
            f"ALTER TABLE t{i} ADD COLUMN c text",
            *((f"ALTER TABLE t{i} RENAME a TO b",) if i % 10 == 0 else ()),
        ))
        for i in range(1, 48)
    ]
    report = lint_executed(revisions, excluded=POLICY_EXCLUDED, preamble=PREAMBLE,
                           executable=wrapper)
    assert log.read_text().split() == ["47"]
    assert [(f.revision, f.rule, f.statement_number) for f in report.findings] == [
        (f"r{i:03d}", "renaming-column", 2) for i in (10, 20, 30, 40)
    ]
    log.unlink()
    monkeypatch.setattr(lint, "SQUAWK_FILES_PER_RUN", 20)
    again = lint_executed(revisions, excluded=POLICY_EXCLUDED, preamble=PREAMBLE,
                          executable=wrapper)
    assert log.read_text().split() == ["20", "20", "7"]
    assert again.findings == report.findings


def test_on_the_demo_history_what_ran_and_the_offline_sql_agree(
    tmp_path: Path, db_factory: Callable[..., str]
) -> None:
    """14 revisions with a merge, enums, a backfill and a dropped table: linting what
    each revision executed finds, revision by revision, what its offline SQL shows."""
    from abparts_ops.embedded.demo import DEMO_OLD_HEAD, prepare_demo_project

    project = load_project(ini_path=prepare_demo_project(tmp_path).alembic_ini)
    script = project.script()
    progress = RunProgress()
    engine = make_engine(db_factory("lint"))
    try:
        with connect(engine) as conn:
            run_revisions(conn, project, script, DEMO_OLD_HEAD, progress=progress)
    finally:
        engine.dispose()
    executed = lint_executed(executed_revisions(progress), excluded=POLICY_EXCLUDED,
                             preamble=PREAMBLE)
    offline = lint_pending(project, script, (), DEMO_OLD_HEAD, excluded=POLICY_EXCLUDED,
                           preamble=PREAMBLE)
    assert [r.revision for r in executed.revisions] == [r.revision for r in offline.revisions]
    assert len(executed.revisions) == 14
    assert {(f.revision, f.rule) for f in executed.errors} == {
        (f.revision, f.rule) for f in offline.errors
    } == {
        ("0e2c4a6b8d57", "adding-not-nullable-field"),
        ("d1f3b5e7a9c6", "changing-column-type"),
        ("7c9e1a3b5d08", "ban-drop-table"),
    }
    assert {(f.revision, f.rule) for f in executed.findings} == {
        (f.revision, f.rule) for f in offline.findings
    }
